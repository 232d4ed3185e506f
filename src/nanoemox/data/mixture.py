"""The P2E task mixture: an endless, seeded, resumable stream of training records.

Two modes (DESIGN sections 3 and 6):

- ``"task"`` (default, this project's reading of the paper): every draw first picks a
  task with the given probabilities (phase 3: MER 18, OV-MER 28, MIR 5, ERI 31,
  ERG 18, normalised), then a record of that task uniformly at random.
- ``"dataset"`` (the authors' code): each (task, dataset) group keeps a fixed random
  subset of its records (a fraction per group), and every draw picks one group
  uniformly, then a record of its subset uniformly.

In mode "task", tasks named in ``balance`` draw their answer's class uniformly first
(`answer_class`: the label of MER and MIR, the sign of MSA's valence), then a record of
that class, so a rare class is drawn as often as a common one; the task shares stay as
the weights say.

Draw number ``i`` depends only on ``(seed, i)``: it is computed from a counter-based
generator (numpy's Philox keyed by the seed, counter set to ``i``). So resuming is
O(1): ``skip_to(i)`` or ``load_state_dict`` sets the counter, and the stream from
there equals the uninterrupted one. Records are drawn with replacement, which is what
makes each draw independent of the ones before it.
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from nanoemox.data.manifest import Record
from nanoemox.tasks import TASK_NAMES, TaskNames, get_task, phase3_weights

log = logging.getLogger(__name__)

MODES = ("task", "dataset")


def group_by_task(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records grouped by their `task`, in the registry's order (`nanoemox.tasks.TASK_NAMES`)."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[record.task].append(record)
    return {t: groups[t] for t in TASK_NAMES if t in groups}


def size_weights(records_by_task: Mapping[str, Sequence[Record]]) -> dict[str, float]:
    """Weights proportional to each task's record count (plain joint training, e.g. Jo-T)."""
    return {t: float(len(r)) for t, r in records_by_task.items() if r}


# The closed-set tasks whose draws can be balanced over their answer classes (msa, mer, mir).
BALANCEABLE = TaskNames(lambda task: task.balanceable)


def answer_class(record: Record) -> str:
    """The class a balanced draw evens out (`Task.answer_class`): MER's and MIR's label, the sign of MSA's target."""
    return get_task(record.task).answer_class(record.target)


def _uniforms(seed: int, index: int, salt: int = 0) -> np.ndarray:
    """Three uniforms in [0, 1) that depend only on (seed, index, salt).

    (The first two are those an earlier two-uniform version drew, so unbalanced streams are unchanged.)
    """
    bitgen = np.random.Philox(key=np.array([seed, salt], dtype=np.uint64),
                              counter=np.array([index, 0, 0, 0], dtype=np.uint64))
    return np.random.Generator(bitgen).random(3)


def _pick(u: float, n: int) -> int:
    return min(int(u * n), n - 1)


