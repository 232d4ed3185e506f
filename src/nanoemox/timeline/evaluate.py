"""Scoring a timeline against ground-truth segments (`nanoemox synth --compose` writes them).

- **Window accuracy.** A window's true label is the label of the ground-truth segment
  that covers most of it; a window split evenly between two segments (a boundary at
  its centre) accepts either. Reported for the raw per-window labels and for the
  smoothed ones that segments are built from.
- **Time accuracy.** The share of the video's seconds whose predicted segment label
  equals the true one.
- **Boundary error.** For each true boundary, the distance in seconds to the nearest
  predicted one (mean and median), and the same from predicted to true boundaries
  (a measure of spurious boundaries); with the counts of both.
- **Boundary F1.** Predicted and true boundaries matched one to one (greedily, closest
  pairs first) when at most `tolerance` seconds apart; precision, recall and F1.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Sequence

import numpy as np

from nanoemox.tasks import EMOTION_TASK
from nanoemox.timeline.segments import smoothed

EVEN_SPLIT = 1e-6  # coverage differences below this (seconds) are a tie


def read_truth(path: str | os.PathLike, label_column: str = "emotion") -> list[tuple[float, float, str]]:
    """(start, end, label) rows of a ground-truth segments CSV (columns start, end, `label_column`)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in ("start", "end", label_column) if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: expected a CSV with columns start, end, {label_column}"
                         + (f"; missing {missing}" if missing else "; it holds no rows"))
    return [(float(r["start"]), float(r["end"]), r[label_column]) for r in rows]


def true_labels(start: float, end: float, truth: Sequence[tuple[float, float, str]]) -> set[str]:
    """The label(s) covering most of [start, end] (two on an even split)."""
    cover: dict[str, float] = {}
    for a, b, label in truth:
        overlap = min(end, b) - max(start, a)
        if overlap > 0:
            cover[label] = cover.get(label, 0.0) + overlap
    if not cover:
        return set()
    best = max(cover.values())
    return {label for label, seconds in cover.items() if best - seconds < EVEN_SPLIT}


def window_accuracy(windows: Sequence[dict[str, Any]], truth, labels: Sequence[str], smooth: int = 1) -> dict[str, Any]:
    """Accuracy of the windows' MER labels (answered windows only), raw (`smooth=1`) or smoothed."""
    answered = np.array([EMOTION_TASK in w for w in windows])
    probs = np.array([[w[EMOTION_TASK]["probabilities"][label] for label in labels] if EMOTION_TASK in w
                      else [0.0] * len(labels)
                      for w in windows], dtype=np.float64)
    chosen = smoothed(probs, answered, smooth) if smooth > 1 else probs
    hits = [labels[int(np.argmax(chosen[i]))] in true_labels(w["start"], w["end"], truth)
            for i, w in enumerate(windows) if answered[i]]
    return {"accuracy": float(np.mean(hits)) if hits else None, "windows": len(hits),
            "unanswered": int((~answered).sum()), "smooth": smooth}


def _boundaries(spans: Sequence[tuple[float, float, Any]]) -> np.ndarray:
    return np.array([b[0] for a, b in zip(spans, spans[1:]) if a[2] != b[2]], dtype=np.float64)


def boundary_f1(true_b: np.ndarray, pred_b: np.ndarray, tolerance: float) -> dict[str, float]:
    """Precision, recall and F1 of boundaries matched one to one within `tolerance` seconds."""
    pairs = sorted((abs(t - p), i, j) for i, t in enumerate(true_b) for j, p in enumerate(pred_b) if abs(t - p) <= tolerance)
    used_t, used_p = set(), set()
    for _, i, j in pairs:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
    matched = len(used_t)
    precision = matched / len(pred_b) if len(pred_b) else 0.0
    recall = matched / len(true_b) if len(true_b) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1, "tolerance_s": tolerance}


def segment_scores(segments: Sequence[dict[str, Any]], truth, duration: float, step: float = 0.1,
                   tolerance: float = 2.0) -> dict[str, Any]:
    """Time accuracy, boundary errors and boundary F1 of predicted segments against the truth."""
    grid = np.arange(step / 2, duration, step)

    def label_at(spans, t):
        for a, b, label in spans:
            if a <= t < b:
                return label
        return None

    predicted = [(s["start"], s["end"], s["label"]) for s in segments]
    time_accuracy = float(np.mean([label_at(predicted, t) == label_at(truth, t) for t in grid])) if len(grid) else None
    true_b, pred_b = _boundaries(truth), _boundaries(predicted)

    def distances(from_b, to_b):
        if not len(from_b) or not len(to_b):
            return None
        return np.abs(from_b[:, None] - to_b[None, :]).min(axis=1)

    t2p, p2t = distances(true_b, pred_b), distances(pred_b, true_b)
    return {
        "time_accuracy": time_accuracy,
        "true_boundaries": int(len(true_b)), "predicted_boundaries": int(len(pred_b)),
        "boundary_error_mean_s": None if t2p is None else float(t2p.mean()),
        "boundary_error_median_s": None if t2p is None else float(np.median(t2p)),
        "spurious_distance_mean_s": None if p2t is None else float(p2t.mean()),
        **boundary_f1(true_b, pred_b, tolerance),
    }
