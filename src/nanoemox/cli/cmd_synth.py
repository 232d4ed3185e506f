"""`nanoemox synth`: generate the SynthAffect synthetic corpus."""

from __future__ import annotations

import argparse
import json

from tqdm import tqdm

from nanoemox.data.manifest import TASKS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="generate the SynthAffect synthetic corpus",
        description="Write SynthAffect clips (mp4 with face video and voice audio), manifests for all "
                    "six tasks split by clip into train/dev/test, and a summary file.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=2000, help="number of clips (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU cores)")
    p.add_argument("--size", type=int, default=160, help="frame width and height in pixels (default 160)")
    p.add_argument("--fps", type=int, default=8, help="video frame rate (default 8)")
    p.add_argument("--duration", type=float, default=4.0, help="clip length in seconds (default 4)")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nanoemox.data.synth import MediaConfig, generate

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    try:
        media = MediaConfig(size=args.size, fps=args.fps, duration=args.duration)
        with tqdm(total=args.n, unit="clip", desc="SynthAffect") as bar:
            summary = generate(args.out, args.n, args.seed, media=media, tasks=tasks, workers=args.workers,
                               overwrite=args.overwrite, progress=bar.update)
    except (ValueError, FileExistsError) as exc:
        print(f"nanoemox synth: {exc}")
        return 2
    counts = summary["counts"]
    print(f"wrote {counts['clips']} clips / {counts['records']} records to {args.out} "
          f"in {summary['seconds']:.1f} s")
    print("splits: " + json.dumps(counts["split"]))
    print("emotions: " + json.dumps(counts["emotion"]))
    return 0
