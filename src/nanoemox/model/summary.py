"""Model introspection: parameter counts per branch and per group, without weights or downloads."""

from __future__ import annotations

from typing import Any

import torch

from nanoemox.config import NanoEmoXConfig
from nanoemox.model.build import build_model, random_backbones_of
from nanoemox.model.groups import count_parameters

BRANCHES = ("scene", "speech", "face", "fusion", "language")


def describe(config: NanoEmoXConfig) -> dict[str, Any]:
    """Build the model on the meta device (no memory, no downloads) and count its parameters."""
    random = random_backbones_of(config, pretrained=True)  # before the meta build marks everything random
    with torch.device("meta"):
        model = build_model(config, pretrained=False)
    branches = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in BRANCHES}
    groups = count_parameters(model)
    total = sum(branches.values())
    return {
        "preset": config.preset,
        "total_params": total,
        "total_params_without_lora": total - groups["lora"],
        "branches": branches,
        "groups": groups,
        "tokens": {"scene": config.scene.num_tokens, "speech": config.speech.num_tokens,
                   "face": config.face.num_tokens, "fusion": config.fusion.num_tokens},
        "placeholders_per_prompt": sum(config.token_counts().values()),
        "backbones": {
            "scene": config.scene.encoder,
            "speech": config.speech.encoder,
            "face": config.face.encoder or "FaceXFormer encoder (Swin, random until a checkpoint is given)",
            "language": config.language.model,
        },
        "random_backbones": random,
        "fusion_pairs": [list(p) for p in zip(config.fusion.speech_layers, config.fusion.visual_layers)],
        "lora": {"r": config.lora.r, "alpha": config.lora.alpha, "dropout": config.lora.dropout,
                 "target_modules": list(config.lora.target_modules)},
    }
