"""`nanoemox init-model`: write a randomly initialised, self-contained model folder."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "init-model", help="write a random, self-contained model folder (smoke tests, CI, trying the pipeline)"
    )
    p.add_argument("--preset", default="tiny", help="tiny (default) or paper (about 9 GB of random weights)")
    p.add_argument("--out", required=True, help="output folder (replaced atomically if it exists)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the initialisation")
    p.set_defaults(func=run)


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    import torch

    from nanoemox.config import get_preset
    from nanoemox.model import build_model, build_tokenizer

    torch.manual_seed(args.seed)
    config = get_preset(args.preset)
    # Random weights: nothing is downloaded, so no backbone keeps a hub reference.
    config.scene.encoder = config.speech.encoder = config.face.encoder = None
    tokenizer = build_tokenizer(config)
    config.language.model = None
    model = build_model(config, pretrained=False, tokenizer=tokenizer)
    processor = _processor(config, tokenizer)
    model.save_pretrained(args.out, self_contained=True, tokenizer=tokenizer, processor=processor)
    print(f"wrote a random {args.preset} model to {args.out}")
    return 0


def _processor(config, tokenizer):
    try:
        # imported when the command runs, not at every start of the command line
        from nanoemox.processor import NanoEmoXProcessor
    except ImportError:  # the media pipeline is optional for a bare model folder
        return None
    return NanoEmoXProcessor.from_config(config, tokenizer)
