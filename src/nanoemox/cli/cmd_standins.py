"""`nanoemox standins`: build (or resume building) the demo's stand-in backbones; show a folder's manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nanoemox.cli.options import StageProgress, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("standins", help="build the CPU demo's pretrained stand-in backbones (about an hour), or show them")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="pre-train the four stand-in backbones from scratch, check and package them")
    build.add_argument("--out", required=True, help="output folder; a rerun resumes after the last finished stage")
    build.add_argument("--short", action="store_true",
                       help="a few minutes with tiny step counts: proves the pipeline, not the figures")
    build.add_argument("--threads", type=int, default=2, help="torch threads, pinned (default 2)")
    build.add_argument("--workers", type=int, default=2, help="processes for generating and decoding clips")
    show = sub.add_parser("show", help="print a stand-in folder's manifest (default: the packaged stand-ins)")
    show.add_argument("folder", nargs="?", default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.standins import check_folder, packaged, read_manifest
    from nanoemox.standins.build import BuildConfig, build_standins

    if args.action == "show":
        folder = Path(args.folder) if args.folder else packaged()
        check_folder(folder)
        manifest = read_manifest(folder)
        manifest.pop("files")
        print(json.dumps(manifest, indent=2))
        return 0
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    cfg = BuildConfig.short() if args.short else BuildConfig()
    cfg.threads, cfg.workers = args.threads, args.workers
    command = "nanoemox standins build" + (" --short" if args.short else "")
    manifest = build_standins(Path(args.out), cfg, progress=StageProgress(), command=command)
    sys.stderr.write("\n")
    checks = manifest["checks"]
    print(f"stand-ins written to {args.out}")
    print(f"  generic instructions (held out): {checks['generic_instructions']['accuracy']:.3f}")
    for mode, result in checks["oracle_reading"].items():
        print(f"  oracle reading, {mode:<13} {result['accuracy']:.3f} after {result['steps']} steps")
    for name, accuracy in checks["encoder_heads_held_out"].items():
        if name != "clips":
            print(f"  {name} head on held-out clips: {accuracy:.3f}")
    return 0
