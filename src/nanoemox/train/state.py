"""A phase's parts while it trains, its progress, and the progress's round trip through checkpoints.

`Trainer.setup` makes one `PhaseRun` per phase: the prepared model and optimizer, the
schedule, the data loader and the phase's `PhaseState` (step, loss history, RNG states).
`save_phase_state` writes the state with the model, optimizer and schedule as a
checkpoint (checkpoint.py), and on `--resume`
`resume_checkpoint` finds the newest intact one and `restore_phase_state` loads it
(the optimizer's states wait in `PhaseState.optimizer` until `accelerator.prepare` has
made the optimizer's final parameters: under FSDP, their shards).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from nanoemox.model.saving import trainable_state_dict
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.train import checkpoint as ckpt
from nanoemox.train.config import PhaseConfig
from nanoemox.train.sharding import own_rng


@dataclass
class PhaseState:
    step: int = 0
    history: list[list[float]] = field(default_factory=list)  # [step, loss] pairs
    rng: tuple | None = None  # this process's RNG states, to restore once the data iterator exists
    optimizer: dict[str, Any] | None = None  # a checkpoint's optimizer state, to load after `prepare`


@dataclass
class PhaseRun:
    """One phase while it trains: what `Trainer.setup` makes, taken by the training steps and
    by train/phase_files.py, which writes the checkpoints and the hand-over from it."""

    phase: PhaseConfig
    folder: Path  # the phase folder, OUT/phases/NN_<name>
    init_dir: Path  # the model folder the phase started from (it holds the frozen backbones)
    model: nn.Module  # as `accelerator.prepare` returned it: wrapped under DDP, sharded under FSDP
    processor: NanoEmoXProcessor  # init_dir's, written into each checkpoint and the phase's model folder
    optimizer: torch.optim.Optimizer  # prepared like the model
    scheduler: torch.optim.lr_scheduler.LRScheduler  # the learning rate, stepped once per optimizer step
    loader: DataLoader  # the phase's micro-batches from the step the phase starts (or resumes) at
    state: PhaseState


def resume_checkpoint(checkpoints: Path, *, clean: bool) -> Path | None:
    """The newest intact checkpoint in `checkpoints`, or None when the phase has none yet.

    With `clean` (the main process), temp folders of an interrupted write are removed
    first. Checkpoints that all fail to verify are a CheckpointError, never a restart.
    """
    if clean:
        ckpt.remove_stale_temp(checkpoints)
    latest = ckpt.latest_intact_checkpoint(checkpoints)
    if latest is None and ckpt.list_checkpoints(checkpoints):
        raise ckpt.CheckpointError(f"{checkpoints}: no intact checkpoint to resume from "
                                   "(see the warnings above); delete the folder to restart the phase")
    return latest


def restore_phase_state(path: Path, model: nn.Module, scheduler, *, rank: int = 0, world: int = 1) -> PhaseState:
    """Load a checkpoint into the (not yet prepared) model and the schedule; its PhaseState, which
    carries the optimizer state and process `rank`'s RNG states for later."""
    saved = ckpt.load_checkpoint(path)
    missing, unexpected = model.load_state_dict(saved["model_weights"], strict=False)
    if unexpected or set(trainable_state_dict(model)) - set(saved["model_weights"]):
        raise ValueError(f"{path}: checkpoint weights do not fit the model (unexpected {unexpected[:5]})")
    scheduler.load_state_dict(saved["scheduler"])
    rng = own_rng(saved["rng_tensors"], saved.get("rng_ranks") or [saved["rng"]], rank, world)
    return PhaseState(step=int(saved["step"]), history=saved.get("history", []), rng=rng,
                      optimizer=saved["optimizer_state"])


def save_phase_state(folder: Path, optimizer_state: dict[str, Any], scheduler, state: PhaseState, *,
                     keep_last: int, rng, model_files: Callable[[Path], None]) -> Path:
    """Checkpoint the phase in `folder` (a phase folder) at `state.step`: the model's files, which
    `model_files(tmp)` writes (its saved weights whole), and a one-process optimizer state (see
    checkpoint.save_checkpoint)."""
    return ckpt.save_checkpoint(
        folder / "checkpoints",
        step=state.step,
        model_files=model_files,
        optimizer_state=optimizer_state,
        scheduler=scheduler,
        extra={"history": state.history, "data_position": state.step, "phase": folder.name},
        keep_last=keep_last,
        rng=rng,
    )
