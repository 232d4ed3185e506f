"""`timeline.png`: label probabilities over time, the valence line and the segments.

Top panel: one stacked area per label (its probability at each window's centre; the
areas add up to 1), the valence (p(positive) - p(negative), right axis, -1 to 1) as a
black line when MSA ran, and windows without an answer hatched in grey. Below: the
segments, coloured by label and named when there is room, and, when given (benchmarks),
the true stretches the same way.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from nanoemox.tasks import EMOTION_TASK, SENTIMENT_TASK  # noqa: E402
from nanoemox.utils import atomic_write_bytes  # noqa: E402


def _colours(labels: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _time_axis(ax, duration: float) -> None:
    ax.set_xlim(0, duration)
    if duration > 180:  # minutes read better than hundreds of seconds
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{int(x // 60)}:{int(x % 60):02d}"))
        ax.set_xlabel("time (min:s)")
    else:
        ax.set_xlabel("time (s)")


def _strip(ax, spans: Sequence[tuple[float, float, str | None]], colours: dict, duration: float, name: str) -> None:
    """One row of coloured spans, named where there is room."""
    for start, end, label in spans:
        colour = colours.get(label, "0.8") if label else "0.85"
        ax.axvspan(start, end, color=colour, alpha=0.9, hatch=None if label else "///")
        if label and (end - start) > duration * (len(label) + 2) / 150:
            ax.text((start + end) / 2, 0.5, label, ha="center", va="center", fontsize=7, clip_on=True)
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)


def plot_timeline(path: str | os.PathLike, windows: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]],
                  labels: Sequence[str] | None, duration: float, title: str = "",
                  truth: Sequence[tuple[float, float, str]] | None = None) -> Path:
    """Write the figure to `path` (PNG, atomically); see the module docstring.

    `truth`: known (start, end, label) stretches, drawn as a second strip under the segments.
    """
    rows = 3 if truth else 2
    fig, axes = plt.subplots(rows, 1, figsize=(13, 4.8 + 0.7 * (rows - 2)), sharex=True,
                             gridspec_kw={"height_ratios": [5] + [1] * (rows - 1), "hspace": 0.08})
    top, strip = axes[0], axes[1]
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    segment_labels = sorted({s["label"] for s in segments if s.get("label")})
    colours = _colours(list(labels) if labels else segment_labels)
    if labels:
        stacks = [[w[EMOTION_TASK]["probabilities"][label] if EMOTION_TASK in w else 0.0 for w in windows]
                  for label in labels]
        top.stackplot(centres, stacks, labels=list(labels), colors=[colours[label] for label in labels], alpha=0.85)
        top.set_ylabel("emotion probability")
        top.set_ylim(0, 1)
    for w in windows:
        if "error" in w and EMOTION_TASK not in w and SENTIMENT_TASK not in w:
            top.axvspan(w["start"], w["end"], facecolor="none", edgecolor="0.5", hatch="///", linewidth=0)
    if any(SENTIMENT_TASK in w for w in windows):
        valence_ax = top.twinx() if labels else top
        points = [(c, w[SENTIMENT_TASK]["valence"]) for c, w in zip(centres, windows) if SENTIMENT_TASK in w]
        valence_ax.plot([p[0] for p in points], [p[1] for p in points], color="black", linewidth=1.4, label="valence")
        valence_ax.axhline(0, color="black", linewidth=0.5, linestyle=":")
        valence_ax.set_ylim(-1.05, 1.05)
        valence_ax.set_ylabel("valence  p(pos) - p(neg)")
        valence_ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    if labels:
        top.legend(loc="upper left", fontsize=8, ncol=min(len(labels), 7), framealpha=0.8)
    _strip(strip, [(s["start"], s["end"], s.get("label")) for s in segments], colours, duration, "segments")
    if truth:
        _strip(axes[2], truth, colours, duration, "truth")
    _time_axis(axes[-1], duration)
    if title:
        top.set_title(title, fontsize=10)
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path
