"""`nanoemox demo`: SynthAffect -> the stand-in backbones -> P2E -> evaluation -> report, on a CPU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nanoemox.cli.options import StageProgress, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train and evaluate the tiny model on the built-in corpus, with a report")
    p.add_argument("--out", default="nanoemox-demo", help="output folder (default: ./nanoemox-demo); reruns resume")
    p.add_argument("--clips", type=int, default=1000,
                   help="SynthAffect clips to generate (default 1000: 600 train, 200 dev, 200 test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads, pinned so that reruns are bit-identical (default 2; recorded in the report)")
    p.add_argument("--joint", action="store_true",
                   help="also train joint training with the same steps, for comparison (off by default; "
                        "benchmarks/p2e_vs_joint.py compares the two over seeds)")
    p.add_argument("--no-joint", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--workers", type=int, default=2, help="processes for generation and decoding")
    p.add_argument("--standins", metavar="DIR", default=None,
                   help="stand-in backbones built by `nanoemox standins build` (default: the ones shipped "
                        "with the package)")
    p.add_argument("--build-standins", action="store_true",
                   help="build the stand-in backbones into OUT/standins first (about an hour on 2 cores), "
                        "then use them")
    p.set_defaults(func=run)


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.demo.pipeline import DemoOptions, packaged_config, run_demo

    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.standins and args.build_standins:
        raise UsageError("--standins and --build-standins exclude each other: use built ones or build them")
    opts = DemoOptions(out=Path(args.out), clips=args.clips, seed=args.seed, workers=args.workers,
                       threads=args.threads, standins=Path(args.standins) if args.standins else None,
                       build_standins=args.build_standins)
    if args.joint and not args.no_joint:
        opts.joint_config = packaged_config("demo_jot_tiny.yaml")
    report = run_demo(opts, progress=StageProgress())
    sys.stderr.write("\n")
    print(f"\nNano-EmoX demo finished in {report['minutes']:.1f} min; model: {opts.out / 'model'}")
    for key, t in report["targets"].items():
        value = "–" if t["value"] is None else f"{t['value']:.3f}"
        interval = report["intervals"].get(key)
        shown = f"  [95% {interval[0]:.3f}-{interval[1]:.3f}]" if interval else ""
        bound = "at most" if t.get("at_most") else "target"
        print(f"  {key:<26} {value}{shown}  ({bound} {t['target']:.2f}, {'met' if t['met'] else 'NOT met'})")
    for problem in report["learning_problems"]:
        print(f"  not learned: {problem}")
    print(f"report: {opts.out / 'report.md'}")
    return 0
