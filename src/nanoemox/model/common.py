"""Small helpers shared by the branches: frozen-encoder execution and model dtype/device."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def encoder_context(encoder: nn.Module) -> contextlib.AbstractContextManager:
    """No autograd graph through an encoder whose parameters are all frozen (the P2E default)."""
    trainable = any(p.requires_grad for p in encoder.parameters())
    return contextlib.nullcontext() if trainable else torch.no_grad()


def module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype
