"""The CSV form of window results: one row per window, the same in `timeline.csv`, the
service's timeline stream and a live session's `csv` lines (columns in docs/timeline.md)."""

from __future__ import annotations

import csv
import io
from typing import Any, Sequence


def csv_columns(tasks: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    columns = ["start", "end"]
    if "mer" in tasks:
        columns += ["label", "confidence"] + [f"p_{label}" for label in labels or ()]
    if "msa" in tasks:
        columns += ["sentiment", "valence"]
    columns += ["faces_found", "audio_present"]
    if "ovmer" in tasks:
        columns += ["words"]
    return columns + ["error"]


def csv_row(result: dict[str, Any], labels: Sequence[str] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"start": f"{result['start']:.3f}", "end": f"{result['end']:.3f}",
                           "faces_found": result["faces_found"], "audio_present": int(result["audio_present"]),
                           "error": result.get("error", "")}
    if "mer" in result:
        mer = result["mer"]
        row.update(label=mer["label"], confidence=f"{mer['confidence']:.4f}",
                   **{f"p_{label}": f"{mer['probabilities'][label]:.4f}" for label in labels or ()})
    if "msa" in result:
        row.update(sentiment=result["msa"]["sentiment"], valence=f"{result['msa']['valence']:.4f}")
    if "ovmer" in result:
        row["words"] = "; ".join(result["ovmer"]["words"])
    return row


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
