"""The task registry: every task the project knows, by name, and what is derived from it.

    register_task(task)            # asked by name everywhere from now on
    unregister_task("arousal")     # gone again
    with registered(task): ...     # both, around a block (tests)

`TASKS` is the one registry (name -> `Task`): the paper's six in the paper's order (msa,
mer, ovmer, eri, mir, erg), then registered tasks in the order they came. The names
derived from it (`TASK_NAMES`, `SCORABLE_TASKS`, `TIMELINE_TASKS`) and the budgets
(`DEFAULT_MAX_NEW_TOKENS`) are live views: they read the registry each time they are
used, so argparse choices, request validation and decoding budgets see a task registered
after import.

Other code asks for some tasks by the role they play rather than by name:
`EMOTION_TASK` (one emotion from a label set: the labels a timeline or a live session
offers, analyze's `candidates`), `SENTIMENT_TASK` (a sentiment with a valence),
`INTENT_TASK` (analyze's `intents`), `REPLY_TASK` (the empathetic reply: the OpenAI
route's and chat's default, a live session's reply) and `DEFAULT_WINDOW_TASKS` (asked of
each window when a timeline or live caller names none).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Iterator, Mapping, Sequence

from nanoemox.tasks.base import Task
from nanoemox.tasks.definitions import ALL_TASKS

TASKS: dict[str, Task] = {task.name: task for task in ALL_TASKS}
_BUILT_IN = frozenset(TASKS)

EMOTION_TASK = "mer"
SENTIMENT_TASK = "msa"
INTENT_TASK = "mir"
REPLY_TASK = "erg"
DEFAULT_WINDOW_TASKS: tuple[str, ...] = (EMOTION_TASK, SENTIMENT_TASK)


def register_task(task: Task) -> Task:
    """Add `task` to the registry; ValueError for a taken name or identifier."""
    if not isinstance(task, Task):
        raise TypeError(f"a task must be a nanoemox.tasks.Task, got {type(task).__name__}")
    if not task.name or task.name != task.name.strip().lower():
        raise ValueError(f"a task name must be non-empty, lower-case and without surrounding spaces, got {task.name!r}")
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered; unregister it first")
    taken = {spelling: other.name for other in TASKS.values() for spelling in other.identifiers}
    clash = [s for s in task.identifiers if s in taken]
    if clash:
        raise ValueError(f"task {task.name!r}: identifier {clash[0]!r} already names task {taken[clash[0]]!r}")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> Task:
    """Remove a registered task and return it; the paper's six stay."""
    key = str(name).strip().lower()
    if key in _BUILT_IN:
        raise ValueError(f"task {key!r} is one of the paper's tasks and cannot be unregistered")
    if key not in TASKS:
        raise ValueError(f"task {name!r} is not registered")
    return TASKS.pop(key)


@contextlib.contextmanager
def registered(task: Task) -> Iterator[Task]:
    """`task` registered for the duration of a `with` block."""
    register_task(task)
    try:
        yield task
    finally:
        unregister_task(task.name)


def get_task(name: str) -> Task:
    """The task called `name` (case-insensitive); ValueError listing valid names otherwise."""
    key = str(name).strip().lower()
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[key]


class TaskNames(Sequence[str]):
    """Names of the registered tasks that `keep` accepts (sorted by `order` if given, else in
    registry order), read from the registry each time the view is used."""

    def __init__(self, keep: Callable[[Task], bool] = lambda task: True,
                 order: Callable[[Task], Any] | None = None):
        self._keep, self._order = keep, order

    def _names(self) -> tuple[str, ...]:
        chosen = [task for task in TASKS.values() if self._keep(task)]
        if self._order is not None:
            chosen.sort(key=self._order)  # stable: ties keep the registry's order
        return tuple(task.name for task in chosen)

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (TaskNames, tuple, list)):
            return self._names() == tuple(other)
        return NotImplemented

    __hash__ = None  # it changes with the registry

    def __repr__(self) -> str:
        return repr(self._names())


class TaskFacts(Mapping[str, Any]):
    """Task name -> `fact(task)` for every registered task, read from the registry each time."""

    def __init__(self, fact: Callable[[Task], Any]):
        self._fact = fact

    def __getitem__(self, name: str) -> Any:
        return self._fact(TASKS[name])

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(TASKS))

    def __len__(self) -> int:
        return len(TASKS)

    def __repr__(self) -> str:
        return repr(dict(self))


TASK_NAMES = TaskNames()
# Tasks with a fixed answer set, which closed-set scoring can rank (msa, mer, mir).
SCORABLE_TASKS = TaskNames(lambda task: task.scorable)
# Tasks a timeline can ask of every window (mer, msa, ovmer), in the timeline's order.
TIMELINE_TASKS = TaskNames(lambda task: task.timeline, order=lambda task: task.timeline_rank)
# Tasks a caller may give candidate labels to (mer, mir).
CANDIDATE_TASKS = TaskNames(lambda task: task.takes_candidates)
# Answer budget per task when neither the caller nor the model folder sets one.
DEFAULT_MAX_NEW_TOKENS: Mapping[str, int] = TaskFacts(lambda task: task.max_new_tokens)


def tasks_scored_by(metric: str) -> tuple[str, ...]:
    """Names of the tasks whose `metric` is `metric`, in registry order."""
    return tuple(task.name for task in TASKS.values() if task.metric == metric)


def tasks_of_level(level: str) -> tuple[str, ...]:
    """Names of the tasks of one of the paper's levels (perception, understanding, interaction)."""
    return tuple(task.name for task in TASKS.values() if task.level == level)


def phase3_weights() -> dict[str, float]:
    """The phase-3 task mixture: task -> relative weight, for the tasks drawn in phase 3."""
    return {task.name: task.phase3_weight for task in TASKS.values() if task.phase3_weight > 0}


_IDENTIFIER_RE = re.compile(r"\[[A-Za-z_]+\]")


def task_from_identifier(text: str) -> str | None:
    """Name of the task whose identifier first appears in `text` (any spelling, any case), or None (MSA has none)."""
    spellings = {spelling: task.name for task in TASKS.values() for spelling in task.identifiers}
    for match in _IDENTIFIER_RE.finditer(text or ""):
        found = spellings.get(match.group(0).lower())
        if found:
            return found
    return None


def describe_tasks() -> list[dict[str, Any]]:
    """Every registered task as the service lists it (`Task.describe`), in registry order."""
    return [task.describe() for task in TASKS.values()]
