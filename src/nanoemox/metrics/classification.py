"""Closed-set metrics: MSA weighted F1 (WAF) and intent recognition scores.

Thin wrappers over scikit-learn that apply the benchmark conventions: how sentiment
words become a binary label, which samples are dropped, how labels are normalised.
"""

from __future__ import annotations

from typing import Sequence

from sklearn.metrics import accuracy_score, f1_score, precision_score

SENTIMENT_VALUES = {"positive": 1, "negative": -1, "neutral": 0}


def sentiment_value(word: str | None) -> int:
    """+1 / -1 / 0 for positive / negative / neutral; anything else counts as neutral."""
    if word is None:
        return 0
    return SENTIMENT_VALUES.get(str(word).strip().lower(), 0)


def sentiment_waf(predictions: Sequence[str | None], references: Sequence[float]) -> dict:
    """Binary weighted F1 and accuracy for MSA, following the MER-UniBench convention.

    Samples whose reference valence is exactly 0 are dropped; the rest are split by
    sign (y = ref > 0). A prediction is positive only when it says "positive", so
    "neutral" (and any unreadable word) counts as negative. Returns `waf`,
    `accuracy` and `counted` (samples kept).
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"sentiment_waf: {len(predictions)} predictions but {len(references)} references"
        )
    kept = [(sentiment_value(p), float(r)) for p, r in zip(predictions, references) if float(r) != 0.0]
    if not kept:
        return {"waf": 0.0, "accuracy": 0.0, "counted": 0}
    y_true = [ref > 0 for _, ref in kept]
    y_pred = [pred > 0 for pred, _ in kept]
    return {
        "waf": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "counted": len(kept),
    }


def _label(value: str | None) -> str:
    # An absent prediction becomes an empty label: a miss, never a crash.
    return "" if value is None else str(value).strip().lower()


def intent_scores(predictions: Sequence[str | None], references: Sequence[str]) -> dict:
    """Accuracy, weighted F1 and weighted precision over case-insensitive labels.

    Predictions outside the label set simply count as wrong. Returns `accuracy`,
    `weighted_f1`, `weighted_precision` and `counted`.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"intent_scores: {len(predictions)} predictions but {len(references)} references"
        )
    if not references:
        return {"accuracy": 0.0, "weighted_f1": 0.0, "weighted_precision": 0.0, "counted": 0}
    y_true = [_label(r) for r in references]
    y_pred = [_label(p) for p in predictions]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "weighted_precision": float(
            precision_score(y_true, y_pred, average="weighted", zero_division=0)
        ),
        "counted": len(y_true),
    }
