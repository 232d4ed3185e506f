"""Which task a free-text request asks for: its bracketed identifier, or one of its instructions.

    read_request("[Recognition] I can't believe it!")
        # TaskRequest(task="mer", text="I can't believe it!", candidates=None)
    read_request("Classify the speaker's emotion into one of the following categories: happy, sad. "
                 "Reply with the category name alone. I won the match!")
        # TaskRequest(task="mer", text="I won the match!", candidates=["happy", "sad"])
    read_request("I lost my job today")   # None: no task is asked; the caller decides (chat answers it as ERG)

Rules, in order:
1. The text opens with a task identifier (`[Recognition]`, `[Recog_OV]`, `[Inference]`,
   `[Intent]`, `[Interaction]`; any case). MSA has none, as in the paper.
2. The text holds one of a task's instruction paraphrases (`Task.templates`, and for MER
   and MIR the forms that list candidates, whose list is read back), matched without
   regard to case or line breaks. After an identifier, that task's instruction is
   removed too when present.
What is left once the identifier and the instruction are taken out is the subtitle (or,
for ERG, the speaker's turn); None when nothing is left.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from nanoemox.tasks.base import Task
from nanoemox.tasks.registry import TASKS

__all__ = ["TaskRequest", "read_request"]


@dataclass(frozen=True)
class TaskRequest:
    """The task a text asks for, the text without the request, and candidates it listed (MER, MIR)."""

    task: str
    text: str | None
    candidates: list[str] | None = None


def read_request(text: str | None) -> TaskRequest | None:
    """The task `text` asks for (see the module docstring), or None when it asks for none."""
    body = (text or "").strip()
    if not body:
        return None
    for task in TASKS.values():
        if task.identifier and body.lower().startswith(task.identifier.lower()):
            rest = body[len(task.identifier):]
            found = _find_instruction(task, rest)
            if found is None:
                return TaskRequest(task.name, _rest(rest), None)
            start, end, candidates = found
            return TaskRequest(task.name, _rest(rest[:start] + "\n" + rest[end:]), candidates)
    for task in TASKS.values():
        found = _find_instruction(task, body)
        if found is not None:
            start, end, candidates = found
            return TaskRequest(task.name, _rest(body[:start] + "\n" + body[end:]), candidates)
    return None


def _rest(text: str) -> str | None:
    return text.strip() or None


def _find_instruction(task: Task, text: str) -> tuple[int, int, list[str] | None] | None:
    """(start, end, listed candidates) of the first of `task`'s instructions found in `text`."""
    for pattern in _patterns(task):
        match = pattern.search(text)
        if match:
            listed = match.groupdict().get("candidates")
            candidates = [c.strip() for c in listed.split(",") if c.strip()] if listed else None
            return match.start(), match.end(), candidates
    return None


@functools.lru_cache(maxsize=None)
def _patterns(task: Task) -> tuple[re.Pattern, ...]:
    """The task's instructions as patterns: candidate forms first (they are the longer), any spacing, any case."""
    patterns = []
    for template in task.candidate_templates + task.templates:
        if "{candidates}" in template:
            before, after = template.split("{candidates}", 1)
            regex = _words(before) + r"\s*(?P<candidates>.+?)\s*" + _words(after)
        else:
            regex = _words(template)
        if task.identifier:  # the identifier that goes before the instruction, wherever the two stand
            regex = r"(?:" + re.escape(task.identifier) + r"\s*)?" + regex
        patterns.append(re.compile(regex, re.IGNORECASE | re.DOTALL))
    return tuple(patterns)


def _words(text: str) -> str:
    """A pattern of `text`'s words separated by any whitespace."""
    return r"\s+".join(re.escape(word) for word in text.split())
