"""Training data: manifests -> per-phase task mixture -> processed samples -> batches.

Every training sample is a pure function of its global index (the mixture draws the
record from (seed, index), the instruction paraphrase uses an rng seeded by the index),
so the data order survives interruption exactly: resuming at optimizer step s reads
the same samples an uninterrupted run would. Batches are laid out by index as

    index = ((step * grad_accum + micro) * world_size + rank) * micro_batch + j

so that N processes with micro-batch m see the same global batch as one process with
micro-batch N*m. Media are decoded in DataLoader worker processes, or read from a
feature cache of the frozen encoders.

A run reads its records and opens its feature cache once (`RunData`); each phase's
loader is made from them.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nanoemox.data.manifest import Record, load_manifest
from nanoemox.data.mixture import TaskMixture, group_by_task
from nanoemox.features import FeatureCache, media_key, stack_features
from nanoemox.media.errors import MediaError
from nanoemox.train.absent import AbsentModalities
from nanoemox.train.config import DataConfig, PhaseConfig

logger = logging.getLogger(__name__)

# A record whose media cannot be read is replaced by the draw at index + k * REPLACEMENT_STRIDE
# (k = 1, 2, ...), which keeps the data order a pure function of the index.
REPLACEMENT_STRIDE = 1 << 40
MAX_REPLACEMENTS = 16


def load_training_records(data: DataConfig) -> list[Record]:
    records: list[Record] = []
    for path in data.train:
        records += [r for r in load_manifest(path) if r.split == "train"]
    if not records:
        raise ValueError(f"no training records (split 'train') in {data.train}")
    return records


def phase_mixture(records: Sequence[Record], phase: PhaseConfig, seed: int) -> TaskMixture:
    """The phase's sampler: its datasets and tasks, with the phase's task weights."""
    kept = [r for r in records if r.task in phase.tasks and phase.tasks[r.task] > 0]
    if phase.datasets is not None:
        wanted = {d.lower() for d in phase.datasets}
        kept = [r for r in kept if r.dataset.lower() in wanted]
    for key, values in (phase.where or {}).items():
        kept = [r for r in kept if r.extra.get(key) in values]
    by_task = group_by_task(kept)
    missing = [t for t, w in phase.tasks.items() if w > 0 and t not in by_task]
    if missing:
        raise ValueError(
            f"phase {phase.name!r} samples task(s) {missing} but the training data has none"
            + (f" in datasets {phase.datasets}" if phase.datasets else "")
            + (f" where {phase.where}" if phase.where else "")
        )
    weights = {t: w for t, w in phase.tasks.items() if w > 0}
    return TaskMixture(by_task, weights, mode=phase.mixture_mode, seed=seed, balance=phase.balance or ())


class UnreadableData(ValueError):
    """Training cannot find readable samples: the data, not one file, is the problem."""


class PhaseDataset(Dataset):
    """Index -> one processed training sample (a dict of tensors plus its record id)."""

    def __init__(self, mixture: TaskMixture, processor, root: str, seed: int, cache=None,
                 dropout: dict[str, float] | None = None, absent=None):
        self.mixture = mixture
        self.processor = processor
        self.root = root
        self.seed = seed
        self.cache = cache
        self.dropout = {m: float(p) for m, p in (dropout or {}).items() if p > 0}
        self.absent = absent  # an AbsentModalities, needed when dropout is set
        if self.dropout and absent is None:
            raise ValueError("modality dropout needs the blank inputs (AbsentModalities)")

    def __len__(self) -> int:  # the stream is endless; the batch sampler decides what is read
        return 1 << 62

    def __getitem__(self, index: int) -> dict[str, Any]:
        problems = []
        for k in range(MAX_REPLACEMENTS):
            record = self.mixture.draw(index + k * REPLACEMENT_STRIDE)
            try:
                return self._sample(record, index)
            except MediaError as exc:
                problems.append(str(exc))
                logger.warning("skipping %s: %s", record.id, exc)
        raise UnreadableData(f"{MAX_REPLACEMENTS} unreadable samples in a row at sample index {index} (last: "
                             f"{problems[-1]}); the media are probably not where the manifests say: check "
                             "data.root (--data-root) and run `nanoemox train CONFIG --dry-run`, which lists "
                             "missing files")

    def _dropped(self, index: int) -> list[str]:
        """Modalities left out of sample `index` (its own generator: a pure function of the index)."""
        rng = random.Random(f"{self.seed}:{index}:modality-dropout")
        return [m for m, p in sorted(self.dropout.items()) if rng.random() < p]

    def _sample(self, record: Record, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + index)
        dropped = self._dropped(index) if self.dropout else []
        if dropped:
            record = self.absent.drop_record(record, dropped)
        if self.cache is None:
            sample = self.processor.from_record(record, self.root, train=True, rng=rng)
            if dropped:
                sample = self.absent.drop_media(sample, dropped)
        else:
            text = self.processor.encode_text(
                record.task, record.text, record.history, record.candidates, record.target, train=True, rng=rng
            )
            key = media_key(record)
            error = self.cache.error(key)
            if error:
                raise MediaError(key, error)
            sample = {
                "input_ids": torch.tensor(text.input_ids, dtype=torch.long),
                "labels": torch.tensor(text.labels, dtype=torch.long),
                "features": self.cache.get(key),
            }
            if dropped:
                sample["features"] = self.absent.drop_features(sample["features"], dropped)
        sample["id"] = record.id
        sample["task"] = record.task
        return sample


class StepBatchSampler(Sampler[list[int]]):
    """Micro-batches of global indices for one rank, from optimizer step `start_step` on."""

    def __init__(self, phase: PhaseConfig, *, start_step: int, rank: int = 0, world_size: int = 1):
        self.phase = phase
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.phase.steps - self.start_step) * self.phase.grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        m, accum = self.phase.micro_batch, self.phase.grad_accum
        for step in range(self.start_step, self.phase.steps):
            for micro in range(accum):
                base = ((step * accum + micro) * self.world_size + self.rank) * m
                yield list(range(base, base + m))


class Collator:
    """Batches samples: live media through the processor's collate, cached features stacked."""

    def __init__(self, processor, cached: bool):
        self.processor = processor
        self.cached = cached

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        meta = {"ids": [s.pop("id") for s in samples], "tasks": [s.pop("task") for s in samples]}
        if not self.cached:
            return {**self.processor.collate(samples), **meta}
        batch = self.processor.collate([{k: s[k] for k in ("input_ids", "labels")} for s in samples])
        batch["features"] = stack_features([s["features"] for s in samples], dtype=torch.float32)
        return {**batch, **meta}


