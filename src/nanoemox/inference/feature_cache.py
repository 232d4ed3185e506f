"""`FeatureCachePredictor`: answers from cached encoder outputs instead of media."""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from nanoemox.data.manifest import Record
from nanoemox.inference.common import _flags, _Loaded
from nanoemox.inference.predictor import Predictor
from nanoemox.model.nanoemox import MediaFeatures


class FeatureCachePredictor(Predictor):
    """A Predictor that reads the frozen encoders' outputs from a feature cache instead of media.

    Answers equal those of `Predictor` on the same clips (the cache holds exactly what
    the encoders compute), at a fraction of the cost when many records share clips.
    `transform(record, features) -> (record, features)` may alter a sample first, e.g.
    to mask a modality in an ablation.
    """

    def __init__(self, model, processor, cache, *, transform=None, **kw: Any):
        super().__init__(model, processor, **kw)
        self.cache = cache
        self.transform = transform

    def _load(self, record: Record, root: str | os.PathLike) -> _Loaded:
        from nanoemox.features import NO_MEDIA_KEY, media_key

        key = media_key(record)
        error = self.cache.error(key)
        if error or key not in self.cache:
            return _Loaded(record, error=error or f"{key} is not in the feature cache")
        features = self.cache.get(key)
        if self.transform is not None:
            record, features = self.transform(record, features)
        with self._text_lock:
            encoded = self.processor.encode_text(record.task, record.text, record.history, record.candidates)
        sample = {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long), "features": features}
        # A transform may change a record's features (an ablation): then it shares them with no one.
        group = key if self.transform is None and key != NO_MEDIA_KEY else None
        return _Loaded(record, sample, flags=_flags(features), group=group)

    def features(self, sample: dict[str, Any]) -> MediaFeatures:
        from nanoemox.features import stack_features

        return stack_features([sample["features"]], dtype=self.dtype).to(self.device)

    def _batch(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        from nanoemox.features import stack_features

        text = self.processor.collate([{"input_ids": s["input_ids"]} for s in samples], padding_side="left")
        features = stack_features([s["features"] for s in samples], dtype=self.dtype).to(self.device)
        return {"input_ids": text["input_ids"].to(self.device), "attention_mask": text["attention_mask"].to(self.device),
                "features": features}
