"""`nanoemox synth`: generate the SynthAffect synthetic corpus (one or two people per clip), or compose a long
video from one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from nanoemox.tasks import TASK_NAMES, TIMELINE_TASKS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="generate the SynthAffect synthetic corpus, or compose a long video from one",
        description="Write SynthAffect clips (mp4 with face video and voice audio), manifests for all "
                    "six tasks split by clip into train/dev/test, and a summary file. With --compose, "
                    "string the clips of an existing corpus into one long mp4 with known emotions per "
                    "stretch instead, plus .srt, .segments.csv and .clips.csv files beside it. With --people 2, "
                    "each clip shows a speaker and a silent listener side by side, for evaluating answers "
                    "about one person of several.")
    p.add_argument("--out", required=True, help="output directory (with --compose: the .mp4 file to write)")
    p.add_argument("--n", type=int, default=2000, help="number of clips (default 2000; not with --compose)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="rendering processes (default: CPU cores; not with --compose)")
    p.add_argument("--size", type=int, default=160,
                   help="frame width and height in pixels, per person (default 160; not with --compose)")
    p.add_argument("--fps", type=int, default=8, help="video frame rate (default 8; not with --compose)")
    p.add_argument("--duration", type=float, default=4.0,
                   help="clip length in seconds (default 4; not with --compose)")
    p.add_argument("--tasks", default=None,
                   help=f"comma-separated subset of {','.join(TASK_NAMES)} (default: all; with --people 2 a subset "
                        f"of {','.join(TIMELINE_TASKS)}, the default; not with --compose)")
    p.add_argument("--people", type=int, default=1,
                   help="people per clip: 1 (the training corpus, default) or 2 (a speaker and a silent listener "
                        "side by side, frames 2*size wide; for evaluation; not with --compose)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing corpus in --out (with --compose: an existing video and its side files)")
    p.add_argument("--compose", metavar="CORPUS_DIR", default=None,
                   help="compose a long video from a corpus's clips instead of generating a corpus; "
                        "--n, --size, --fps, --duration, --workers and --tasks do not apply")
    p.add_argument("--minutes", type=float, default=10.0,
                   help="with --compose: least length of the video in minutes (default 10)")
    p.add_argument("--split", default="test", help="with --compose: which split's clips to use (default test)")
    p.set_defaults(func=run)


def _fail(message: object) -> int:
    print(f"nanoemox synth: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.people not in (1, 2):
        return _fail(f"--people must be 1 or 2, got {args.people}")
    if args.compose is not None:
        if args.people != 1:
            return _fail("--compose strings one-person clips into a long video; --people 2 is not supported with it")
        return compose(args)
    # imported when the command runs, not at every start of the command line
    from nanoemox.data.synth import MediaConfig, generate

    tasks = None if args.tasks is None else tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    try:
        media = MediaConfig(size=args.size, fps=args.fps, duration=args.duration)
        with tqdm(total=args.n, unit="clip", desc="SynthAffect") as bar:
            summary = generate(args.out, args.n, args.seed, media=media, tasks=tasks, workers=args.workers,
                               overwrite=args.overwrite, people=args.people, progress=bar.update)
    except (ValueError, FileExistsError) as exc:
        return _fail(exc)
    counts = summary["counts"]
    who = "" if args.people == 1 else f" of {args.people} people"
    print(f"wrote {counts['clips']} clips{who} / {counts['records']} records to {args.out} "
          f"in {summary['seconds']:.1f} s")
    print("splits: " + json.dumps(counts["split"]))
    print("emotions: " + json.dumps(counts["emotion"]))
    return 0


def compose(args: argparse.Namespace) -> int:
    """`--compose`: one long video with known emotions per stretch, and its side files."""
    # imported when the command runs, not at every start of the command line
    from nanoemox.data.synth.long import compose_long_video, side_files

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        return _fail(f"with --compose, --out names the .mp4 file to write, got {out}")
    existing = [p for p in (out, *side_files(out).values()) if p.exists()]
    if existing and not args.overwrite:
        return _fail(f"{existing[0]} already exists; choose another --out or pass --overwrite")
    bar = None

    def progress(n: int) -> None:
        nonlocal bar
        if bar is None:  # opened at the first clip, so an early error stays one line on stderr
            bar = tqdm(unit="clip", desc="long video")
        bar.update(n)

    try:
        summary = compose_long_video(args.compose, out, minutes=args.minutes, split=args.split,
                                     seed=args.seed, progress=progress)
    except (ValueError, OSError) as exc:
        return _fail(exc)
    finally:
        if bar is not None:
            bar.close()
    minutes, seconds = divmod(summary["duration"], 60)
    print(f"wrote {out}: {int(minutes)}:{seconds:06.3f} ({summary['duration']:.3f} s), {summary['clips']} clips "
          f"in {summary['stretches']} stretches (seed {args.seed}, {args.split} split of {args.compose})")
    for name, path in summary["files"].items():
        print(f"{name}: {path}")
    return 0
