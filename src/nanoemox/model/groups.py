"""Named parameter groups: which parts of Nano-EmoX are frozen or trained is data.

Every parameter belongs to exactly one group:

| group            | parameters                                                        |
|------------------|-------------------------------------------------------------------|
| `encoders`       | CLIP vision tower, HuBERT, FaceXFormer encoder (frozen in P2E)    |
| `scene_adapter`  | frame positions, scene Q-Former and queries, scene adapter         |
| `speech_adapter` | clip positions, speech Q-Former and queries, speech adapter        |
| `face_adapter`   | face temporal queries and attention, face MLP                      |
| `fusion`         | projections, experts, gate and output of the fusion branch         |
| `lora`           | LoRA matrices inside the language model                           |
| `language`       | the language model's own weights (frozen in P2E)                   |

A P2E phase names the groups it trains; `set_trainable` applies that to every
parameter explicitly.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn

GROUPS = ("encoders", "scene_adapter", "speech_adapter", "face_adapter", "fusion", "lora", "language")
# The groups a model folder stores in model.safetensors; the others are backbones.
SAVED_GROUPS = ("scene_adapter", "speech_adapter", "face_adapter", "fusion", "lora")
_ENCODER_PREFIXES = ("scene.encoder.", "speech.encoder.", "face.encoder.")
_BRANCH_GROUPS = {"scene.": "scene_adapter", "speech.": "speech_adapter", "face.": "face_adapter", "fusion.": "fusion"}


def group_of(name: str) -> str:
    """The group of a parameter given its qualified name in `NanoEmoX`."""
    if name.startswith(_ENCODER_PREFIXES):
        return "encoders"
    if name.startswith("language."):
        return "lora" if "lora_" in name else "language"
    for prefix, group in _BRANCH_GROUPS.items():
        if name.startswith(prefix):
            return group
    raise ValueError(f"parameter {name!r} belongs to no group; update nanoemox.model.groups")


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in GROUPS}
    for name, param in model.named_parameters():
        groups[group_of(name)].append((name, param))
    return groups


def check_groups(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        raise ValueError(f"unknown parameter group(s) {unknown}; known groups: {', '.join(GROUPS)}")
    return names


def set_trainable(model: nn.Module, groups: Iterable[str]) -> dict[str, int]:
    """Train exactly the named groups: set `requires_grad` on every parameter; return trainable counts."""
    wanted = set(check_groups(groups))
    counts = {g: 0 for g in GROUPS}
    for group, params in parameter_groups(model).items():
        for _, param in params:
            param.requires_grad_(group in wanted)
            if group in wanted:
                counts[group] += param.numel()
    return counts


def count_parameters(model: nn.Module) -> dict[str, int]:
    return {g: sum(p.numel() for _, p in params) for g, params in parameter_groups(model).items()}


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
