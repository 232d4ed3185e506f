"""Scene branch: frozen CLIP vision tower over 8 frames -> 32 scene tokens (DESIGN section 2).

Per frame the CLS vector of `hidden_states[-2]` feeds a Q-Former through a learned
frame-position embedding; the CLS vectors of the fusion tap layers (12/16/22 in the
paper preset) are exposed for the fusion branch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from nanoemox.config import SceneConfig
from nanoemox.model.common import encoder_context, module_dtype
from nanoemox.model.qformer import QueryResampler


class SceneBranch(nn.Module):
    """Shapes: B batch, F frames, D_v vision width, Q scene tokens, D LM width, L tap layers."""

    def __init__(self, cfg: SceneConfig, encoder: CLIPVisionModel, *, lm_width: int, tap_layers: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.tap_layers = tuple(tap_layers)
        self.encoder = encoder
        width = encoder.config.hidden_size
        self.resampler = QueryResampler(
            cfg.qformer, encoder_width=width, num_positions=cfg.num_frames, num_queries=cfg.num_tokens, out_width=lm_width
        )

    @property
    def width(self) -> int:
        return self.encoder.config.hidden_size

    def encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, F, 3, H, W] -> (CLS of the feature layer [B, F, D_v], CLS of the tap layers [L, B, F, D_v])."""
        batch, frames = pixel_values.shape[:2]
        flat = pixel_values.flatten(0, 1).to(module_dtype(self.encoder))  # [B*F, 3, H, W]
        with encoder_context(self.encoder):
            hidden = self.encoder(pixel_values=flat, output_hidden_states=True).hidden_states
        cls = hidden[self.cfg.feature_layer][:, 0].reshape(batch, frames, -1)  # [B, F, D_v]
        taps = torch.stack([hidden[i][:, 0] for i in self.tap_layers])  # [L, B*F, D_v]
        return cls, taps.reshape(len(self.tap_layers), batch, frames, -1)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        """[B, F, D_v] frame CLS vectors -> [B, Q, D] scene tokens."""
        return self.resampler(cls)


def build_scene_encoder(cfg: SceneConfig, *, pretrained: bool, dtype: torch.dtype = torch.float32) -> CLIPVisionModel:
    """The CLIP vision tower: from a hub id / local folder, or random from the embedded architecture."""
    if pretrained and cfg.encoder:
        return CLIPVisionModel.from_pretrained(cfg.encoder, dtype=dtype)
    return CLIPVisionModel(CLIPVisionConfig(**cfg.encoder_config))
