"""From per-window probabilities to segments of one label (`segment`).

1. **Smoothing.** Each answered window's label probabilities are averaged with those
   of its answered neighbours, `smooth` windows centred on it (`smooth=1`: none).
2. **Labels.** Each answered window takes the label of highest smoothed probability;
   a window without an answer (damaged media) has none.
3. **Cells.** Overlapping windows are turned into a partition of the video: a window
   stands for the stretch between the midpoints to its neighbours' centres (the first
   starts at 0 s, the last ends at the end of the video).
4. **Runs.** Consecutive cells of one label form a segment; cells without an answer
   form segments of label None (`error` set), which are never merged away.
5. **Minimum length.** While a labelled segment is shorter than `min_segment` seconds
   and has a labelled neighbour, the shortest such segment joins the neighbour whose
   label has the higher mean smoothed probability over it; neighbours of one label
   then merge.

Each segment: start, end (s), label, confidence (mean over its windows of the raw,
unsmoothed probability of the segment's label), windows (how many), first and last
window index. Defaults (`DEFAULT_SMOOTH`, `DEFAULT_MIN_SEGMENT`) were chosen on a
video composed from SynthAffect's dev clips (`benchmarks/timeline.py`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

DEFAULT_SMOOTH = 1  # chosen on dev (benchmarks/timeline.py): averaging shifted boundaries more than it fixed labels
DEFAULT_MIN_SEGMENT = 4.0


def smoothed(probs: np.ndarray, answered: np.ndarray, smooth: int) -> np.ndarray:
    """Moving average [N, K] over answered windows (`smooth` windows centred on each)."""
    if smooth < 1:
        raise ValueError(f"smooth must be at least 1 window, got {smooth}")
    half = smooth // 2
    out = np.full_like(probs, np.nan)
    for i in np.flatnonzero(answered):
        lo, hi = max(0, i - half), min(len(probs), i + half + 1)
        near = [j for j in range(lo, hi) if answered[j]]
        out[i] = probs[near].mean(axis=0)
    return out


def cell_bounds(windows: Sequence[dict[str, Any]], duration: float) -> list[tuple[float, float]]:
    """The stretch of the video each window stands for (midpoints between window centres)."""
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [duration]
    return list(zip(cuts, cuts[1:]))


def segment(windows: Sequence[dict[str, Any]], labels: Sequence[str], probabilities: Sequence[dict[str, float] | None],
            duration: float, smooth: int = DEFAULT_SMOOTH, min_segment: float = DEFAULT_MIN_SEGMENT) -> list[dict[str, Any]]:
    """Segments of one label over the video (see the module docstring).

    `windows`: the window results in order (start, end, index); `probabilities`: per
    window a {label: p} mapping, None where the window has no answer.
    """
    if not windows:
        return []
    if min_segment < 0:
        raise ValueError(f"min_segment must be >= 0 seconds, got {min_segment}")
    labels = list(labels)
    answered = np.array([p is not None for p in probabilities])
    probs = np.array([[p[label] for label in labels] if p is not None else [0.0] * len(labels)
                      for p in probabilities], dtype=np.float64)  # [N, K]
    smooth_p = smoothed(probs, answered, smooth)
    cells = cell_bounds(windows, duration)
    per_window = [int(np.argmax(smooth_p[i])) if answered[i] else None for i in range(len(windows))]
    runs: list[dict[str, Any]] = []
    for i, k in enumerate(per_window):
        if runs and runs[-1]["k"] == k:
            runs[-1]["members"].append(i)
        else:
            runs.append({"k": k, "members": [i]})
    runs = _absorb_short(runs, cells, smooth_p, min_segment)
    return [_describe(run, cells, probs, labels, windows) for run in runs]


def _length(run: dict[str, Any], cells) -> float:
    return cells[run["members"][-1]][1] - cells[run["members"][0]][0]


def _absorb_short(runs: list[dict[str, Any]], cells, smooth_p: np.ndarray, min_segment: float) -> list[dict[str, Any]]:
    while True:
        short = [i for i, run in enumerate(runs) if run["k"] is not None and _length(run, cells) < min_segment
                 and any(0 <= j < len(runs) and runs[j]["k"] is not None for j in (i - 1, i + 1))]
        if not short:
            return runs
        i = min(short, key=lambda j: (_length(runs[j], cells), j))
        members = runs[i]["members"]
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs) and runs[j]["k"] is not None]
        target = max(neighbours, key=lambda j: (float(smooth_p[members, runs[j]["k"]].mean()), -j))
        runs[target]["members"] = sorted(runs[target]["members"] + members)
        del runs[i]
        merged: list[dict[str, Any]] = []
        for run in runs:
            if merged and merged[-1]["k"] == run["k"] and run["k"] is not None:
                merged[-1]["members"] += run["members"]
            else:
                merged.append(run)
        runs = merged


def _describe(run: dict[str, Any], cells, probs: np.ndarray, labels: list[str], windows) -> dict[str, Any]:
    members = run["members"]
    out: dict[str, Any] = {
        "start": round(cells[members[0]][0], 3), "end": round(cells[members[-1]][1], 3),
        "label": None if run["k"] is None else labels[run["k"]],
        "confidence": None if run["k"] is None else round(float(probs[members, run["k"]].mean()), 4),
        "windows": len(members), "first_window": windows[members[0]]["index"], "last_window": windows[members[-1]]["index"],
    }
    if run["k"] is None:
        out["error"] = "no answer: the media of these windows were damaged"
    return out
