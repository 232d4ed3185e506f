"""The CSV form of window results: one row per window, the same in `timeline.csv`, the
service's timeline stream and a live session's `csv` lines (columns in docs/timeline.md).

Each task brings its own columns (`Task.csv_columns`, `Task.csv_cells`), in the timeline's
order of tasks: those of scored tasks (MER, MSA) before the media flags, those of generated
ones (OV-MER's words, free text that can be long) after them. `labels` are the emotion
task's labels, one probability column each.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from nanoemox.tasks import EMOTION_TASK, TIMELINE_TASKS, get_task

# With people (`per_person`): a row per person and window, these columns after the times.
PERSON_COLUMNS = ["person", "speaking", "speaking_share", "box_x", "box_y", "box_w", "box_h"]


def _labels_of(task: str, labels: Sequence[str] | None) -> Sequence[str] | None:
    return labels if task == EMOTION_TASK else get_task(task).default_candidates()


def csv_columns(tasks: Sequence[str], labels: Sequence[str] | None, per_person: bool = False) -> list[str]:
    asked = [get_task(task) for task in TIMELINE_TASKS if task in tasks]
    columns = ["start", "end"] + (PERSON_COLUMNS if per_person else [])
    for task in (t for t in asked if t.scorable):
        columns += task.csv_columns(_labels_of(task.name, labels))
    columns += ["faces_found", "audio_present"]
    for task in (t for t in asked if not t.scorable):
        columns += task.csv_columns(None)
    return columns + ["error"]


def csv_row(result: dict[str, Any], labels: Sequence[str] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"start": f"{result['start']:.3f}", "end": f"{result['end']:.3f}",
                           "faces_found": result["faces_found"], "audio_present": int(result["audio_present"]),
                           "error": result.get("error", "")}
    for task in TIMELINE_TASKS:
        if task in result:
            row.update(get_task(task).csv_cells(result[task], _labels_of(task, labels)))
    return row


def csv_rows(result: dict[str, Any], labels: Sequence[str] | None) -> list[dict[str, Any]]:
    """Per person, one row of a window's result (`csv_row` of the person's answers, plus who and where);
    a window without people: its own row, with the person columns empty."""
    people = result.get("people") or []
    if not people:
        return [csv_row(result, labels)]
    rows = []
    for person in people:
        row = csv_row({**{k: v for k, v in result.items() if k not in TIMELINE_TASKS}, **person}, labels)
        box = person["box"] or ["", "", "", ""]
        row.update(person=person["id"], speaking=int(person["speaking"]), speaking_share=f"{person['speaking_share']:.2f}",
                   **dict(zip(("box_x", "box_y", "box_w", "box_h"), box)))
        rows.append(row)
    return rows


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
