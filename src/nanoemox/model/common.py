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


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                  head: nn.Module | None = None) -> torch.Tensor:
    """Mean over samples of each sample's mean answer-token cross-entropy.

    Weighting samples (not tokens) equally makes the loss of a batch independent of how
    it is split into micro-batches and processes, and keeps long answers (ERG) from
    outweighing short ones (MER). Logits [B, L, V], labels [B, L]. With `head`, the first
    argument holds hidden states [B, L, D] instead, and the head (the LM's vocabulary
    projection) runs only at the positions that predict an answer token, which saves
    most of the projection's cost in training, where prompts are long and answers short.
    """
    shift_labels = labels[:, 1:]  # [B, L-1]
    answer = shift_labels != ignore_index  # [B, L-1]
    counts = answer.sum(1)  # [B]
    if bool((counts == 0).any()):
        raise ValueError("a training sample has no answer tokens to learn from")
    picked = logits[:, :-1][answer]  # [N, V] or [N, D]
    if head is not None:
        picked = head(picked)
    token_loss = nn.functional.cross_entropy(picked.float(), shift_labels[answer], reduction="none")  # [N]
    rows = answer.nonzero()[:, 0]
    per_sample = torch.zeros(len(labels), dtype=token_loss.dtype, device=token_loss.device).index_add(0, rows, token_loss)
    return (per_sample / counts).mean()
