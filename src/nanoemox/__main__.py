import sys

from nanoemox.cli import main

sys.exit(main())
