"""Emotion-wheel metrics of MER-UniBench: MER hit rate and OV-MER F-score.

Both collapse emotion words to level-1 wheel clusters (see `nanoemox.metrics.wheel`)
once per wheel, score each wheel separately and report the plain mean of the five.
All numbers are fractions in [0, 1].
"""

from __future__ import annotations

from typing import Sequence

from nanoemox.metrics.wheel import WHEELS, WheelTables, load_tables


def _check_lengths(name: str, predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{name}: {len(predictions)} predictions but {len(references)} references; "
            "pass one prediction (possibly empty) per reference"
        )


def clusters_of(words: Sequence[str], wheel: int, tables: WheelTables) -> set[str]:
    """Set of level-1 clusters of `words` on one wheel; unmapped words are dropped."""
    found = (tables.cluster(word, wheel) for word in words)
    return {cluster for cluster in found if cluster is not None}


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def hit_rate(
    predictions: list[list[str]],
    references: list[str],
    tables: WheelTables | None = None,
) -> dict:
    """Share of samples where any predicted word shares the reference's wheel cluster.

    Per wheel, samples whose reference maps to no cluster (such as "neutral") are
    left out, as in the reference. Returns `score` (mean over wheels), `per_wheel`
    (five fractions) and `counted` (samples kept on each wheel).
    """
    _check_lengths("hit_rate", predictions, references)
    tables = tables or load_tables()
    per_wheel, counted = [], []
    for wheel in WHEELS:
        hits = []
        for words, reference in zip(predictions, references):
            target = tables.cluster(reference, wheel)
            if target is None:
                continue
            hits.append(1.0 if target in clusters_of(words, wheel, tables) else 0.0)
        per_wheel.append(_mean(hits))
        counted.append(len(hits))
    return {"score": _mean(per_wheel), "per_wheel": per_wheel, "counted": counted}


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def ov_fscore(
    predictions: list[list[str]],
    references: list[list[str]],
    tables: WheelTables | None = None,
) -> dict:
    """Set-overlap F-score between predicted and reference emotion words, per wheel.

    Per sample on one wheel: P = |G & Pr| / |Pr| and R = |G & Pr| / |G| over cluster
    sets (an empty prediction scores 0, 0; a reference that maps to nothing is left
    out, as in the reference code). P and R are averaged over samples, then
    F = 2PR / (P + R). Returns `fscore`, `precision`, `recall` (means over the five
    wheels), `per_wheel` ([{fscore, precision, recall}] x 5) and `counted`.
    """
    _check_lengths("ov_fscore", predictions, references)
    tables = tables or load_tables()
    per_wheel, counted = [], []
    for wheel in WHEELS:
        precisions, recalls = [], []
        for words, gold_words in zip(predictions, references):
            gold = clusters_of(gold_words, wheel, tables)
            if not gold:
                continue
            pred = clusters_of(words, wheel, tables)
            overlap = len(gold & pred)
            precisions.append(overlap / len(pred) if pred else 0.0)
            recalls.append(overlap / len(gold) if pred else 0.0)
        p, r = _mean(precisions), _mean(recalls)
        per_wheel.append({"fscore": _f1(p, r), "precision": p, "recall": r})
        counted.append(len(precisions))
    return {
        "fscore": _mean([w["fscore"] for w in per_wheel]),
        "precision": _mean([w["precision"] for w in per_wheel]),
        "recall": _mean([w["recall"] for w in per_wheel]),
        "per_wheel": per_wheel,
        "counted": counted,
    }
