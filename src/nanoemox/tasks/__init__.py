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
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
# Tasks with a fixed answer set, which closed-set scoring can rank (msa, mer, mir).
SCORABLE_TASKS: tuple[str, ...] = tuple(task.name for task in ALL_TASKS if task.scorable)
# Tasks a timeline can ask of every window (mer, msa, ovmer), in the timeline's order.
TIMELINE_TASKS: tuple[str, ...] = ("mer", "msa", "ovmer")
assert set(TIMELINE_TASKS) == {task.name for task in ALL_TASKS if task.timeline}
# Answer budget per task when neither the caller nor the model folder sets one.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {task.name: task.max_new_tokens for task in ALL_TASKS}

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


def default_candidates(task: str) -> list[str] | None:
    """Labels offered when the caller gives none: sentiments, 7 basic emotions, 20 MIntRec intents; None otherwise."""
    return get_task(task).default_candidates()


def task_from_identifier(text: str) -> str | None:
    """Name of the task whose identifier opens or appears in `text`, or None (MSA has none)."""
    for match in _IDENTIFIER_RE.finditer(text or ""):
        found = IDENTIFIERS.get(match.group(0).lower())
        if found:
            return found
    return None


__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "ERG_FIELDS",
    "IDENTIFIERS",
    "LABEL_SETS",
    "SCORABLE_TASKS",
    "SENTIMENTS",
    "TASKS",
    "TASK_NAMES",
    "TIMELINE_TASKS",
    "Task",
    "coarse_emotion",
    "default_candidates",
    "get_task",
    "label_set",
    "normalise_avamerg_emotion",
    "task_from_identifier",
]
