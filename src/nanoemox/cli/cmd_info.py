"""`nanoemox info`: parameter counts and token budget of a preset, built on the meta device."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="parameter counts per branch and group of a preset (no download)")
    p.add_argument("--preset", default="paper", help="paper (default) or tiny")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _millions(n: int) -> str:
    return f"{n / 1e6:>10.2f} M"


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.config import get_preset
    from nanoemox.model.summary import describe

    info = describe(get_preset(args.preset))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"Nano-EmoX, preset {info['preset']!r}")
    print(f"  total parameters      {info['total_params'] / 1e9:.3f} B "
          f"({info['total_params_without_lora'] / 1e9:.3f} B without LoRA)")
    print("  per branch:")
    for name, n in info["branches"].items():
        print(f"    {name:<16}{_millions(n)}   backbone: {info['backbones'].get(name, '-')}")
    print("  per parameter group:")
    for name, n in info["groups"].items():
        print(f"    {name:<16}{_millions(n)}")
    if info["random_backbones"]:
        print(f"  random when built as configured: {', '.join(info['random_backbones'])}"
              + ("" if info["preset"] == "tiny" else " (training and evaluation refuse this unless "
                 "--allow-random-backbones)"))
    tokens = info["tokens"]
    print(f"  modality tokens: scene {tokens['scene']}, speech {tokens['speech']}, face {tokens['face']}, "
          f"fusion {tokens['fusion']} ({info['placeholders_per_prompt']} placeholders per prompt)")
    print(f"  fusion experts (speech layer, visual layer): {info['fusion_pairs']}")
    lora = info["lora"]
    print(f"  LoRA r={lora['r']} alpha={lora['alpha']} dropout={lora['dropout']} on {', '.join(lora['target_modules'])}")
    return 0
