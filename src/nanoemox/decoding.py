"""How answers are decoded: the decoding settings and the per-task answer budgets.

    decoding = Decoding()                                  # plain greedy (argmax), no penalty
    decoding = Decoding(do_sample=True, temperature=0.7, top_p=0.9, seed=3, max_new_tokens="eri=256")
    decoding.budget("eri")                                 # 256: the caller's, else the model folder's, else default
    budgets = answer_budgets(records, tokenizer)          # {"eri": 212, ...} from the targets
    write_budgets(model_dir, budgets, stats); read_budgets(model_dir)
    parse_max_new_tokens("eri=256,erg=384")               # {"eri": 256, "erg": 384}; "64" -> 64

Answer budgets. A generation stops at EOS or after `max_new_tokens` tokens; a budget
that is too small cuts explanations and the `<think>` chain of an empathetic reply
(whose reply then comes out empty). Training therefore measures, per task, the token
length of every training target as the model is taught to write it (plus its EOS),
and stores `ceil(1.25 * p99) + 8` in the model folder (`answer_budgets.json`); the
99th percentile keeps one freak target from setting the budget, the 25% and 8 tokens
leave room for a model that is a little more verbose than its data. Inference takes,
per task, the caller's budget, else the model folder's, else `DEFAULT_MAX_NEW_TOKENS`
(each task's `max_new_tokens` in `nanoemox.tasks`). A generation that reaches its budget
without EOS is marked truncated.

One `Decoding` value carries all of it: the sampling settings, the caller's budgets and
(once a model folder is known, `for_model`) the folder's. It is built once where the
settings enter (the command line, the service, a library call) and passed down.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from nanoemox.data.manifest import Record
from nanoemox.tasks import DEFAULT_MAX_NEW_TOKENS, TASK_NAMES, get_task
from nanoemox.utils import atomic_write_json

SAMPLING_KNOBS = ("temperature", "top_p", "top_k", "repetition_penalty")
BUDGETS_FILE = "answer_budgets.json"
BUDGET_PERCENTILE = 99.0
BUDGET_SCALE = 1.25
BUDGET_MARGIN = 8


@dataclass(frozen=True)
class Decoding:
    """Decoding settings and answer budgets. Greedy by default; the sampling knobs act only with `do_sample`.

    `max_new_tokens` is the caller's budget: one number for every task, a mapping per
    task, or text as the command line takes it ("64", "eri=256,erg=384"; kept parsed, as
    run records show it); None: none given. `model_budgets` are the model folder's
    measured budgets (`for_model`).
    """

    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int = 0
    max_new_tokens: int | Mapping[str, int] | str | None = None
    model_budgets: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = self.max_new_tokens
        given = dict(given) if isinstance(given, Mapping) else parse_max_new_tokens(given)
        per_task = {task: given for task in TASK_NAMES} if isinstance(given, int) else dict(given or {})
        unknown = sorted(set(per_task) - set(TASK_NAMES))
        if unknown or not all(isinstance(n, int) and n >= 1 for n in per_task.values()):
            raise ValueError(f"max_new_tokens must map tasks ({', '.join(TASK_NAMES)}) to budgets of at least 1, "
                             f"got {self.max_new_tokens!r}")
        object.__setattr__(self, "max_new_tokens", given or None)
        object.__setattr__(self, "model_budgets", dict(self.model_budgets))
        object.__setattr__(self, "do_sample", bool(self.do_sample))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "_caller_budgets", per_task)  # the caller's budget of each task it covers
        sampling = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        given = [k for k, v in sampling.items() if v is not None]
        if given and not self.do_sample:
            raise ValueError(f"{', '.join(given)} only act when sampling: add --sample (do_sample=True) "
                             "or leave them out for greedy decoding")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0: off), got {self.top_k}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    def for_model(self, model_budgets: Mapping[str, int]) -> "Decoding":
        """The same settings with a model folder's measured budgets (`read_budgets`)."""
        return replace(self, model_budgets=dict(model_budgets))

    def budget(self, task: str | None) -> int:
        """Maximum new tokens for `task`: the caller's, else the model folder's, else the default.

        The largest budget when the task is unknown.
        """
        table = {**DEFAULT_MAX_NEW_TOKENS, **self.model_budgets, **self._caller_budgets}
        return table[task] if task in table else max(table.values())

    def budgets(self) -> dict[str, int]:
        """The budget of every task."""
        return {task: self.budget(task) for task in TASK_NAMES}

    def budget_sources(self) -> dict[str, str]:
        """Where each task's budget comes from: "caller", "model folder" or "default"."""
        return {task: "caller" if task in self._caller_budgets else "model folder" if task in self.model_budgets
                else "default" for task in TASK_NAMES}

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `NanoEmoX.generate` (unset knobs left out: they are off)."""
        out: dict[str, Any] = {"do_sample": self.do_sample}
        for key in SAMPLING_KNOBS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def effective(self) -> dict[str, Any]:
        """Every setting as it acts, for run records: off knobs are written as their neutral value."""
        return {"do_sample": self.do_sample, "strategy": "sampling" if self.do_sample else "greedy",
                "temperature": (1.0 if self.temperature is None else self.temperature) if self.do_sample else None,
                "top_p": (1.0 if self.top_p is None else self.top_p) if self.do_sample else None,
                "top_k": (0 if self.top_k is None else self.top_k) if self.do_sample else None,
                "repetition_penalty": 1.0 if self.repetition_penalty is None else self.repetition_penalty,
                "seed": self.seed if self.do_sample else None}

    def to_dict(self) -> dict[str, Any]:
        """The sampling settings as given (budgets aside)."""
        return {"do_sample": self.do_sample, **{k: getattr(self, k) for k in SAMPLING_KNOBS}, "seed": self.seed}


# ---------------------------------------------------------------- answer budgets
def parse_max_new_tokens(text: str | int | None) -> int | dict[str, int] | None:
    """'64' -> 64 (every task); 'eri=256,erg=384' -> per task; None -> None. ValueError on bad input."""
    if text is None or isinstance(text, int):
        return text
    text = str(text).strip()
    if text.isdigit():
        value = int(text)
        if value < 1:
            raise ValueError("--max-new-tokens must be at least 1")
        return value
    budgets: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        task, sep, value = part.partition("=")
        task = task.strip().lower()
        if not sep or task not in TASK_NAMES or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"--max-new-tokens: {part!r} is not TASK=N with TASK one of {', '.join(TASK_NAMES)} "
                             "and N >= 1 (e.g. eri=256,erg=384, or one number for every task)")
        budgets[task] = int(value)
    if not budgets:
        raise ValueError("--max-new-tokens is empty")
    return budgets


def target_lengths(records: Iterable[Record], tokenizer) -> dict[str, list[int]]:
    """Per task, the token count of every target as training renders it, plus its EOS."""
    texts: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.target is not None:
            texts[record.task].append(get_task(record.task).format_target(record.target))
    return {task: [len(ids) + 1 for ids in tokenizer(items, add_special_tokens=False)["input_ids"]]
            for task, items in texts.items()}


def answer_budgets(records: Iterable[Record], tokenizer) -> tuple[dict[str, int], dict[str, dict]]:
    """(budget per task, the statistics it came from) for the tasks present in `records`."""
    budgets, stats = {}, {}
    for task, lengths in sorted(target_lengths(records, tokenizer).items()):
        p99 = float(np.percentile(lengths, BUDGET_PERCENTILE))
        budgets[task] = int(math.ceil(BUDGET_SCALE * p99)) + BUDGET_MARGIN
        stats[task] = {"targets": len(lengths), "p99_tokens": round(p99, 1), "max_tokens": max(lengths)}
    return budgets, stats


def write_budgets(folder: str | os.PathLike, budgets: dict[str, int], stats: dict[str, dict]) -> Path:
    path = Path(folder) / BUDGETS_FILE
    atomic_write_json({"budgets": budgets, "stats": stats,
                       "rule": f"ceil({BUDGET_SCALE} x p{BUDGET_PERCENTILE:g} of the training targets' token "
                               f"lengths incl. EOS) + {BUDGET_MARGIN}"}, path)
    return path


def read_budgets(folder: str | os.PathLike) -> dict[str, int]:
    """The model folder's measured budgets ({} when it has none). ValueError names a damaged file."""
    path = Path(folder) / BUDGETS_FILE
    if not path.is_file():
        return {}
    try:
        budgets = json.loads(path.read_text(encoding="utf-8"))["budgets"]
        if not all(t in TASK_NAMES and isinstance(n, int) and n >= 1 for t, n in budgets.items()):
            raise ValueError("budgets must map task names to positive integers")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a valid answer-budget file ({exc}); delete it to use the defaults") from None
    return dict(budgets)
