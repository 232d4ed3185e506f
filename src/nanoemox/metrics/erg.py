"""Empathetic response generation (AvaMERG) metrics: emotion accuracy, coarse hit rate, Dist-n.

- `emotion_accuracy`: the predicted fine-grained speaker emotion equals the reference
  (case-insensitive), with word variants folded as MER's parser folds them
  (`nanoemox.tasks.parsing.fold_variant`: "angry" counts as "anger", "scared" as "fear").
- `coarse_hit_rate`: both fine labels mapped to the 7 coarse emotions + neutral agree;
  a label missing from the fine -> coarse table is a miss, never an error.
- `dist1`, `dist2`: lexical diversity of the replies; per reply, distinct n-grams /
  all n-grams over lower-cased whitespace tokens after removing `<think>...</think>`,
  averaged over replies that have at least one n-gram.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

_THINK = re.compile(r"<think>.*?</think>", flags=re.DOTALL | re.IGNORECASE)
# Candidate names for the AvaMERG fine -> coarse table in nanoemox.tasks.labels.
_COARSE_TABLE_NAMES = ("AVAMERG_FINE_TO_COARSE", "AVAMERG_COARSE_MAP", "AVAMERG_COARSE")


def strip_think(text: str) -> str:
    """The reply without its `<think>...</think>` reasoning block(s)."""
    return _THINK.sub(" ", text or "").strip()


def distinct_n(responses: Sequence[str], n: int) -> float:
    """Mean over replies of unique n-grams / n-grams; replies too short for one n-gram are skipped."""
    if n < 1:
        raise ValueError(f"distinct_n: n must be >= 1, got {n}")
    ratios = []
    for response in responses:
        tokens = strip_think(response).lower().split()
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if grams:
            ratios.append(len(set(grams)) / len(grams))
    return float(sum(ratios) / len(ratios)) if ratios else 0.0


def default_coarse_map() -> dict[str, str]:
    """The AvaMERG fine -> coarse emotion table from `nanoemox.tasks.labels`."""
    try:
        from nanoemox.tasks import labels  # imported lazily: tasks may import metrics
    except ImportError as exc:
        raise RuntimeError(
            "erg_scores needs the AvaMERG fine -> coarse emotion table from "
            "nanoemox.tasks.labels, which could not be imported; pass coarse_map= explicitly"
        ) from exc
    for name in _COARSE_TABLE_NAMES:
        table = getattr(labels, name, None)
        if isinstance(table, Mapping):
            return {str(k).lower(): str(v).lower() for k, v in table.items()}
    raise RuntimeError(
        f"nanoemox.tasks.labels defines none of {_COARSE_TABLE_NAMES}; pass coarse_map= explicitly"
    )


def _norm(label: str | None) -> str | None:
    if label is None:
        return None
    label = str(label).strip().lower()
    return label or None


def erg_scores(
    responses: Sequence[str],
    predicted_emotions: Sequence[str | None],
    references: Sequence[str],
    coarse_map: Mapping[str, str] | None = None,
) -> dict:
    """Score AvaMERG generations.

    `responses` are the full generations (the `<think>` block is removed for Dist-n),
    `predicted_emotions` the speaker emotion parsed from each (None when absent),
    `references` the gold fine-grained emotions. Returns `emotion_accuracy`,
    `coarse_hit_rate`, `dist1`, `dist2` (fractions) and `counted`.
    """
    if not len(responses) == len(predicted_emotions) == len(references):
        raise ValueError(
            f"erg_scores: {len(responses)} responses, {len(predicted_emotions)} predicted "
            f"emotions and {len(references)} references; all three must match"
        )
    from nanoemox.tasks.parsing import fold_variant  # lazily: tasks may import metrics

    table = {str(k).lower(): str(v).lower() for k, v in (coarse_map or default_coarse_map()).items()}
    exact, coarse = 0, 0
    for pred, ref in zip(predicted_emotions, references):
        pred, ref = _norm(pred), _norm(ref)
        exact += int(pred is not None and (pred == ref or fold_variant(pred) == fold_variant(ref)))
        pred_c, ref_c = table.get(pred or ""), table.get(ref or "")
        coarse += int(pred_c is not None and pred_c == ref_c)
    total = len(references)
    return {
        "emotion_accuracy": exact / total if total else 0.0,
        "coarse_hit_rate": coarse / total if total else 0.0,
        "dist1": distinct_n(responses, 1),
        "dist2": distinct_n(responses, 2),
        "counted": total,
    }
