"""Shared pieces of inference: task and file-type constants, device and dtype choice, results."""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from nanoemox.data.manifest import Record
from nanoemox.tasks import SENTIMENTS, label_set

# Tasks with a fixed answer set, which closed-set scoring can rank.
SCORABLE_TASKS = ("msa", "mer", "mir")
DECODE_MODES = ("generate", "score")
# Extensions read as audio only (everything else is handed to the video reader).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg")
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values", "face_pixel_values", "audio_values")
FLOAT_KEYS = ("pixel_values", "face_pixel_values", "audio_values")


def default_candidates(task: str) -> list[str] | None:
    """Labels offered when the caller gives none: sentiments, 7 basic emotions, 20 MIntRec intents."""
    if task == "msa":
        return list(SENTIMENTS)
    if task == "mer":
        return label_set("ferv39k")  # anger, disgust, fear, happy, neutral, sad, surprise
    if task == "mir":
        return label_set("mintrec")
    return None


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
class _Loaded:
    record: Record
    sample: dict[str, torch.Tensor] | None = None
    error: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    group: Any = None  # what identifies the sample's media: records with equal groups share a clip


def _flags(sample: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "audio_present": bool(sample["audio_present"]),
        "video_present": bool(sample["video_present"]),
        "faces_found": int(sample["faces_found"].sum()),
        "frames": int(sample["faces_found"].numel()),
    }


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
