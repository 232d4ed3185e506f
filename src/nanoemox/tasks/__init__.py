"""Task registry: the six affective tasks, their prompts, answer formats and parsers.

    from nanoemox.tasks import get_task, TASKS
    task = get_task("mer")
    task.instruction(candidates=["happy", "sad"])   # "[Recognition] ... happy, sad ..."
    task.format_target("happy")                     # answer text to train on
    task.parse("I think they look happy.")          # "happy"

`TASKS` keeps the paper's order: msa, mer, ovmer, eri, mir, erg. Label sets of the
datasets live in `nanoemox.tasks.labels` (`label_set(name)`).
"""

from __future__ import annotations

import re

from nanoemox.tasks.base import Task
from nanoemox.tasks.definitions import ALL_TASKS, ERG_FIELDS, SENTIMENTS
from nanoemox.tasks.labels import LABEL_SETS, coarse_emotion, label_set, normalise_avamerg_emotion

TASKS: dict[str, Task] = {task.name: task for task in ALL_TASKS}

# Identifier spellings accepted when reading prompts (the authors' code writes
# "[Recogn_OV]"; this project emits the paper's "[Recog_OV]").
IDENTIFIERS: dict[str, str] = {
    "[recognition]": "mer",
    "[recog_ov]": "ovmer",
    "[recogn_ov]": "ovmer",
    "[inference]": "eri",
    "[intent]": "mir",
    "[interaction]": "erg",
}
_IDENTIFIER_RE = re.compile(r"\[[A-Za-z_]+\]")


def get_task(name: str) -> Task:
    """The task called `name` (case-insensitive); ValueError listing valid names otherwise."""
    key = str(name).strip().lower()
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[key]


def task_from_identifier(text: str) -> str | None:
    """Name of the task whose identifier opens or appears in `text`, or None (MSA has none)."""
    for match in _IDENTIFIER_RE.finditer(text or ""):
        found = IDENTIFIERS.get(match.group(0).lower())
        if found:
            return found
    return None


__all__ = [
    "ERG_FIELDS",
    "IDENTIFIERS",
    "LABEL_SETS",
    "SENTIMENTS",
    "TASKS",
    "Task",
    "coarse_emotion",
    "get_task",
    "label_set",
    "normalise_avamerg_emotion",
    "task_from_identifier",
]
