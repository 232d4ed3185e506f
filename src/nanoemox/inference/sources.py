"""Where samples come from: media files (`MediaSource`) or a feature cache (`FeatureCacheSource`).

A source turns a record into a `Loaded` sample (or the record's error), batches samples
into model inputs, and gives one sample's encoder features; it answers nothing itself.
The runner and the multi-task path take any source; the session does the model work:

    load(session, record, root) -> Loaded       # runs in the prefetch thread
    collate(session, samples) -> model inputs   # on the device, for `Session.generate` / `log_likelihoods`
    features(session, sample) -> MediaFeatures  # batch of 1, for `Session.answer_clip`

Timeline windows and (in the future) live streams are sources of prepared windows
rather than records; they go through the same session calls (`windows`).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any, Callable, Sequence

import torch

from nanoemox.data.manifest import MEDIA_KINDS, Record
from nanoemox.features import NO_MEDIA_KEY, FeatureCache, media_key, stack_features
from nanoemox.inference.common import Loaded, media_flags
from nanoemox.inference.session import Session
from nanoemox.media.errors import MediaError
from nanoemox.model.nanoemox import MediaFeatures

logger = logging.getLogger(__name__)


class MediaSource:
    """Samples decoded from media files, the last `cache_size` decodings kept (tasks often share a clip)."""

    def __init__(self, cache_size: int = 16):
        self.cache_size = int(cache_size)
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    def media(self, session: Session, video=None, audio=None, faces=None) -> dict[str, torch.Tensor]:
        """Media tensors of one input, decoded once and reused."""
        key = tuple(None if p is None else str(p) for p in (video, audio, faces))
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        # Same tensors as NanoEmoXProcessor.process builds (tests compare the two).
        tensors = session.processor.load_media(video, audio, faces).tensors()
        with self._cache_lock:
            self._cache[key] = tensors
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return tensors

    def sample(self, session: Session, task: str, *, video=None, audio=None, faces=None, text: str | None = None,
               history: Sequence[dict] | None = None, candidates: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """One unbatched sample, as `processor.process` gives it (without a target)."""
        media = self.media(session, video, audio, faces)
        ids = session.encode_text(task, text, history, candidates)
        return {"input_ids": torch.tensor(ids, dtype=torch.long), **media}

    def load(self, session: Session, record: Record, root: str | os.PathLike) -> Loaded:
        try:
            sample = self.sample(session, record.task, **record.inputs(root))
        except (MediaError, OSError, ValueError) as exc:
            # One unreadable file must not stop a long run: the record carries the error.
            logger.warning("record %s: %s", record.id, exc)
            return Loaded(record, error=f"{type(exc).__name__}: {exc}")
        media = tuple(None if v is None else str(v) for v in (record.media_path(k, root) for k in MEDIA_KINDS))
        return Loaded(record, sample, flags=media_flags(sample), group=media if any(media) else None)

    def collate(self, session: Session, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return session.model_inputs(session.processor.collate(samples, padding_side="left"))

    def features(self, session: Session, sample: dict[str, Any]) -> MediaFeatures:
        return session.encode_media(sample["pixel_values"][None], sample["face_pixel_values"][None],
                                    sample["audio_values"][None])


class FeatureCacheSource:
    """Samples whose media are read from a feature cache: the frozen encoders' outputs, computed once.

    Answers equal those from media (the cache holds exactly what the encoders compute),
    at a fraction of the cost when many records share clips. `transform(record,
    features) -> (record, features)` may alter a sample first, e.g. to mask a modality
    in an ablation.
    """

    def __init__(self, cache: FeatureCache, transform: Callable[[Record, dict], tuple[Record, dict]] | None = None):
        self.cache = cache
        self.transform = transform

    def load(self, session: Session, record: Record, root: str | os.PathLike) -> Loaded:
        key = media_key(record)
        error = self.cache.error(key)
        if error or key not in self.cache:
            return Loaded(record, error=error or f"{key} is not in the feature cache")
        features = self.cache.get(key)
        if self.transform is not None:
            record, features = self.transform(record, features)
        ids = session.encode_text(record.task, record.text, record.history, record.candidates)
        sample = {"input_ids": torch.tensor(ids, dtype=torch.long), "features": features}
        # A transform may change a record's features (an ablation): then it shares them with no one.
        group = key if self.transform is None and key != NO_MEDIA_KEY else None
        return Loaded(record, sample, flags=media_flags(features), group=group)

    def collate(self, session: Session, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        text = session.processor.collate([{"input_ids": s["input_ids"]} for s in samples], padding_side="left")
        features = stack_features([s["features"] for s in samples], dtype=session.dtype)
        return session.model_inputs({**text, "features": features})

    def features(self, session: Session, sample: dict[str, Any]) -> MediaFeatures:
        return stack_features([sample["features"]], dtype=session.dtype).to(session.device)
