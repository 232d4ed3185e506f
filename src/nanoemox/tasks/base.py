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

    Everything the rest of the project decides per task is asked of the task, never of
    its name:
    - prompts: `identifier` (and older spellings in `identifier_aliases`), `dialogue`
      (the prompt frames the dialogue so far rather than a subtitle), `takes_candidates`
      (a caller may list the labels to choose from);
    - answers: `candidates` are the labels offered when a caller gives none (a closed
      answer set, so closed-set scoring can rank them: `scorable`); `max_new_tokens` is
      the answer budget when neither the caller nor the model folder sets one
      (`nanoemox.decoding`); `reply` says the answer is a reply with a `<think>` part;
    - data: `target_problem` checks a manifest target, `answer_class` is the class a
      balanced draw evens out (`balanceable`), `phase3_weight` the task's share of the
      phase-3 mixture (0: not drawn);
    - evaluation: `metric` names the scorer of `nanoemox.eval.scoring`, `judged` says an
      LLM judge scores the free-text answer, `level` is the paper's level (MER-UniBench
      scores the perception tasks);
    - timelines: `timeline` says a timeline can ask the task of each window of a long
      video, `timeline_rank` its place among those (columns, summaries); a window's
      answer, its CSV columns and its one-line summary come from `window_answer`,
      `csv_columns`/`csv_cells` and `window_summary`.
    """

    name: str
    identifier: str
    templates: tuple[str, ...]
    candidate_templates: tuple[str, ...] = ()
    description: str = ""
    candidates: tuple[str, ...] = ()
    max_new_tokens: int = 16
    timeline: bool = False
    identifier_aliases: tuple[str, ...] = ()
    level: str = ""  # "perception" | "understanding" | "interaction"
    metric: str = ""  # scorer of nanoemox.eval.scoring: hit, waf, ovf, intent (label WAF), reply, emer (judge)
    judged: bool = False
    dialogue: bool = False
    reply: bool = False
    phase3_weight: float = 0.0
    timeline_rank: int = 100

    @property
    def scorable(self) -> bool:
        """Whether the task has a fixed answer set that closed-set scoring can rank."""
        return bool(self.candidates)

    @property
    def takes_candidates(self) -> bool:
        """Whether a caller may list the labels to choose from (the task has prompts that list them)."""
        return bool(self.candidate_templates)

    @property
    def balanceable(self) -> bool:
        """Whether a balanced draw can even out the task's answer classes (a fixed answer set)."""
        return self.scorable

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Every spelling of the identifier read in prompts, lower-cased (none for a task without one)."""
        return tuple(s.lower() for s in (self.identifier, *self.identifier_aliases) if s)

    def describe(self) -> dict[str, Any]:
        """The task as the service lists it (`GET /v1/tasks`)."""
        return {"name": self.name, "description": self.description, "identifier": self.identifier,
                "candidates": self.default_candidates(), "takes_candidates": self.takes_candidates,
                "timeline": self.timeline, "reply": self.reply}

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

    def target_problem(self, target: Any) -> str | None:
        """What is wrong with a manifest target of this task, or None when it can be trained on."""
        try:
            self.format_target(target)
        except ValueError as exc:
            return str(exc)
        return None

    def answer_class(self, target: Any) -> str:
        """The class of a target that a balanced draw evens out (the label, lower-cased)."""
        return str(target).strip().lower()

    # ------------------------------------------------------------------ timeline windows

    def window_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A window's answer (`Predictor.answer_shared`'s) as the timeline reports it: the most
        likely label, its probability and all of them when scored, else the text."""
        if "scores" in answer:
            probs = answer["scores"]
            label = max(probs, key=probs.get)
            return {"label": label, "confidence": probs[label], "probabilities": probs}
        return {"text": answer["text"], "truncated": answer["truncated"]}

    def csv_columns(self, labels: Sequence[str] | None) -> list[str]:
        """The task's columns in timeline.csv (`labels`: the labels offered, one probability column each)."""
        if self.scorable:
            return ["label", "confidence"] + [f"p_{label}" for label in labels or ()]
        return ["text"]

    def csv_cells(self, answer: dict[str, Any], labels: Sequence[str] | None) -> dict[str, Any]:
        """The cells of `csv_columns` for one window's answer (`window_answer`)."""
        if "probabilities" in answer:
            return {"label": answer["label"], "confidence": f"{answer['confidence']:.4f}",
                    **{f"p_{label}": f"{answer['probabilities'][label]:.4f}" for label in labels or ()}}
        return {"text": answer["text"]}

    def window_summary(self, answer: dict[str, Any]) -> str:
        """One window's answer in a few words (the live client's printed line)."""
        if "label" in answer:
            return f"{answer['label']} {answer['confidence']:.2f}"
        return answer["text"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, identifier={self.identifier!r})"
