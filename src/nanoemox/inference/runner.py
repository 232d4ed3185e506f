"""`Runner`: records in, predictions out, in order: batching, prefetch and the shared-clip path in one place.

Records are read `batch_size` at a time by a source (`sources`), the next chunk in a
background thread while this one is answered (`prefetch.prefetched`). Within a chunk,
records that share a clip are answered together from one encoder pass and one shared
prompt prefix (`Session.answer_clip`); the others are scored one by one or generated in
batches of one task. Results are written by the caller through `results_file.ResultsFile`,
which makes every long run resumable.
"""

from __future__ import annotations

import collections
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

from nanoemox.data.manifest import Record
from nanoemox.decoding import Decoding
from nanoemox.inference.common import DECODE_MODES, Loaded, Prediction, candidate_labels, chunks, scores_of
from nanoemox.inference.prefetch import prefetched
from nanoemox.inference.session import Session
from nanoemox.tasks import SCORABLE_TASKS, TASK_NAMES, default_candidates, get_task


class Runner:
    """Answers records with one session, one source and one decoding (see the module docstring)."""

    def __init__(self, session: Session, source, decoding: Decoding, batch_size: int = 8):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.session = session
        self.source = source
        self.decoding = decoding
        self.batch_size = int(batch_size)

    def predict(self, records: Iterable[Record], root: str | os.PathLike = ".", tasks: Sequence[str] | None = None,
                progress: Callable[[int], Any] | None = None, decode: str = "generate") -> Iterator[Prediction]:
        """Answer records in order; each result unpacks as (record, text, error).

        `tasks` keeps only records of those tasks. `progress(n)` is called after every
        chunk with the number of records finished. With `decode="score"`, MSA, MER and MIR
        records are ranked over their candidates (or the task's default candidates).
        """
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
        unknown = sorted(set(tasks or ()) - set(TASK_NAMES))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; valid tasks: {', '.join(TASK_NAMES)}")
        selected = (r for r in records if tasks is None or r.task in tasks)
        loading = prefetched(chunks(selected, self.batch_size), lambda chunk: [self.load(r, root) for r in chunk],
                             ahead=1, name="nanoemox-media")
        try:
            for loaded in loading:
                answers = self._answer_chunk(loaded, decode)
                for i, item in enumerate(loaded):
                    answer = answers.get(i, {})
                    yield Prediction(item.record, answer.get("text"), item.error, item.flags or None,
                                     answer.get("scores"), answer.get("max_new_tokens"), answer.get("truncated", False))
                if progress is not None:
                    progress(len(loaded))
        finally:
            loading.close()  # stops the prefetch thread now, also when the caller stops early

    def load(self, record: Record, root: str | os.PathLike) -> Loaded:
        return self.source.load(self.session, record, root)

    def generate(self, samples: Sequence[dict[str, Any]], budget: int) -> list[tuple[str, bool]]:
        """(answer, truncated) per sample, one batch of the source's samples."""
        return self.session.generate(self.source.collate(self.session, samples), [budget] * len(samples), self.decoding)

    def score(self, sample: dict[str, Any], candidates: Sequence[str], task: str) -> dict[str, Any]:
        """Rank candidates by log-likelihood: {"label", "probabilities", "log_likelihoods"}."""
        labels = candidate_labels(candidates)
        inputs = self.source.collate(self.session, [sample])
        return scores_of(labels, self.session.log_likelihoods(inputs, labels, task))

    def _answer_chunk(self, loaded: list[Loaded], decode: str) -> dict[int, dict[str, Any]]:
        """Answers of the readable records of one chunk, keyed by position in the chunk.

        Each answer: {"text", "scores"} when scored, {"text", "max_new_tokens", "truncated"}
        when generated.
        """
        groups: dict[Any, list[int]] = collections.defaultdict(list)
        for i, item in enumerate(loaded):
            if item.sample is not None:
                groups[item.group if item.group is not None else ("alone", i)].append(i)
        answers: dict[int, dict[str, Any]] = {}
        alone = []
        for rows in groups.values():
            if len(rows) > 1:
                answers.update(self._answer_clip(loaded, rows, decode))
            else:
                alone += rows
        answers.update(self._answer_by_task(loaded, sorted(alone), decode))
        return answers

    def _answer_by_task(self, loaded: list[Loaded], rows: list[int], decode: str) -> dict[int, dict[str, Any]]:
        """One record per clip: scored one by one, or generated in batches of one task."""
        answers: dict[int, dict[str, Any]] = {}
        by_task: dict[str, list[int]] = collections.defaultdict(list)
        for i in rows:
            item = loaded[i]
            task = item.record.task
            if decode == "score" and task in SCORABLE_TASKS:
                result = self.score(item.sample, item.record.candidates or default_candidates(task), task)
                answers[i] = {"text": get_task(task).format_target(result["label"]), "scores": result["probabilities"]}
            else:
                by_task[task].append(i)
        for task, task_rows in by_task.items():
            budget = self.decoding.budget(task)
            generated = self.generate([loaded[i].sample for i in task_rows], budget)
            answers.update({i: {"text": text, "max_new_tokens": budget, "truncated": cut}
                            for i, (text, cut) in zip(task_rows, generated)})
        return answers

    def _answer_clip(self, loaded: list[Loaded], rows: list[int], decode: str) -> dict[int, dict[str, Any]]:
        """Several tasks of one clip: one encoder pass and one shared prompt prefix."""
        items = [loaded[i] for i in rows]
        features = self.source.features(self.session, items[0].sample)
        answers = self.session.answer_clip(features, [item.sample["input_ids"].tolist() for item in items],
                                           [item.record.task for item in items],
                                           [item.record.candidates for item in items], decode, self.decoding)
        return dict(zip(rows, answers))
