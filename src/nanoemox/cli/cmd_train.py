"""`nanoemox train CONFIG --out DIR [--resume]`: run a P2E (or joint) training configuration."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="run the phases of a training config (P2E or joint)")
    p.add_argument("config", help="YAML run description, e.g. configs/p2e_paper.yaml")
    p.add_argument("--out", help="output folder (checkpoints, logs, model folders); required unless --dry-run")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config, manifests and media and print each phase's pools, mixture, samples "
                        "seen and epochs, without building the model or writing anything")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--data-root", help="override data.root")
    p.add_argument("--train", nargs="+", help="override data.train (manifest files)")
    p.add_argument("--features", help="override data.features (a feature cache folder)")
    p.add_argument("--workers", type=int, help="override data.workers (DataLoader processes)")
    p.add_argument("--model", help="start from this model folder instead of the config's model")
    p.add_argument("--allow-random-backbones", action="store_true",
                   help="train a non-tiny model even if a frozen backbone has random weights (e.g. no FaceXFormer "
                        "checkpoint); refused otherwise")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _overrides(args) -> dict:
    """Config sections replaced by options; their paths are absolute here.

    Paths inside the config file are taken from the file's folder; paths on the command
    line from the working directory, so they are made absolute before they are merged.
    """
    paths = {"root": args.data_root, "features": args.features}
    data = {k: _absolute(v) for k, v in paths.items() if v is not None}
    if args.train is not None:
        data["train"] = [_absolute(p) for p in args.train]
    if args.workers is not None:
        data["workers"] = args.workers
    out: dict = {"data": data} if data else {}
    model: dict = {}
    if args.model:
        model.update(path=_absolute(args.model), preset=None)
    if getattr(args, "allow_random_backbones", False):
        model["allow_random_backbones"] = True
    if model:
        out["model"] = model
    return out


def _dry_run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.train import load_train_config
    from nanoemox.train.plan import format_plan, plan_training

    try:
        plan = plan_training(load_train_config(args.config, overrides=_overrides(args)))
    except (FileNotFoundError, ValueError) as exc:  # PlanError lists every problem
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_plan(plan), end="")
    return 0


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.train import Trainer, TrainingDiverged, TrainingInterrupted, load_train_config

    if args.dry_run:
        return _dry_run(args)
    if not args.out:
        print("error: --out is required (or use --dry-run)", file=sys.stderr)
        return 2
    try:
        config = load_train_config(args.config, overrides=_overrides(args))
        trainer = Trainer(config, args.out, resume=args.resume, progress=not args.no_progress)
        final = trainer.train()
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    except TrainingDiverged as exc:
        print(f"training diverged: {exc}", file=sys.stderr)
        return 3
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trainer.is_main:
        print(f"trained model: {final}")
    return 0
