"""`nanoemox demo`: SynthAffect -> tiny pre-training -> P2E -> evaluation -> report, on a CPU."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train and evaluate the tiny model on the built-in corpus, with a report")
    p.add_argument("--out", default="nanoemox-demo", help="output folder (default: ./nanoemox-demo); reruns resume")
    p.add_argument("--clips", type=int, default=800, help="SynthAffect clips to generate (default 800)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-joint", action="store_true", help="skip the joint-training comparison")
    p.add_argument("--workers", type=int, default=2, help="processes for generation and decoding")
    p.set_defaults(func=run)


class _Status:
    """One line per stage on stderr, updated in place, so a long demo shows it is alive."""

    def __init__(self) -> None:
        self.stage, self.started, self.last = None, time.perf_counter(), 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != self.stage:
            if self.stage is not None:
                sys.stderr.write("\n")
            self.stage, self.started = stage, now
        if now - self.last > 0.5 or done == total:
            self.last = now
            sys.stderr.write(f"\r  {stage:<12} {done}/{total}  {now - self.started:6.1f} s")
            sys.stderr.flush()


def run(args) -> int:
    from nanoemox.demo.pipeline import DemoOptions, run_demo

    opts = DemoOptions(out=Path(args.out), clips=args.clips, seed=args.seed, workers=args.workers)
    if args.no_joint:
        opts.joint_config = None
    report = run_demo(opts, progress=_Status())
    sys.stderr.write("\n")
    print(f"\nNano-EmoX demo finished in {report['minutes']:.1f} min; model: {opts.out / 'model'}")
    for key, t in report["targets"].items():
        value = "–" if t["value"] is None else f"{t['value']:.3f}"
        print(f"  {key:<22} {value}  (target {t['target']:.2f}, {'met' if t['met'] else 'NOT met'})")
    print(f"report: {opts.out / 'report.md'}")
    return 0
