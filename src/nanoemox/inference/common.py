"""Shared pieces of inference: file-type constants, device and dtype choice, loaded samples, results."""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from nanoemox.data.manifest import Record
from nanoemox.tasks import SCORABLE_TASKS, default_candidates

# Task facts live on the task objects (`nanoemox.tasks`); inference re-exports them by these names.
__all__ = ["AUDIO_EXTENSIONS", "DECODE_MODES", "FLOAT_KEYS", "MODEL_KEYS", "SCORABLE_TASKS", "VIDEO_EXTENSIONS",
           "Loaded", "Prediction", "candidate_labels", "chunks", "cpu_has_native_bf16", "default_candidates",
           "media_flags", "media_for", "pick_device", "pick_dtype", "scores_of"]

DECODE_MODES = ("generate", "score")
# Extensions read as audio only (everything else is handed to the video reader).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg")
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values", "face_pixel_values", "audio_values")
FLOAT_KEYS = ("pixel_values", "face_pixel_values", "audio_values")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX-BF16, ARM BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = set(fh.read().replace("\t", " ").split())
    except OSError:  # not Linux: no cheap way to ask, stay with float32
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 by default; "auto" chooses bfloat16 where the hardware has it natively.

    "auto": bfloat16 on a GPU that supports it and on a CPU with native bfloat16
    (`cpu_has_native_bf16`), float32 otherwise. The command line defaults to "auto".
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "float32", "fp32"):
        return torch.float32
    if dtype == "auto":
        if device.type == "cuda":
            use_bf16 = torch.cuda.is_bf16_supported()
        else:
            use_bf16 = device.type == "cpu" and cpu_has_native_bf16()
        return torch.bfloat16 if use_bf16 else torch.float32
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
    return names[dtype]


def media_for(path: str | os.PathLike | None) -> dict[str, str | None]:
    """Manifest `media` entry for one input file (audio-only extensions go to the audio reader); None: no media."""
    if path is None:
        return {"video": None, "audio": None, "faces": None}
    text = str(path)
    kind = "audio" if Path(text).suffix.lower() in AUDIO_EXTENSIONS else "video"
    return {"video": None, "audio": None, "faces": None, kind: text}


@dataclass
class Prediction:
    """One record's outcome. Unpacks as `(record, text, error)`.

    `flags` describes the media the model saw (audio_present, video_present, faces_found:
    frames with a face); `scores` holds closed-set probabilities when the answer was scored;
    `max_new_tokens` is the budget of a generated answer and `truncated` says it ran out.
    """

    record: Record
    text: str | None
    error: str | None
    flags: dict[str, Any] | None = None
    scores: dict[str, float] | None = None
    max_new_tokens: int | None = None
    truncated: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.record, self.text, self.error))


@dataclass
class Loaded:
    """A record read by a source: its sample (model inputs), or the error that stopped it.

    `group` identifies the sample's media: records with equal groups share a clip (None:
    shares with no one).
    """

    record: Record
    sample: dict[str, Any] | None = None
    error: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    group: Any = None


def media_flags(sample: Any) -> dict[str, Any]:
    """What the model saw of a sample's media: audio_present, video_present, faces_found, frames.

    `sample` is a sample dict or cached encoder features (anything indexable by those keys).
    """
    return {
        "audio_present": bool(sample["audio_present"]),
        "video_present": bool(sample["video_present"]),
        "faces_found": int(sample["faces_found"].sum()),
        "frames": int(sample["faces_found"].numel()),
    }


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def candidate_labels(candidates: Sequence[str]) -> list[str]:
    """Distinct, stripped, non-empty candidate labels; ValueError when none is left."""
    labels = list(dict.fromkeys(str(c).strip() for c in candidates if str(c).strip()))
    if not labels:
        raise ValueError("closed-set scoring needs at least one non-empty candidate label")
    return labels


def scores_of(labels: Sequence[str], totals: torch.Tensor) -> dict[str, Any]:
    """{"label", "probabilities", "log_likelihoods"} from candidates' total log-likelihoods [K].

    Probabilities are a softmax over the candidates' total log-likelihoods.
    """
    probs = torch.softmax(totals.double(), dim=0)
    best = int(torch.argmax(totals))
    return {
        "label": labels[best],
        "probabilities": {label: float(p) for label, p in zip(labels, probs)},
        "log_likelihoods": {label: float(v) for label, v in zip(labels, totals)},
    }
