"""The `nanoemox` command line.

Every module `nanoemox.cli.cmd_<name>` contributes one subcommand through a
`register(subparsers)` function; this module only discovers and dispatches them,
so commands stay independent of each other. What several commands share lives in
`nanoemox.cli.options`; a command imports only from there and from the library.
Every start of the command line registers every command, so a command imports the
heavy parts it needs (torch, the model code, the service) inside the function that
runs it, each such import marked with a comment.

It is also the one error boundary: an error a user can act on (a bad file, a bad
setting, an unreachable server) ends the command with one line on stderr and exit
status 2; anything else ends it with one line naming the exception and exit status
70, and `--debug` (or NANOEMOX_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from nanoemox.cli.options import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanoemox", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also NANOEMOX_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    package = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            module.register(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Library progress bars (weight loading, shard writing) would drown our own progress output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # imported when the command runs, not at every start of the command line
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE


def error(message: str) -> int:
    """Print one error line on stderr; the exit status of a user error."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message tells a user what to fix (ours and the libraries' we call)."""
    # imported when the command runs, not at every start of the command line
    import httpx
    import yaml
    from safetensors import SafetensorError

    from nanoemox.features.errors import FeatureCacheError
    from nanoemox.media.errors import FileProblem

    errors: list[type[BaseException]] = [OSError, ValueError, FileProblem, FeatureCacheError, SafetensorError,
                                         yaml.YAMLError, httpx.HTTPError, RecursionError, EOFError]
    try:
        import av

        errors.append(av.error.FFmpegError)
    except (ImportError, AttributeError):
        pass
    return tuple(errors)


def _describe(exc: BaseException) -> str:
    """One line: our own and Python's errors by their message, a library's with its type in front."""
    if isinstance(exc, RecursionError):
        return "an input nests too deeply to be read (a JSON value with thousands of levels)"
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    # A multi-line message (a manifest's bad lines) is folded onto one line, the first few kept.
    text = " | ".join(lines[:4]) + (f" | ... ({len(lines) - 4} more)" if len(lines) > 4 else "")
    ours = type(exc).__module__ == "builtins" or type(exc).__module__.startswith("nanoemox")
    return text if ours and text else f"{type(exc).__name__}: {text}".rstrip(": ")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    debug = args.debug or os.environ.get("NANOEMOX_DEBUG", "") not in ("", "0")
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:  # a command line that cannot work, named by its command
        print(f"nanoemox {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except _user_errors() as exc:
        if debug:
            raise
        return error(_describe(exc))
    except Exception as exc:  # a bug, not a bad input: say so, and how to see more
        if debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {str(exc).strip()[:300]} (this is a bug in nanoemox or a "
              "library; run again with --debug or NANOEMOX_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
