"""Task registry: the six affective tasks, their prompts, answer formats and parsers.

    from nanoemox.tasks import get_task, TASKS
    task = get_task("mer")
    task.instruction(candidates=["happy", "sad"])   # "[Recognition] ... happy, sad ..."
    task.format_target("happy")                     # answer text to train on
    task.parse("I think they look happy.")          # "happy"

`TASKS` keeps the paper's order: msa, mer, ovmer, eri, mir, erg; `register_task` adds
one (`nanoemox.tasks.registry`). What the project decides per task is asked of the
`Task` (`nanoemox.tasks.base`). Label sets of the datasets live in
`nanoemox.tasks.labels` (`label_set(name)`).
"""

from __future__ import annotations

from nanoemox.tasks.base import Task
from nanoemox.tasks.definitions import ERG_FIELDS, SENTIMENTS
from nanoemox.tasks.labels import LABEL_SETS, coarse_emotion, label_set, normalise_avamerg_emotion
from nanoemox.tasks.registry import (
    CANDIDATE_TASKS,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_WINDOW_TASKS,
    EMOTION_TASK,
    INTENT_TASK,
    REPLY_TASK,
    SCORABLE_TASKS,
    SENTIMENT_TASK,
    TASK_NAMES,
    TASKS,
    TIMELINE_TASKS,
    TaskFacts,
    TaskNames,
    describe_tasks,
    get_task,
    phase3_weights,
    register_task,
    registered,
    task_from_identifier,
    tasks_of_level,
    tasks_scored_by,
    unregister_task,
)


def default_candidates(task: str) -> list[str] | None:
    """Labels offered when the caller gives none: sentiments, 7 basic emotions, 20 MIntRec intents; None otherwise."""
    return get_task(task).default_candidates()


__all__ = [
    "CANDIDATE_TASKS",
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_WINDOW_TASKS",
    "EMOTION_TASK",
    "ERG_FIELDS",
    "INTENT_TASK",
    "LABEL_SETS",
    "REPLY_TASK",
    "SCORABLE_TASKS",
    "SENTIMENTS",
    "SENTIMENT_TASK",
    "TASKS",
    "TASK_NAMES",
    "TIMELINE_TASKS",
    "Task",
    "TaskFacts",
    "TaskNames",
    "coarse_emotion",
    "default_candidates",
    "describe_tasks",
    "get_task",
    "label_set",
    "normalise_avamerg_emotion",
    "phase3_weights",
    "register_task",
    "registered",
    "task_from_identifier",
    "tasks_of_level",
    "tasks_scored_by",
    "unregister_task",
]
