"""The model's answers for each window of a long video (`answer_windows`).

Each window is one sample, prepared as a short clip is (`nanoemox.media.pipeline`):
its frames become the scene and face images (face crops from the detector's boxes when
the processor reads crops), its audio is cut into the processor's clips, and its text is
the subtitle lines that overlap it. Windows are answered in batches: the encoders run
once per batch on all of its windows, then each window's tasks share one prompt prefix
(`Session.answer_clip`): MER and MSA are scored over their labels (closed-set probabilities,
the softmax of each label's total log-likelihood) and OV-MER is generated.

A window whose media were damaged (`Window.problems`) gets no answer: its result holds
`error` and the media flags only, and the run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from nanoemox.inference.common import candidate_labels
from nanoemox.inference.prefetch import prefetched
from nanoemox.media.audio import clips_from_waveform
from nanoemox.media.pipeline import MediaConfig, blank_images, frames_to_images, silence
from nanoemox.media.stream import Window
from nanoemox.model.nanoemox import MediaFeatures
from nanoemox.tasks import SENTIMENTS, TIMELINE_TASKS, default_candidates, get_task
from nanoemox.timeline.subtitles import Subtitles

logger = logging.getLogger(__name__)

DEFAULT_TASKS = ("mer", "msa")


def check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """The tasks in order without repeats; ValueError unless they are a non-empty subset of TIMELINE_TASKS."""
    unknown = [t for t in tasks if t not in TIMELINE_TASKS]
    if unknown or not tasks:
        raise ValueError(f"timeline tasks must be a non-empty subset of {', '.join(TIMELINE_TASKS)}; got {list(tasks)}")
    return tuple(dict.fromkeys(tasks))


@dataclass
class Prepared:
    """A window with its model inputs (numpy), or only its problems when it cannot be answered."""

    window: Window
    text: str | None
    arrays: dict[str, np.ndarray] | None
    video_present: bool
    audio_present: bool


def prepare(window: Window, cfg: MediaConfig, subtitles: Subtitles | None) -> Prepared:
    """Model-ready arrays of one window (see the module docstring), made as `load_media` makes a clip's."""
    text = subtitles.between(window.start, window.end) if subtitles is not None else None
    video_present = window.frames is not None
    audio_present = window.waveform is not None and window.audio_samples > 0
    if window.problems:
        return Prepared(window, text, None, video_present, audio_present)
    pixels = faces = blank_images(cfg)
    if video_present:  # face crops from the reader's boxes
        pixels, faces, _ = frames_to_images(window.frames, cfg, boxes=list(window.faces))
    audio = clips_from_waveform(window.waveform, cfg.clip_samples, cfg.num_clips)[0] if audio_present else silence(cfg)
    arrays = {"pixel_values": pixels, "face_pixel_values": faces, "audio_values": audio}
    return Prepared(window, text, arrays, video_present, audio_present)


def prepared_windows(windows: Iterable[Window], cfg: MediaConfig, subtitles: Subtitles | None,
                     ahead: int = 16) -> Iterator[Prepared]:
    """`prepare` in a background thread, up to `ahead` windows ahead of the consumer (decoding
    overlaps the model). Errors of the reader are raised in the consumer."""
    return prefetched(windows, lambda window: prepare(window, cfg, subtitles), ahead=ahead,
                      name="nanoemox-timeline-media")


class WindowAnswerer:
    """Answers batches of prepared windows with one predictor's session and decoding (see the module docstring)."""

    def __init__(self, predictor, tasks: Sequence[str], labels: Sequence[str] | None = None):
        self.session = predictor.session
        self.decoding = predictor.decoding
        self.tasks = list(check_tasks(tasks))
        self.labels = candidate_labels(labels or default_candidates("mer"))
        self.sentiments = list(SENTIMENTS)

    def _prompts(self, text: str | None) -> list[list[int]]:
        return [self.session.encode_text(task, text, None, self.labels if task == "mer" else None) for task in self.tasks]

    def answer(self, batch: Sequence[Prepared]) -> list[dict[str, Any]]:
        """One result per window, in order (see `result_of`)."""
        ready = [p for p in batch if p.arrays is not None]
        answers: dict[int, dict[str, Any]] = {}
        if ready:
            features = self.features(ready)
            for b, prepared in enumerate(ready):
                answers[prepared.window.index] = self._answer_one(features.row(b), prepared.text)
        return [result_of(p, answers.get(p.window.index)) for p in batch]

    def features(self, ready: Sequence[Prepared]) -> MediaFeatures:
        """The encoders' outputs for windows with arrays, one encoder call for all of them."""
        stacked = [torch.from_numpy(np.stack([p.arrays[k] for p in ready]))
                   for k in ("pixel_values", "face_pixel_values", "audio_values")]
        return self.session.encode_media(*stacked)

    def _answer_one(self, features: MediaFeatures, text: str | None) -> dict[str, Any]:
        offered = {"mer": self.labels, "msa": self.sentiments}
        answers = self.session.answer_clip(features, self._prompts(text), self.tasks,
                                           [offered.get(task) for task in self.tasks], "score", self.decoding)
        out: dict[str, Any] = {}
        for task, answer in zip(self.tasks, answers):
            if task == "mer":
                probs = answer["scores"]
                label = max(probs, key=probs.get)
                out["mer"] = {"label": label, "confidence": probs[label], "probabilities": probs}
            elif task == "msa":
                probs = answer["scores"]
                out["msa"] = {"sentiment": max(probs, key=probs.get), "valence": probs["positive"] - probs["negative"],
                              "probabilities": probs}
            else:  # ovmer: generated
                out["ovmer"] = {"words": get_task("ovmer").parse(answer["text"]), "text": answer["text"],
                                "truncated": answer["truncated"]}
        return out


def result_of(prepared: Prepared, answers: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON result of one window: times, subtitle, media flags, answers per task or `error`."""
    window = prepared.window
    result: dict[str, Any] = {
        "index": window.index, "start": window.start, "end": window.end,
        "frame_times": [None if t is None else round(t, 3) for t in window.frame_times],
        "faces_found": window.faces_found if prepared.video_present else 0,
        "frames": len(window.frame_times), "video_present": prepared.video_present,
        "audio_present": prepared.audio_present, "text": prepared.text,
    }
    if window.problems:
        result["error"] = "; ".join(window.problems)
    if answers:
        result.update(answers)
    return result


def answer_windows(answerer: WindowAnswerer, prepared: Iterable[Prepared], batch_size: int = 8) -> Iterator[dict[str, Any]]:
    """Results of the windows in order, `batch_size` windows per encoder call."""
    batch: list[Prepared] = []
    for item in prepared:
        batch.append(item)
        if len(batch) >= batch_size:
            yield from answerer.answer(batch)
            batch = []
    if batch:
        yield from answerer.answer(batch)
