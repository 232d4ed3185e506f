"""Confusion matrices of the closed-set tasks of a benchmark run, as counts and as PNG figures.

Closed-set groups: the MER sets of MER-UniBench (MER2023, MER2024, MELD, IEMOCAP)
and its sentiment sets (MOSI, MOSEI, SIMS, SIMSv2), the MIntRec / MIntRec2.0 intents
and SynthAffect's mer, mir and msa records. Rows are reference labels in the order
of the task's label set; columns are the same labels plus "other", which collects
generations that name no label of the set, missing predictions and failed samples.
Predictions are read with the task parsers of `nanoemox.tasks`, so these matrices
count literal labels: for MER-UniBench they complement, and can differ from, the
wheel-based hit rate of the benchmark table.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix

from nanoemox.data.manifest import Record
from nanoemox.eval.scoring import MER_UNIBENCH
from nanoemox.tasks import SCORABLE_TASKS, get_task, label_set, tasks_scored_by

log = logging.getLogger(__name__)

OTHER = "other"


@dataclass
class ClosedSet:
    """Records of one closed-set group, the task that parses them and the label order."""

    name: str
    task: str  # a closed-set task: mer, mir, msa
    labels: list[str]
    records: list[Record]


def _lower(labels: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(x).strip().lower() for x in labels))


def _known_label_set(name: str) -> list[str] | None:
    try:
        return _lower(label_set(name))
    except ValueError:
        return None


def _labels_for(name: str, task: str, records: Sequence[Record]) -> list[str]:
    """The task's label set: its own fixed set when callers cannot change it (MSA's sentiments), else a
    known dataset set, else the records' candidates, else the references."""
    if not get_task(task).takes_candidates:
        return list(get_task(task).candidates)
    labels = _known_label_set(name)
    if labels is None:
        with_candidates = next((r.candidates for r in records if r.candidates), None)
        labels = _lower(with_candidates) if with_candidates else sorted({reference_label(r) for r in records})
    # A reference outside the set still gets a row rather than failing.
    extra = sorted({reference_label(r) for r in records} - set(labels))
    return labels + extra


def closed_sets(benchmark: str, records: Sequence[Record]) -> list[ClosedSet]:
    """The closed-set groups of a benchmark's records (empty for emer and avamerg)."""
    groups: list[tuple[str, str, list[Record]]] = []
    if benchmark == "mer-unibench":
        squash = lambda s: re.sub(r"[^a-z0-9+]", "", s.lower())  # noqa: E731
        for spec in MER_UNIBENCH:
            if spec.kind not in ("hit", "waf"):
                continue
            chosen = [r for r in records if squash(r.dataset) in spec.aliases]
            groups.append((spec.column, tasks_scored_by(spec.kind)[0], chosen))  # hit: MER, WAF: MSA
    elif benchmark in ("mintrec", "mintrec2"):
        intent = tasks_scored_by("intent")[0]
        groups.append(({"mintrec": "MIntRec", "mintrec2": "MIntRec2.0"}[benchmark], intent,
                       [r for r in records if r.task == intent]))
    elif benchmark == "synthaffect":
        for task in SCORABLE_TASKS:
            groups.append((task.upper(), task, [r for r in records if r.task == task]))
    return [ClosedSet(name, task, _labels_for(name, task, recs), recs) for name, task, recs in groups if recs]


def reference_label(record: Record) -> str:
    """The gold label of a closed-set record (`Task.answer_class`); MSA valences become their sentiment word."""
    return get_task(record.task).answer_class(record.target)


def predicted_label(text: str | None, task: str, labels: Sequence[str]) -> str:
    """The label a generation names, or OTHER when it names none of `labels` (or is missing)."""
    if text is None:
        return OTHER
    found = get_task(task).parse(text, candidates=list(labels))
    found = str(found).strip().lower() if found is not None else None
    return found if found in labels else OTHER


def confusion(group: ClosedSet, predictions: dict[str, str]) -> dict:
    """Counts [reference][predicted] for one group, plus its closed-set accuracy."""
    columns = group.labels + [OTHER]
    truth = [reference_label(r) for r in group.records]
    guess = [predicted_label(predictions.get(r.id), group.task, group.labels) for r in group.records]
    matrix = confusion_matrix(truth, guess, labels=columns)[: len(group.labels)]  # [R, R+1]
    correct = sum(t == g for t, g in zip(truth, guess))
    return {"name": group.name, "task": group.task, "rows": list(group.labels), "columns": columns,
            "matrix": matrix.tolist(), "n": len(truth), "accuracy": correct / len(truth) if truth else None}


def save_confusion_png(table: dict, path: str | Path) -> Path:
    """Draw one confusion table (row-normalised colours, counts written in) to a PNG."""
    import matplotlib  # lazy: pyplot costs start-up time and only the PNGs need it

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    counts = np.asarray(table["matrix"], dtype=float)  # [R, C]
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    rows, cols = table["rows"], table["columns"]
    side = max(4.0, 0.45 * len(cols) + 2.0)
    fig, ax = plt.subplots(figsize=(side, max(3.5, 0.45 * len(rows) + 2.0)))
    try:
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(cols)), labels=cols, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        acc = table["accuracy"]
        ax.set_title(f"{table['name']} ({table['n']} samples"
                     + (f", accuracy {100 * acc:.1f}%)" if acc is not None else ")"), fontsize=10)
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
