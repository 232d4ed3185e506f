"""Query resampler shared by the scene and speech branches.

A sequence of per-frame (or per-clip) encoder vectors plus a learned position
embedding is read by a BLIP-2 Q-Former (transformers `Blip2QFormerModel`, cross-attention
in every layer) through a set of learned queries, then mapped to the LM width by a
linear adapter.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from nanoemox.config import QFormerConfig


class QueryResampler(nn.Module):
    """[B, T, D_enc] encoder sequence -> [B, Q, D_lm] modality tokens.

    Shapes: B batch, T frames or clips, Q queries, D widths.
    """

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

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        batch, length, _ = sequence.shape
        if length > self.position.shape[1]:
            raise ValueError(f"got {length} frames/clips, the position embedding has {self.position.shape[1]}")
        dtype = self.position.dtype
        encoded = sequence.to(dtype) + self.position[:, :length]  # [B, T, D_enc]
        queries = self.queries.expand(batch, -1, -1)  # [B, Q, D_q]
        out = self.qformer(query_embeds=queries, encoder_hidden_states=encoded).last_hidden_state  # [B, Q, D_q]
        return self.adapter(out)  # [B, Q, D_lm]
