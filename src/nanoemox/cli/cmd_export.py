"""`nanoemox export --model DIR --out OUT`: the language part as a PEFT adapter and a merged Qwen2 folder."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export the language part: PEFT LoRA adapter and merged Qwen2 folder")
    p.add_argument("--model", required=True, help="model folder (config.json + weights)")
    p.add_argument("--out", required=True, help="output folder: lora/, language_merged/, export.json")
    p.set_defaults(func=run)


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.model.export import export_language

    if not (Path(args.model) / "config.json").is_file():
        print(f"error: {args.model} is not a model folder (no config.json)", file=sys.stderr)
        return 2
    try:
        info = export_language(args.model, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {info['lora']} (PEFT adapter on {info['base']}) and {info['language_merged']}")
    return 0
