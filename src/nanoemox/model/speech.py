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
        """[B, C, S] normalised clips -> (clip vectors [B, C, D_a], time-averaged tap layers [L, B, C, D_a]).

        Audio shorter than a clip arrives zero-padded at the end (`media.audio`). The
        padding is masked in HuBERT's attention where its feature extractor supports a
        mask (layer-norm extractors, as HuBERT-Large's) and left out of every time
        average, so a short clip gives the vectors it gives unpadded.
        """
        batch, clips, samples = audio_values.shape
        flat = audio_values.flatten(0, 1).to(module_dtype(self.encoder))  # [B*C, S]
        lengths = real_lengths(flat)  # [B*C]
        sample_mask = (torch.arange(samples, device=flat.device)[None] < lengths[:, None]).long()  # [B*C, S]
        masked = self.encoder.config.feat_extract_norm == "layer"
        with encoder_context(self.encoder):
            hidden = self.encoder(input_values=flat, attention_mask=sample_mask if masked else None,
                                  output_hidden_states=True).hidden_states
        frames = hidden[0].shape[1]
        real = self.encoder._get_feat_extract_output_lengths(lengths).clamp(1, frames)  # [B*C]
        weights = (torch.arange(frames, device=flat.device)[None] < real[:, None]).to(hidden[0].dtype)  # [B*C, T]
        weights = (weights / weights.sum(1, keepdim=True))[..., None]  # [B*C, T, 1], each row sums to 1

        def time_mean(h: torch.Tensor) -> torch.Tensor:  # [B*C, T, D_a] -> [B*C, D_a] over real frames
            return (h * weights).sum(1)

        last = torch.stack(hidden[-self.cfg.pool_last_layers :]).mean(0)  # [B*C, T, D_a]
        clip_vectors = time_mean(last).reshape(batch, clips, -1)  # [B, C, D_a]
        taps = torch.stack([time_mean(hidden[i]) for i in self.tap_layers])  # [L, B*C, D_a]
        return clip_vectors, taps.reshape(len(self.tap_layers), batch, clips, -1)

    def forward(self, clip_vectors: torch.Tensor) -> torch.Tensor:
        """[B, C, D_a] -> [B, Q, D] speech tokens."""
        return self.resampler(clip_vectors)


def real_lengths(clips: torch.Tensor) -> torch.Tensor:
    """[N, S] -> [N] samples up to the last non-zero one; an all-zero clip (no audio) counts in full.

    Normalised speech is never exactly zero over a stretch, so a run of exact zeros at
    the end is the pipeline's padding.
    """
    samples = clips.shape[1]
    nonzero = clips != 0  # [N, S]
    last = samples - torch.flip(nonzero, dims=[1]).int().argmax(dim=1)  # one past the last non-zero sample
    return torch.where(nonzero.any(dim=1), last, torch.full_like(last, samples))


def build_speech_encoder(cfg: SpeechConfig, *, pretrained: bool, dtype: torch.dtype = torch.float32) -> HubertModel:
    """HuBERT: from a hub id / local folder, or random from the embedded architecture."""
    if pretrained and cfg.encoder:
        return HubertModel.from_pretrained(cfg.encoder, dtype=dtype)
    return HubertModel(HubertConfig(**cfg.encoder_config))