def make_loader(dataset: PhaseDataset, sampler: StepBatchSampler, collate: Collator, workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


class RunData:
    """A training run's records and feature cache, read by the first `loader` and shared by every phase."""

    def __init__(self, config: DataConfig, seed: int):
        self.config = config
        self.seed = seed
        self.records: list[Record] | None = None
        self.cache: FeatureCache | None = None  # when the config names one

    def loader(self, phase: PhaseConfig, model: torch.nn.Module, processor, *, start_step: int, rank: int,
               world_size: int) -> DataLoader:
        """The phase's loader of micro-batches from optimizer step `start_step` on, for process `rank` of `world_size`.

        `model` (whole, not yet prepared) and `processor` open the feature cache and, with modality
        dropout, make the blank inputs (`AbsentModalities`, which run the encoders).
        """
        if self.records is None:
            self.records = load_training_records(self.config)
        if self.config.features and self.cache is None:
            # The identity check refuses a cache made by other encoders or media settings.
            self.cache = FeatureCache.open(self.config.features, model=model, processor=processor, verify="lazy")
        mixture = phase_mixture(self.records, phase, self.seed)
        absent = AbsentModalities(model, processor) if phase.modality_dropout else None
        dataset = PhaseDataset(mixture, processor, self.config.root, self.seed, cache=self.cache,
                               dropout=phase.modality_dropout, absent=absent)
        sampler = StepBatchSampler(phase, start_step=start_step, rank=rank, world_size=world_size)
        return make_loader(dataset, sampler, Collator(processor, cached=self.cache is not None), self.config.workers)
