"""Query resampler shared by the scene and speech branches.

A sequence of per-frame (or per-clip) encoder vectors plus a learned position
embedding is read by a BLIP-2 Q-Former (transformers `Blip2QFormerModel`, cross-attention
in every layer) through a set of learned queries, then mapped to the LM width by a
linear adapter.

Precision: casting the model (`model.to(torch.bfloat16)`) leaves the Q-Former, its
queries and the position embedding in float32, as transformers' BLIP-2 keeps its
Q-Former and query tokens (`_keep_in_fp32_modules`); the encoder sequence is read in
float32 and the adapter runs in the model's dtype. Moves between devices apply as usual.
`benchmarks/qformer_precision.py` measures what this saves.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from nanoemox.config import QFormerConfig


def _as_float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() and t.dtype != torch.float32 else t


class QueryResampler(nn.Module):
    """[B, T, D_enc] encoder sequence -> [B, Q, D_lm] modality tokens.

    Shapes: B batch, T frames or clips, Q queries, D widths.
    """

    keep_fp32 = True  # the Q-Former and its learned inputs stay float32 under casts (see module docstring)

    def __init__(self, cfg: QFormerConfig, *, encoder_width: int, num_positions: int, num_queries: int, out_width: int):
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, num_positions, encoder_width))
        self.queries = nn.Parameter(torch.randn(1, num_queries, cfg.hidden_size) * 0.02)
        qconfig = Blip2QFormerConfig(
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            encoder_hidden_size=encoder_width,
            cross_attention_frequency=1,
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
        )
        self.qformer = Blip2QFormerModel(qconfig)
        self.adapter = nn.Linear(cfg.hidden_size, out_width)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self.keep_fp32:
            self.qformer._apply(_as_float32)
            nn.Module._apply(self, _as_float32, recurse=False)  # position and queries only
        return self

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        batch, length, _ = sequence.shape
        if length > self.position.shape[1]:
            raise ValueError(f"got {length} frames/clips, the position embedding has {self.position.shape[1]}")
        dtype = self.position.dtype
        encoded = sequence.to(dtype) + self.position[:, :length]  # [B, T, D_enc]
        queries = self.queries.expand(batch, -1, -1)  # [B, Q, D_q]
        out = self.qformer(query_embeds=queries, encoder_hidden_states=encoded).last_hidden_state  # [B, Q, D_q]
        return self.adapter(out.to(self.adapter.weight.dtype))  # [B, Q, D_lm]
