"""Optimizer and learning-rate schedule of a phase: the one place that builds parameter groups."""

from __future__ import annotations

import torch
from torch import nn
from transformers import get_scheduler

from nanoemox.model.common import sequence_loss  # noqa: F401  (the training loss, re-exported)
from nanoemox.model.groups import group_of
from nanoemox.train.config import PhaseConfig


def _no_decay(name: str, param: nn.Parameter) -> bool:
    # Biases, norms, embeddings of positions and learned queries are not decayed.
    return param.ndim < 2 or name.endswith(("position", "queries")) or "norm" in name.lower()


def build_optimizer(model: nn.Module, phase: PhaseConfig) -> torch.optim.AdamW:
    """AdamW over exactly the trainable parameters (asserted), with and without weight decay.

    With `phase.lr_scale`, the parameters of each named group learn at `lr` times its factor
    (the schedule scales every group alike).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"phase {phase.name!r} trains nothing: groups {phase.trainable} have no parameters")
    scales = phase.lr_scale or {}

    def scale(name: str) -> float:
        return float(scales.get(group_of(name), 1.0)) if scales else 1.0

    groups = []
    for factor in sorted({scale(n) for n, _ in named}):
        chosen = [(n, p) for n, p in named if scale(n) == factor]
        groups += [g for g in (
            {"params": [p for n, p in chosen if not _no_decay(n, p)], "weight_decay": phase.weight_decay,
             "lr": phase.lr * factor},
            {"params": [p for n, p in chosen if _no_decay(n, p)], "weight_decay": 0.0, "lr": phase.lr * factor},
        ) if g["params"]]
    check_optimizer_coverage(model, groups)
    return torch.optim.AdamW(groups, lr=phase.lr, betas=phase.betas)


def check_optimizer_coverage(model: nn.Module, groups: list[dict]) -> None:
    """Optimizer groups must hold every trainable parameter once and nothing else."""
    in_groups = [id(p) for g in groups for p in g["params"]]
    if len(in_groups) != len(set(in_groups)):
        raise AssertionError("a parameter appears in two optimizer groups")
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if set(in_groups) != trainable:
        names = {id(p): n for n, p in model.named_parameters()}
        extra = [names.get(i, "?") for i in set(in_groups) - trainable]
        missing = [names[i] for i in trainable - set(in_groups)]
        raise AssertionError(f"optimizer groups do not match the trainable parameters: extra {extra[:5]}, missing {missing[:5]}")


def build_scheduler(optimizer: torch.optim.Optimizer, phase: PhaseConfig):
    return get_scheduler(
        phase.schedule, optimizer, num_warmup_steps=phase.warmup_steps, num_training_steps=max(phase.steps, 1)
    )

