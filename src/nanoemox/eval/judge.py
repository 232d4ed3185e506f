"""EMER scoring with an LLM judge: Clue Overlap and Label Overlap (1-10 each).

Two steps per score, each with a replaceable prompt template (temperature 0):

- Clue Overlap: the judge summarises the emotional content (state and cues) of the
  reference and of the predicted description separately
  (`emer_clue_summary`), then rates how much the two summaries overlap
  (`emer_clue_score`).
- Label Overlap: the judge names the most likely emotion of each description
  (`emer_label_extract`), then rates how close the two emotions are
  (`emer_label_score`).

The score is the first number in the judge's reply; a reply without a number in
1..10, or a request that fails for good, is recorded as a failure for that sample
and left out of the mean, never a crash. Step-1 replies are cached like any other,
so the reference summaries are computed once across runs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Sequence

from nanoemox.eval.llm import LLMClient, LLMError, load_template, user_message

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
SCORE_RANGE = (1.0, 10.0)
DEFAULT_TEMPLATES = {
    "clue_summary": "emer_clue_summary",
    "clue_score": "emer_clue_score",
    "label_extract": "emer_label_extract",
    "label_score": "emer_label_score",
}
_PLACEHOLDERS = {
    "clue_summary": ["description"],
    "clue_score": ["reference", "prediction"],
    "label_extract": ["description"],
    "label_score": ["reference", "prediction"],
}


def parse_score(reply: str | None) -> float | None:
    """The first number in `reply` if it lies in 1..10, else None."""
    match = _NUMBER.search(reply or "")
    if match is None:
        return None
    value = float(match.group(0))
    low, high = SCORE_RANGE
    return value if low <= value <= high else None


def _first_line(reply: str) -> str:
    line = reply.strip().splitlines()[0] if reply.strip() else ""
    return line.strip().strip(".\"'*").strip()


@dataclass
class _Step:
    """Replies of one judge step, aligned with the samples; None marks a failure."""

    values: list[str | None]
    errors: list[str | None] = field(default_factory=list)


class EmerJudge:
    """Clue and Label Overlap of predicted EMER descriptions against references."""

    def __init__(self, client: LLMClient, templates: dict[str, str | os.PathLike] | None = None):
        names = {**DEFAULT_TEMPLATES, **(templates or {})}
        unknown = sorted(set(names) - set(DEFAULT_TEMPLATES))
        if unknown:
            raise ValueError(f"unknown judge template key(s) {unknown}; valid: {sorted(DEFAULT_TEMPLATES)}")
        self.client = client
        self.templates = {k: load_template(v, _PLACEHOLDERS[k]) for k, v in names.items()}

    def _ask(self, key: str, fills: Sequence[dict[str, str]]) -> _Step:
        conversations = [user_message(self.templates[key], **f) for f in fills]
        replies = self.client.chat_many(conversations, temperature=0.0)
        values = [None if isinstance(r, LLMError) else r for r in replies]
        errors = [str(r) if isinstance(r, LLMError) else None for r in replies]
        return _Step(values, errors)

    def _describe(self, key: str, texts: Sequence[str]) -> _Step:
        return self._ask(key, [{"description": t} for t in texts])

    def _rate(self, key: str, refs: Sequence[str | None], preds: Sequence[str | None]) -> list[dict]:
        todo = [i for i, (r, p) in enumerate(zip(refs, preds)) if r is not None and p is not None]
        step = self._ask(key, [{"reference": refs[i], "prediction": preds[i]} for i in todo])
        out = [{"score": None, "error": "an earlier judge step failed"} for _ in refs]
        for i, reply, error in zip(todo, step.values, step.errors):
            score = parse_score(reply)
            if error:
                out[i] = {"score": None, "error": error}
            elif score is None:
                out[i] = {"score": None, "error": f"no score in 1..10 in reply {reply!r:.120}"}
            else:
                out[i] = {"score": score, "error": None}
        return out

    def clue_overlap(self, predictions: Sequence[str], references: Sequence[str]) -> list[dict]:
        """Per sample {score, error} for Clue Overlap."""
        summaries = self._describe("clue_summary", list(references) + list(predictions)).values
        n = len(references)
        return self._rate("clue_score", summaries[:n], summaries[n:])

    def label_overlap(self, predictions: Sequence[str], references: Sequence[str]) -> list[dict]:
        """Per sample {score, error, labels} for Label Overlap."""
        raw = self._describe("label_extract", list(references) + list(predictions)).values
        labels = [None if r is None or not _first_line(r) else _first_line(r) for r in raw]
        n = len(references)
        rated = self._rate("label_score", labels[:n], labels[n:])
        for i, item in enumerate(rated):
            item["labels"] = (labels[i], labels[n + i])
        return rated

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> dict:
        """Mean Clue and Label Overlap (1-10 scale) over the samples the judge could score."""
        if len(predictions) != len(references):
            raise ValueError(
                f"EmerJudge.score: {len(predictions)} predictions but {len(references)} references"
            )
        clue = self.clue_overlap(predictions, references)
        label = self.label_overlap(predictions, references)
        return summarise_judgements(clue, label)


def _mean_score(items: Sequence[dict]) -> float | None:
    scores = [item["score"] for item in items if item["score"] is not None]
    return sum(scores) / len(scores) if scores else None


def summarise_judgements(clue: Sequence[dict], label: Sequence[dict]) -> dict:
    """Aggregate per-sample judgements: means (None when nothing was scored) and failure counts."""
    return {
        "clue_overlap": _mean_score(clue),
        "label_overlap": _mean_score(label),
        "clue_failures": sum(item["score"] is None for item in clue),
        "label_failures": sum(item["score"] is None for item in label),
        "counted": len(clue),
        "samples": [
            {"clue": c["score"], "label": lab["score"], "labels": lab.get("labels"),
             "errors": [e for e in (c["error"], lab["error"]) if e]}
            for c, lab in zip(clue, label)
        ],
    }
