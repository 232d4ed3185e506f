"""Data-parallel runs: the inputs of `eval` and `analyze` split across the processes of `accelerate launch`.

    accelerate launch --num_processes 8 -m nanoemox eval --benchmark mer-unibench ...
    torchrun --nproc_per_node 8 -m nanoemox eval --benchmark mer-unibench ...     # the same
    accelerate launch --multi_gpu --num_processes 2 -m nanoemox eval ...          # CPU only: gloo

With N processes (`WORLD_SIZE` > 1, as `accelerate launch` and `torchrun` set it),
process r takes every N-th input still pending (r, r + N, ...) and writes its results to
its own part file beside the results file (`eval`: OUT/predictions.part-R-of-N.jsonl;
`analyze --out results.jsonl`: results.part-R-of-N.jsonl), appended and flushed line by
line. When all processes are done, the main process appends the parts to the results
file in the order of the inputs and removes them (`eval` then scores); the other
processes end without a report. Parts left by an interrupted run, whatever its number
of processes, are merged first, so a rerun (with any N, or with one process) continues.

Greedy answers do not depend on which process computes them, only on the batch a record
is in: with `--batch-size 1` a run over N processes writes the same predictions as one
process (the tests check this); with larger batches the batches of the two runs differ,
so padding and batch shapes differ and rare near-ties of greedy decoding can differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from nanoemox.results_file import ResultsFile

@dataclass
class Shard:
    """This process's place in the run: `rank` of `world` processes (`state`: Accelerate's, when several)."""

    rank: int = 0
    world: int = 1
    state: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str | None:
        """The device Accelerate gives this process (its own GPU), or None to choose as usual."""
        return None if self.state is None or self.state.device.type == "cpu" else str(self.state.device)

    def wait(self) -> None:
        """Every process reaches this point before any goes on (nothing to wait for alone)."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def part(self, target: Path) -> Path:
        """This process's part of the results file `target`."""
        return part_path(target, self.rank, self.world)

    def mine(self, items: Sequence[Any]) -> list[Any]:
        """This process's share of `items`: every `world`-th, from `rank`."""
        return list(items[self.rank::self.world])


def current_shard() -> Shard:
    """The shard of this process: one of several under `accelerate launch`/`torchrun`, else the only one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard()
    # imported when several processes run: joins their process group (gloo on CPUs, NCCL on GPUs)
    import torch
    from accelerate import PartialState

    # Without cpu=True, Accelerate sees no GPU and takes each process for a run of its own.
    state = PartialState(cpu=not torch.cuda.is_available())
    return Shard(state.process_index, state.num_processes, state)


def shard_sets(sets: Sequence[Any], shard: Shard, done: dict[str, dict]) -> list[Any]:
    """The reference sets with only this process's share of the pending records."""
    if shard.world == 1:
        return list(sets)
    pending = [r for s in sets for r in s.records if r.id not in done]
    mine = {r.id for r in shard.mine(pending)}
    return [replace(s, records=[r for r in s.records if r.id in mine]) for s in sets]


def part_path(target: Path, rank: int, world: int) -> Path:
    """Where process `rank` of `world` writes its share of the results file `target`."""
    return target.with_name(f"{target.stem}.part-{rank}-of-{world}{target.suffix}")


def parts_of(target: Path) -> list[Path]:
    """The part files of `target` that processes have left, whatever their number."""
    return sorted(target.parent.glob(f"{target.stem}.part-*-of-*{target.suffix}"))


def merge_parts(target: Path, order: Sequence[str]) -> int:
    """Append the part files' results to `target` in the order of the ids `order`, then remove the
    parts; results already in `target` stay as they are. Returns how many were appended."""
    parts = parts_of(target)
    if not parts:
        return 0
    done = {str(e["id"]) for e in ResultsFile(target).read()}
    found: dict[str, dict] = {}
    for part in parts:
        for entry in ResultsFile(part).read():
            found.setdefault(str(entry["id"]), entry)
    new = [found[i] for i in order if i in found and i not in done]
    with ResultsFile(target).appending() as lines:
        for entry in new:
            lines.append(entry)
    for part in parts:  # only once everything is in the target
        part.unlink()
    return len(new)
