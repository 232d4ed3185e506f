"""The `Task` type: identifier, instruction paraphrases, answer formatting and parsing.

A task turns a manifest target into the answer text the model learns to emit
(`format_target`) and turns generated text back into something a metric can score
(`parse`). Instructions are rendered from fixed paraphrases: a random one during
training (pass `rng`), variant 0 at evaluation so scores are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Task:
    """One affective task. Subclasses define `format_target` and `parse`.

    `templates` are plain instructions; `candidate_templates` (closed-set tasks only)
    contain `{candidates}`, replaced by the comma-separated candidate labels.

    Facts that inference reads from the task: `candidates` are the labels offered when
    a caller gives none (a closed answer set, so closed-set scoring can rank them:
    `scorable`); `max_new_tokens` is the answer budget used when neither the caller nor
    the model folder sets one (`nanoemox.decoding`); `timeline` says whether a timeline
    can ask the task of each window of a long video.
    """

    name: str
    identifier: str
    templates: tuple[str, ...]
    candidate_templates: tuple[str, ...] = ()
    description: str = ""
    candidates: tuple[str, ...] = ()
    max_new_tokens: int = 16
    timeline: bool = False

    @property
    def scorable(self) -> bool:
        """Whether the task has a fixed answer set that closed-set scoring can rank."""
        return bool(self.candidates)

    def default_candidates(self) -> list[str] | None:
        """The labels offered when the caller gives none (a new list), or None for an open answer."""
        return list(self.candidates) if self.candidates else None

    def instruction(
        self,
        variant: int = 0,
        candidates: Sequence[str] | None = None,
        rng: random.Random | None = None,
    ) -> str:
        """Identifier (if any) followed by one instruction paraphrase, as plain text.

        With `rng` a paraphrase is drawn at random (training); otherwise
        `templates[variant]` is used (evaluation uses variant 0). For tasks with a
        candidate form, non-empty `candidates` select it and are listed in order.
        """
        use_candidates = bool(candidates) and bool(self.candidate_templates)
        pool = self.candidate_templates if use_candidates else self.templates
        if rng is not None:
            variant = rng.randrange(len(pool))
        if not 0 <= variant < len(pool):
            raise ValueError(
                f"task {self.name!r} has {len(pool)} instruction variant(s); got variant={variant}"
            )
        text = pool[variant]
        if use_candidates:
            text = text.replace("{candidates}", ", ".join(str(c).strip() for c in candidates))
        return f"{self.identifier} {text}" if self.identifier else text

    def format_target(self, target: Any) -> str:
        raise NotImplementedError

    def parse(self, text: str | None, candidates: Sequence[str] | None = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, identifier={self.identifier!r})"
