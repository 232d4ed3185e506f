"""What the model sees when a modality is absent, for modality dropout and ablations.

A clip without video gives blank frames, one without audio gives silence, one without a
subtitle gives no words. `AbsentModalities` swaps one sample's inputs for those, whether
the sample holds media tensors (live training) or cached encoder features.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from nanoemox.data.manifest import Record

DROPPABLE = ("face", "voice", "text")
# Encoder outputs (feature-cache keys) and processor tensors that carry each media modality.
FEATURE_KEYS = {"face": ("scene_cls", "scene_taps", "face_frames"), "voice": ("speech_clips", "speech_taps")}
MEDIA_KEYS = {"face": ("pixel_values", "face_pixel_values", "video_present", "faces_found"),
              "voice": ("audio_values", "audio_present")}


class AbsentModalities:
    """Blank inputs of the face and voice modalities, as media tensors and as encoder features."""

    def __init__(self, model, processor):
        empty = processor.load_media().tensors()
        self.media = {k: v for k, v in empty.items() if any(k in keys for keys in MEDIA_KEYS.values())}
        device = next(model.parameters()).device
        with torch.no_grad():
            blank = model.encode_media(*(empty[k][None].to(device) for k in ("pixel_values", "face_pixel_values",
                                                                             "audio_values"))).to("cpu", torch.float32)
        # One sample's layout, as the feature cache returns it: taps [L, ...], the rest [...].
        self.features = {k: (getattr(blank, k)[:, 0] if k.endswith("taps") else getattr(blank, k)[0]).clone()
                         for keys in FEATURE_KEYS.values() for k in keys}

    def drop_record(self, record: Record, modalities) -> Record:
        return dataclasses.replace(record, text=None) if "text" in modalities else record

    def drop_features(self, features: dict[str, torch.Tensor], modalities) -> dict[str, torch.Tensor]:
        """Cached features of one sample with the modalities' features (and presence flags) blanked."""
        out = dict(features)
        for m in modalities:
            for k in FEATURE_KEYS.get(m, ()):
                out[k] = self.features[k].to(features[k].dtype)
            for k in MEDIA_KEYS.get(m, ()):
                if k in features:  # the presence flags the cache keeps beside the features
                    out[k] = torch.as_tensor(self.media[k]).to(torch.as_tensor(features[k]).dtype)
        return out

    def drop_media(self, sample: dict[str, Any], modalities) -> dict[str, Any]:
        keys = [k for m in modalities for k in MEDIA_KEYS.get(m, ()) if k in sample]
        return {**sample, **{k: self.media[k] for k in keys}}
