"""`Predictor`: the public entry point that composes a session, a source, a decoding and a runner."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from nanoemox.data.manifest import Record
from nanoemox.decoding import Decoding, read_budgets
from nanoemox.inference.common import Prediction, chunks
from nanoemox.inference.runner import Runner
from nanoemox.inference.session import Session
from nanoemox.inference.sources import FeatureCacheSource, MediaSource
from nanoemox.model.nanoemox import MediaFeatures

# Settings that may be given one by one instead of as a `Decoding` (folded into one, once, here).
DECODING_OPTIONS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


class Predictor:
    """A model and its processor on one device, answering samples and records.

        predictor = Predictor.from_pretrained("runs/p3/final", decoding=Decoding(max_new_tokens="eri=256"))
        predictor = Predictor.from_pretrained("runs/p3/final", max_new_tokens=64)   # the same, one setting given
        Predictor(model, processor, source=FeatureCacheSource(cache))                # answers from cached features

    `session` does the model work, `source` reads samples (media files by default),
    `runner` turns records into predictions with `decoding`.
    """

    def __init__(self, model, processor, *, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None, batch_size: int = 8, decoding: Decoding | None = None,
                 source=None, media_cache: int = 16, model_budgets: dict[str, int] | None = None, **options: Any):
        unknown = sorted(set(options) - set(DECODING_OPTIONS))
        if unknown:
            raise TypeError(f"Predictor got unexpected keyword argument(s) {', '.join(unknown)}")
        if decoding is not None and options:
            raise TypeError("give the decoding settings either as decoding= or one by one, not both")
        decoding = decoding if decoding is not None else Decoding(**options)
        if model_budgets is not None:
            decoding = decoding.for_model(model_budgets)
        self.session = Session(model, processor, device=device, dtype=dtype)
        self.source = source if source is not None else MediaSource(media_cache)
        self.runner = Runner(self.session, self.source, decoding, batch_size)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, **kw: Any) -> "Predictor":
        """Load the model and processor of a model folder onto `device` (default: CUDA if present).

        The folder's measured answer budgets apply where the caller sets none.
        """
        session = Session.from_pretrained(model_dir, device=device, dtype=dtype)
        kw.setdefault("model_budgets", read_budgets(model_dir))
        return cls(session.model, session.processor, device=session.device, dtype=session.dtype, **kw)

    # ------------------------------------------------------------------ what it is

    @property
    def model(self):
        return self.session.model

    @property
    def processor(self):
        return self.session.processor

    @property
    def tokenizer(self):
        return self.session.tokenizer

    @property
    def device(self) -> torch.device:
        return self.session.device

    @property
    def dtype(self) -> torch.dtype:
        return self.session.dtype

    @property
    def decoding(self) -> Decoding:
        return self.runner.decoding

    @property
    def batch_size(self) -> int:
        return self.runner.batch_size

    def budget(self, task: str | None) -> int:
        """Maximum new tokens for `task` (`Decoding.budget`)."""
        return self.decoding.budget(task)

    def settings(self) -> dict[str, Any]:
        """Everything that decides an answer, for run records: decoding, budgets and where each came from."""
        return {"decoding": self.decoding.effective(), "max_new_tokens": self.decoding.budgets(),
                "max_new_tokens_source": self.decoding.budget_sources(), **self.session.describe()}

    # ------------------------------------------------------------------ samples

    def sample(self, task: str, *, video=None, audio=None, faces=None, text: str | None = None,
               history: Sequence[dict] | None = None, candidates: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """One unbatched sample from media files, as `processor.process` gives it (without a target)."""
        media = self.source if isinstance(self.source, MediaSource) else MediaSource(0)
        return media.sample(self.session, task, video=video, audio=audio, faces=faces, text=text, history=history,
                            candidates=candidates)

    def features(self, sample: dict[str, Any]) -> MediaFeatures:
        """The frozen encoders' outputs for one sample of this predictor's source, batch of 1, on the device."""
        return self.source.features(self.session, sample)

    def generate(self, samples: Sequence[dict[str, torch.Tensor]], task: str | None = None,
                 max_new_tokens: int | None = None) -> list[str]:
        """Answer text of each sample (batched by `batch_size`, left padding, new tokens only)."""
        budget = max_new_tokens if max_new_tokens is not None else self.budget(task)
        texts: list[str] = []
        for chunk in chunks(samples, self.batch_size):
            texts.extend(text for text, _ in self.generate_batch(chunk, budget))
        return texts

    def generate_batch(self, samples: Sequence[dict[str, Any]], max_new_tokens: int) -> list[tuple[str, bool]]:
        """(answer, truncated) per sample of one batch; truncated: the budget ran out before EOS."""
        return self.runner.generate(samples, max_new_tokens)

    def score(self, sample: dict[str, torch.Tensor], candidates: Sequence[str], task: str) -> dict[str, Any]:
        """Rank candidates by log-likelihood: {"label", "probabilities", "log_likelihoods"}.

        Probabilities are a softmax over the candidates' total log-likelihoods.
        """
        return self.runner.score(sample, candidates, task)

    def answer_shared(self, features: MediaFeatures, prompts: Sequence[Sequence[int]], tasks: Sequence[str],
                      candidates: Sequence[Sequence[str] | None], decode: str) -> list[dict[str, Any]]:
        """Answers of several tasks of one clip from its encoder features (`Session.answer_clip`)."""
        return self.session.answer_clip(features, prompts, tasks, candidates, decode, self.decoding)

    # ------------------------------------------------------------------ records

    def predict_records(self, records: Iterable[Record], root: str | os.PathLike = ".",
                        tasks: Sequence[str] | None = None, progress: Callable[[int], Any] | None = None,
                        decode: str = "generate") -> Iterator[Prediction]:
        """Answer records in order, `batch_size` at a time; each result unpacks as (record, text, error).

        See `Runner.predict`.
        """
        return self.runner.predict(records, root, tasks, progress, decode)


def FeatureCachePredictor(model, processor, cache, *, transform=None, **kw: Any) -> Predictor:  # noqa: N802
    """A Predictor that reads the frozen encoders' outputs from a feature cache instead of media.

    Answers equal those from media on the same clips (`sources.FeatureCacheSource`).
    """
    return Predictor(model, processor, source=FeatureCacheSource(cache, transform), **kw)
