"""Fusion branch: hierarchical expert fusion of speech and visual layers -> 1 fusion token.

One expert per (speech layer, visual layer) pair, low to high (paper: (16, 12), (18, 16),
(22, 22)). Shared projections map both modalities to 512-d. Expert i:
`E_m = MHA(q=speech_i, k=v=visual_i) + speech_i`, `E_mf = FFN(E_m) + E_m`. A gate reads the
time-mean of the concatenated expert outputs and weights the experts (softmax); the
weighted sum is averaged over time and projected to one LM token.
"""

from __future__ import annotations

import torch
from torch import nn

from nanoemox.config import FusionConfig


class FusionExpert(nn.Module):
    """Cross-modal attention of speech over visual, each with a residual; [B, T, D] in and out."""

    def __init__(self, width: int, num_heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width * 4), nn.GELU(), nn.Linear(width * 4, width))

    def forward(self, speech: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(speech, visual, visual, need_weights=False)  # [B, T_a, D]
        mixed = attended + speech
        return self.ffn(mixed) + mixed  # [B, T_a, D]


class FusionBranch(nn.Module):
    """Shapes: E experts, B batch, T_a speech clips, T_v frames, D_a / D_v encoder widths, D fusion width."""

    def __init__(self, cfg: FusionConfig, *, speech_width: int, visual_width: int, lm_width: int):
        super().__init__()
        self.cfg = cfg
        experts = cfg.num_experts
        self.speech_proj = nn.Linear(speech_width, cfg.width)
        self.visual_proj = nn.Linear(visual_width, cfg.width)
        self.experts = nn.ModuleList(FusionExpert(cfg.width, cfg.num_heads) for _ in range(experts))
        self.gate = nn.Sequential(
            nn.Linear(cfg.width * experts, cfg.width), nn.GELU(), nn.Linear(cfg.width, experts)
        )
        self.output = nn.Linear(cfg.width, lm_width * cfg.num_tokens)
        self.lm_width = lm_width

    def forward(self, speech_taps: torch.Tensor, visual_taps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """([E, B, T_a, D_a], [E, B, T_v, D_v]) -> (fusion tokens [B, N, D_lm], gate weights [B, E])."""
        dtype = self.speech_proj.weight.dtype
        speech = self.speech_proj(speech_taps.to(dtype))  # [E, B, T_a, D]
        visual = self.visual_proj(visual_taps.to(dtype))  # [E, B, T_v, D]
        outputs = torch.stack([expert(speech[i], visual[i]) for i, expert in enumerate(self.experts)])  # [E, B, T_a, D]
        summary = outputs.mean(2).permute(1, 0, 2).flatten(1)  # [B, E*D]
        gates = self.gate(summary).softmax(-1)  # [B, E]
        fused = torch.einsum("be,ebtd->btd", gates, outputs).mean(1)  # [B, D]
        tokens = self.output(fused).reshape(fused.shape[0], self.cfg.num_tokens, self.lm_width)  # [B, N, D_lm]
        return tokens, gates
