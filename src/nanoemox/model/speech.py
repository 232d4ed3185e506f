"""Speech branch: frozen HuBERT over 8 two-second clips -> 32 speech tokens (DESIGN section 2).

Per clip: the mean of the last 4 hidden layers, averaged over time, feeds a Q-Former
through a learned clip-position embedding; the time-averaged tap layers (16/18/22 in
the paper preset) are exposed for the fusion branch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import HubertConfig, HubertModel

from nanoemox.config import SpeechConfig
from nanoemox.model.common import encoder_context, module_dtype
from nanoemox.model.qformer import QueryResampler


class SpeechBranch(nn.Module):
    """Shapes: B batch, C clips, S samples per clip, T frames of HuBERT, D_a width, Q tokens, L tap layers."""

    def __init__(self, cfg: SpeechConfig, encoder: HubertModel, *, lm_width: int, tap_layers: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.tap_layers = tuple(tap_layers)
        self.encoder = encoder
        self.resampler = QueryResampler(
            cfg.qformer,
            encoder_width=encoder.config.hidden_size,
            num_positions=cfg.num_clips,
            num_queries=cfg.num_tokens,
            out_width=lm_width,
        )

    @property
    def width(self) -> int:
        return self.encoder.config.hidden_size

    def encode(self, audio_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, C, S] normalised clips -> (clip vectors [B, C, D_a], time-averaged tap layers [L, B, C, D_a])."""
        batch, clips = audio_values.shape[:2]
        flat = audio_values.flatten(0, 1).to(module_dtype(self.encoder))  # [B*C, S]
        with encoder_context(self.encoder):
            hidden = self.encoder(input_values=flat, output_hidden_states=True).hidden_states
        last = torch.stack(hidden[-self.cfg.pool_last_layers :]).mean(0)  # [B*C, T, D_a]
        clip_vectors = last.mean(1).reshape(batch, clips, -1)  # [B, C, D_a]
        taps = torch.stack([hidden[i].mean(1) for i in self.tap_layers])  # [L, B*C, D_a]
        return clip_vectors, taps.reshape(len(self.tap_layers), batch, clips, -1)

    def forward(self, clip_vectors: torch.Tensor) -> torch.Tensor:
        """[B, C, D_a] -> [B, Q, D] speech tokens."""
        return self.resampler(clip_vectors)


def build_speech_encoder(cfg: SpeechConfig, *, pretrained: bool, dtype: torch.dtype = torch.float32) -> HubertModel:
    """HuBERT: from a hub id / local folder, or random from the embedded architecture."""
    if pretrained and cfg.encoder:
        return HubertModel.from_pretrained(cfg.encoder, dtype=dtype)
    return HubertModel(HubertConfig(**cfg.encoder_config))
