"""What a cached feature depends on: the media it came from and the encoders that made it.

`media_key(record)` names one media item (several manifest records, for different
tasks, often share a clip); `cache_identity(model, processor)` fingerprints
everything that decides the features of a given media item:

  encoders  a SHA-256 over every tensor (name, dtype, shape and all bytes) of the
            state dicts of the scene, speech and face encoders; the whole tensor is
            hashed, in chunks, so even a one-weight change is seen (2.6 GiB for the
            paper preset: about 4 s on one CPU core)
  config    the model settings that decide which encoder outputs are kept: the scene
            feature layer, the fusion tap layers, the speech pooling, frames, clips,
            and the encoders' architectures
  media     the processor's media settings (frame count, image size, normalisation,
            clip length, face input mode, ...)

Two identities are compared part by part, so a refusal says exactly what differs.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

import torch
from torch import nn

from nanoemox.data.manifest import MEDIA_KINDS, Record

# 2: speech clip vectors average over real (unpadded) frames only, with HuBERT's attention mask;
#    video frames larger than 1280 pixels are downscaled while decoding.
IDENTITY_VERSION = 2
NO_MEDIA_KEY = "nomedia"
# Elements hashed per step: bounds the host memory a GPU tensor is copied through.
_HASH_CHUNK = 1 << 24


def media_sources(record: Record) -> dict[str, str | None]:
    """The record's media paths relative to the data root, normalised (posix separators, no './')."""
    sources: dict[str, str | None] = {}
    for kind in MEDIA_KINDS:
        rel = record.media.get(kind)
        sources[kind] = None if rel is None else posixpath.normpath(rel.replace("\\", "/"))
    return sources


def media_key(record: Record) -> str:
    """A stable name for the record's media: a hash of its relative paths, or "nomedia".

    Records naming the same files (after path normalisation) share the key, whatever
    their task or text. The key depends on paths only, not file contents: a cache
    must be rebuilt when media files are replaced in place.
    """
    sources = media_sources(record)
    if all(v is None for v in sources.values()):
        return NO_MEDIA_KEY
    text = json.dumps(sources, sort_keys=True, ensure_ascii=False)
    return "m" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _hash_tensor(digest: "hashlib._Hash", name: str, tensor: torch.Tensor) -> None:
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
    flat = tensor.detach().reshape(-1)
    for begin in range(0, flat.numel(), _HASH_CHUNK):
        chunk = flat[begin : begin + _HASH_CHUNK].to("cpu").contiguous()
        # Reinterpret as bytes (works for every dtype, bfloat16 included).
        digest.update(memoryview(chunk.view(torch.uint8).numpy()))


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's state dict: every tensor's name, dtype, shape and bytes, sorted by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        _hash_tensor(digest, name, tensor)
    return "sha256:" + digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Tuples become lists, as they do in index.json, so stored and fresh identities compare equal."""
    return json.loads(json.dumps(value))


def encoder_identity(model: nn.Module) -> dict[str, Any]:
    """The encoder part of the identity: weight digests and the encoder-relevant config."""
    cfg = model.config
    encoders = {name: weights_digest(module) for name, module in model.encoders().items()}
    config = {
        "scene.feature_layer": cfg.scene.feature_layer,
        "scene.num_frames": cfg.scene.num_frames,
        "scene.encoder_config": cfg.scene.encoder_config,
        "speech.pool_last_layers": cfg.speech.pool_last_layers,
        "speech.num_clips": cfg.speech.num_clips,
        "speech.clip_seconds": cfg.speech.clip_seconds,
        "speech.sample_rate": cfg.speech.sample_rate,
        "speech.encoder_config": cfg.speech.encoder_config,
        "face.feature_dim": cfg.face.feature_dim,
        "face.encoder_config": cfg.face.encoder_config,
        "fusion.visual_layers": cfg.fusion.visual_layers,
        "fusion.speech_layers": cfg.fusion.speech_layers,
    }
    return _jsonable({"version": IDENTITY_VERSION, "encoders": encoders, "config": config})


def media_identity(processor) -> dict[str, Any]:
    """The preprocessing part of the identity: the processor's media settings."""
    return _jsonable({"media": processor.to_dict()["media"]})


def cache_identity(model: nn.Module, processor) -> dict[str, Any]:
    """Everything the cached features depend on (see the module docstring), JSON-ready."""
    return {**encoder_identity(model), **media_identity(processor)}


def _describe(name: str, have: Any, want: Any) -> str:
    if name.startswith("encoders."):
        return f"{name}: the encoder weights differ"
    return f"{name}: cache has {json.dumps(have)}, now {json.dumps(want)}"


def _diff(have: Any, want: Any, name: str) -> list[str]:
    if isinstance(have, dict) and isinstance(want, dict):
        lines: list[str] = []
        for key in sorted(set(have) | set(want)):
            lines += _diff(have.get(key, "<absent>"), want.get(key, "<absent>"), f"{name}.{key}")
        return lines
    return [] if have == want else [_describe(name, have, want)]


def identity_differences(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Readable lines for every difference, within the parts `expected` has (a partial identity
    from only a model, or only a processor, checks only its own parts)."""
    lines: list[str] = []
    for part, want in expected.items():
        lines += _diff(stored.get(part, "<absent>"), want, part)
    return lines
