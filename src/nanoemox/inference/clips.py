"""Clips in, answers out: one record per task for a clip, and one JSON result per clip."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from nanoemox.data.manifest import Record
from nanoemox.inference.common import Prediction, default_candidates, media_for
from nanoemox.inference.predictor import Predictor
from nanoemox.tasks import EMOTION_TASK, INTENT_TASK, TASK_NAMES, get_task


def clip_records(
    path: str | os.PathLike | None,
    tasks: Sequence[str] = TASK_NAMES,
    *,
    clip_id: str | None = None,
    subtitle: str | None = None,
    candidates: Sequence[str] | None = None,
    intents: Sequence[str] | None = None,
) -> list[Record]:
    """One record per task for one clip (or audio file); the tasks that take candidates (MER, MIR) get lists.

    `candidates` (MER) and `intents` (MIR) default to `default_candidates`, as do the lists of
    other tasks that take candidates. With `path`
    None the model answers from the subtitle alone (media flags say so).
    """
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid tasks: {', '.join(TASK_NAMES)}")
    given = {EMOTION_TASK: candidates, INTENT_TASK: intents}
    offered = {task: list(given.get(task) or default_candidates(task)) for task in tasks if get_task(task).takes_candidates}
    return [
        Record(
            id=clip_id or (Path(path).stem if path is not None else "text"),
            dataset="input",
            split="test",
            task=task,
            media=media_for(path),
            text=subtitle,
            candidates=offered.get(task),
            extra={"input": str(path) if path is not None else None},
        )
        for task in tasks
    ]


def answer_entry(task: str, text: str, candidates: Sequence[str] | None = None, scores: dict | None = None) -> dict[str, Any]:
    """The raw answer, its parsed form (`get_task(task).parse`) and scored probabilities if any."""
    entry: dict[str, Any] = {"text": text, "parsed": get_task(task).parse(text, candidates=candidates)}
    if scores is not None:
        entry["probabilities"] = scores
    return entry


def summarize(predictions: Sequence[Prediction]) -> dict[str, Any]:
    """One JSON-ready result for the predictions of one input: answers per task, media flags, errors."""
    first = predictions[0].record
    result: dict[str, Any] = {"id": first.id, "input": first.extra.get("input") or first.id}
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in predictions:
        task = p.record.task
        if p.error is not None:
            errors[task] = p.error
            continue
        answers[task] = answer_entry(task, p.text, p.record.candidates or default_candidates(task), p.scores)
        if p.truncated:  # the answer ran out of its token budget before it ended
            answers[task]["truncated"] = True
        result.update(p.flags or {})
    if answers:
        result["answers"] = answers
    if errors and not answers:
        result["error"] = next(iter(errors.values()))  # the shared media failed: one message says it
    elif errors:
        result["errors"] = errors
    return result


def analyze(
    predictor: Predictor,
    groups: Iterable[Sequence[Record]],
    root: str | os.PathLike = ".",
    decode: str = "generate",
    progress: Callable[[int], Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Answer groups of records (one group per input: a clip's tasks, or one manifest line).

    Yields one `summarize` result per group, in order, as soon as the group is answered.
    """
    tagged = (
        dataclasses.replace(r, extra={**r.extra, "_group": g})
        for g, group in enumerate(groups)
        for r in group
    )
    predictions = predictor.predict_records(tagged, root, progress=progress, decode=decode)
    for _, items in itertools.groupby(predictions, key=lambda p: p.record.extra["_group"]):
        items = list(items)
        for p in items:
            p.record.extra.pop("_group", None)
        yield summarize(items)
