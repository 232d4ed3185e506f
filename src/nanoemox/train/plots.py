"""Loss-curve figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path


def plot_loss(curves: dict[str, list[list[float]]], path: str | Path, *, cumulative: bool = False) -> Path:
    """One line per phase; with `cumulative`, phases follow each other on one step axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    offset = 0
    for name, history in curves.items():
        if not history:
            continue
        steps = [s + offset for s, _ in history]
        ax.plot(steps, [v for _, v in history], label=name, linewidth=1.4)
        if cumulative:
            offset = steps[-1]
    ax.set_xlabel("optimizer step" + (" (phases in sequence)" if cumulative else ""))
    ax.set_ylabel("answer-token loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