class TaskMixture:
    """Deterministic endless sampler over records grouped by task.

    records_by_task: task name -> records (e.g. from `group_by_task`).
    weights: task -> relative weight for mode "task" (default `nanoemox.tasks.phase3_weights()`);
        tasks with weight 0 or absent are not drawn. Every task with a positive
        weight must have records.
    mode: "task" or "dataset" (see the module docstring).
    fractions: mode "dataset" only; share of each group's records kept, keyed by
        "task/dataset", by dataset name or by task name (first match wins; default 1).
    seed: the stream's seed; `position` counts draws made so far.
    balance: mode "task" only; tasks (of `BALANCEABLE`) whose draws pick the answer's
        class uniformly before the record (see the module docstring).
    """

    def __init__(
        self,
        records_by_task: Mapping[str, Sequence[Record]],
        weights: Mapping[str, float] | None = None,
        *,
        mode: str = "task",
        fractions: Mapping[str, float] | None = None,
        seed: int = 0,
        balance: Sequence[str] = (),
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mixture mode {mode!r}; choose one of {MODES}")
        if int(seed) < 0:
            raise ValueError(f"mixture seed must be a non-negative integer, got {seed}")
        self.mode = mode
        self.seed = int(seed)
        self.position = 0
        self.weights = dict(phase3_weights() if weights is None else weights)
        if mode == "task":
            self._groups, probs = self._task_groups(records_by_task)
        else:
            self._groups, probs = self._dataset_groups(records_by_task, fractions or {})
        self._names = list(self._groups)
        self._classes = self._balanced(balance)
        self._cum = np.cumsum(probs)
        self.probabilities = dict(zip(self._names, probs))

    @classmethod
    def from_records(cls, records: Iterable[Record], weights: Mapping[str, float] | None = None,
                     **kwargs: Any) -> "TaskMixture":
        """Build from a flat record list (e.g. several loaded manifests concatenated)."""
        return cls(group_by_task(records), weights, **kwargs)

    # -- construction -------------------------------------------------------------
    def _task_groups(self, records_by_task: Mapping[str, Sequence[Record]]):
        unknown = [t for t in self.weights if t not in TASK_NAMES]
        if unknown:
            raise ValueError(f"mixture weights name unknown task(s) {unknown}; tasks: {TASK_NAMES}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"mixture weights must be >= 0, got {self.weights}")
        active = {t: w for t, w in self.weights.items() if w > 0}
        if not active:
            raise ValueError("mixture weights are all zero; give at least one task a weight")
        empty = [t for t in active if not records_by_task.get(t)]
        if empty:
            have = {t: len(r) for t, r in records_by_task.items() if r}
            raise ValueError(
                f"mixture needs records for task(s) {empty} but the data has none "
                f"(records per task: {have}); add those manifests or set their weight to 0"
            )
        ignored = [t for t in records_by_task if t not in active and records_by_task[t]]
        if ignored:
            log.warning("records of task(s) %s are not drawn: their weight is 0 or absent", ignored)
        total = float(sum(active.values()))
        groups = {t: list(records_by_task[t]) for t in TASK_NAMES if t in active}
        return groups, [active[t] / total for t in groups]

    def _balanced(self, balance: Sequence[str]) -> dict[str, list[list[Record]]]:
        """Group name -> its records split by answer class (sorted), for the balanced tasks."""
        if not balance:
            return {}
        if self.mode != "task":
            raise ValueError("class balance applies to mixture mode 'task' only")
        unknown = [t for t in balance if t not in BALANCEABLE]
        if unknown:
            raise ValueError(f"class balance works for the closed-set tasks {BALANCEABLE}, not {unknown}")
        out = {}
        for task in balance:
            if task not in self._groups:
                continue
            by_class: dict[str, list[Record]] = defaultdict(list)
            for record in self._groups[task]:
                by_class[answer_class(record)].append(record)
            out[task] = [by_class[c] for c in sorted(by_class)]
        return out

    def _dataset_groups(self, records_by_task: Mapping[str, Sequence[Record]], fractions):
        groups: dict[str, list[Record]] = {}
        for task in TASK_NAMES:
            by_dataset: dict[str, list[Record]] = defaultdict(list)
            for record in records_by_task.get(task, ()):
                by_dataset[record.dataset].append(record)
            for dataset, recs in by_dataset.items():
                key = f"{task}/{dataset}"
                fraction = fractions.get(key, fractions.get(dataset, fractions.get(task, 1.0)))
                if not 0 <= fraction <= 1:
                    raise ValueError(f"fraction for {key} must lie in [0, 1], got {fraction}")
                subset = self._subset(key, recs, fraction)
                if subset:
                    groups[key] = subset
        if not groups:
            raise ValueError("mixture (mode 'dataset') has no records to draw from")
        return groups, [1.0 / len(groups)] * len(groups)

    def _subset(self, key: str, records: list[Record], fraction: float) -> list[Record]:
        """A fixed, seeded subset of `records`, keeping their original order."""
        keep = int(round(len(records) * fraction))
        if keep >= len(records):
            return list(records)
        salt = zlib.crc32(key.encode("utf-8"))
        rng = np.random.Generator(np.random.Philox(key=np.array([self.seed, salt], dtype=np.uint64)))
        chosen = np.sort(rng.permutation(len(records))[:keep])
        return [records[i] for i in chosen]

    # -- drawing ------------------------------------------------------------------
    def group_of(self, index: int) -> str:
        """Name of the group (task, or "task/dataset") that draw `index` uses."""
        u = _uniforms(self.seed, index)[0]
        return self._names[min(int(np.searchsorted(self._cum, u, side="right")), len(self._names) - 1)]

    def draw(self, index: int) -> Record:
        """Record number `index` of the stream (pure function of seed and index)."""
        if index < 0:
            raise ValueError(f"draw index must be >= 0, got {index}")
        u_group, u_item, u_class = _uniforms(self.seed, index)
        g = min(int(np.searchsorted(self._cum, u_group, side="right")), len(self._names) - 1)
        classes = self._classes.get(self._names[g])
        if classes:
            records = classes[_pick(u_class, len(classes))]
            return records[_pick(u_item, len(records))]
        records = self._groups[self._names[g]]
        return records[_pick(u_item, len(records))]

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        record = self.draw(self.position)
        self.position += 1
        return record

    def take(self, n: int) -> list[Record]:
        """The next `n` records (advances the position)."""
        return [next(self) for _ in range(n)]

    # -- resuming -----------------------------------------------------------------
    def skip_to(self, position: int) -> "TaskMixture":
        """Continue the stream from draw number `position` (O(1))."""
        if position < 0:
            raise ValueError(f"mixture position must be >= 0, got {position}")
        self.position = int(position)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "position": self.position, "mode": self.mode}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from `state_dict()` output; the mode must match the saved one."""
        if state.get("mode", self.mode) != self.mode:
            raise ValueError(
                f"saved mixture state is for mode {state['mode']!r}, this mixture uses {self.mode!r}"
            )
        seed = int(state["seed"])
        if self.mode == "dataset" and seed != self.seed:
            # The per-group subsets were chosen with the constructor's seed.
            raise ValueError(
                f"saved mixture state has seed {seed} but this dataset-mode mixture was "
                f"built with seed {self.seed}; build it with seed={seed} to resume"
            )
        self.seed = seed
        self.skip_to(int(state["position"]))

    def __len__(self) -> int:
        """Number of distinct records the mixture can draw from."""
        return sum(len(r) for r in self._groups.values())
