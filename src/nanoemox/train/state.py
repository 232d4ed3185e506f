"""A phase's progress (step, loss history, RNG states) and its round trip through checkpoints.

The trainer keeps one `PhaseState` per phase; `save_phase_state` writes it with the
model, optimizer and schedule as a checkpoint (checkpoint.py), and on `--resume`
`resume_checkpoint` finds the newest intact one and `restore_phase_state` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from nanoemox.model.saving import trainable_state_dict
from nanoemox.train import checkpoint as ckpt


@dataclass
class PhaseState:
    step: int = 0
    history: list[list[float]] = field(default_factory=list)  # [step, loss] pairs
    rng: tuple | None = None  # RNG states to restore once the data iterator exists


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


def restore_phase_state(path: Path, model: nn.Module, optimizer, scheduler) -> PhaseState:
    """Load a checkpoint into the (unwrapped) model, optimizer and schedule; its PhaseState."""
    saved = ckpt.load_checkpoint(path)
    missing, unexpected = model.load_state_dict(saved["model_weights"], strict=False)
    if unexpected or set(trainable_state_dict(model)) - set(saved["model_weights"]):
        raise ValueError(f"{path}: checkpoint weights do not fit the model (unexpected {unexpected[:5]})")
    optimizer.load_state_dict(saved["optimizer_state"])
    scheduler.load_state_dict(saved["scheduler"])
    return PhaseState(step=int(saved["step"]), history=saved.get("history", []),
                      rng=(saved["rng_tensors"], saved["rng"]))


def save_phase_state(folder: Path, model: nn.Module, optimizer, scheduler, state: PhaseState, *,
                     keep_last: int) -> Path:
    """Checkpoint the phase in `folder` (a phase folder) at `state.step`; the (unwrapped) model's trainable weights."""
    return ckpt.save_checkpoint(
        folder / "checkpoints",
        step=state.step,
        model_weights=trainable_state_dict(model),
        optimizer=optimizer,
        scheduler=scheduler,
        extra={"history": state.history, "data_position": state.step, "phase": folder.name},
        keep_last=keep_last,
    )
