"""A phase's progress (step, loss history, RNG states) and its round trip through checkpoints.

The trainer keeps one `PhaseState` per phase; `save_phase_state` writes it with the
model, optimizer and schedule as a checkpoint (checkpoint.py), and on `--resume`
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

from nanoemox.model.saving import trainable_state_dict
from nanoemox.train import checkpoint as ckpt
from nanoemox.train.sharding import own_rng


@dataclass
class PhaseState:
    step: int = 0
    history: list[list[float]] = field(default_factory=list)  # [step, loss] pairs
    rng: tuple | None = None  # this process's RNG states, to restore once the data iterator exists
    optimizer: dict[str, Any] | None = None  # a checkpoint's optimizer state, to load after `prepare`


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


def save_phase_state(folder: Path, weights: dict[str, torch.Tensor], optimizer_state: dict[str, Any], scheduler,
                     state: PhaseState, *, keep_last: int, rng,
                     model_files: Callable[[Path], None] | None = None) -> Path:
    """Checkpoint the phase in `folder` (a phase folder) at `state.step`: the model's saved weights
    (`trainable_state_dict`, whole) and a one-process optimizer state (see checkpoint.save_checkpoint)."""
    return ckpt.save_checkpoint(
        folder / "checkpoints",
        step=state.step,
        model_weights=weights,
        optimizer_state=optimizer_state,
        scheduler=scheduler,
        extra={"history": state.history, "data_position": state.step, "phase": folder.name},
        keep_last=keep_last,
        rng=rng,
        model_files=model_files,
    )
