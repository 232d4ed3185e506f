"""What a training phase writes, from any process layout: its checkpoints and its hand-over.

    OUT/phases/NN_<name>/checkpoints/step_XXXXXXXX/    `write_checkpoint`: every save_every steps, on a
                                                       stop signal, on a loss that is not finite
    OUT/phases/NN_<name>/model/  history.json  loss.png  DONE
                                                       `write_handover`: once the phase is done

Every process calls both functions. Under FSDP (train/sharding.py) each process holds a
shard of the trainable weights and optimizer states and takes part in gathering them;
only the main process writes, and it writes whole tensors, so a checkpoint and a phase's
model folder both load in one process. A checkpoint is also a model folder: its model
files are written by model/saving.py's `write_model_files`, the function `save_model`
writes the hand-over's with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from accelerate import Accelerator
from torch import nn

from nanoemox.model import NanoEmoX, load_model, save_model
from nanoemox.model.saving import trainable_state_dict, write_model_files
from nanoemox.train import checkpoint as ckpt
from nanoemox.train.plots import plot_loss
from nanoemox.train.sharding import full_optimizer_state, full_tensors, is_sharded, rank_rng
from nanoemox.train.state import PhaseRun, PhaseState, save_phase_state
from nanoemox.utils import atomic_write_json


def write_checkpoint(run: PhaseRun, accelerator: Accelerator, *, keep_last: int,
                     extra_files: Callable[[Path], None]) -> None:
    """Checkpoint `run` at `run.state.step` in `run.folder/checkpoints`, keeping the newest `keep_last`.

    Every process gathers the trainable weights, the optimizer states and its RNG states;
    the main process writes them (checkpoint.py's format) with the model files of the
    unwrapped model and `run.processor` (`write_model_files`) and `extra_files(folder)`,
    then redraws the phase's loss.png. All processes wait for the write to finish.
    """
    bare = accelerator.unwrap_model(run.model)
    weights = full_tensors(trainable_state_dict(bare))
    optimizer_state = full_optimizer_state(run.optimizer)
    rng = rank_rng(accelerator, *ckpt.rng_state())
    if accelerator.is_main_process:
        def model_files(folder: Path) -> None:
            write_model_files(folder, bare.config, bare.placeholder_ids, weights, processor=run.processor)
            extra_files(folder)

        save_phase_state(run.folder, optimizer_state, run.scheduler, run.state, keep_last=keep_last, rng=rng,
                         model_files=model_files)
        plot_phase(run.folder, run.state)
    accelerator.wait_for_everyone()


def write_handover(run: PhaseRun, accelerator: Accelerator, *, extra_files: Callable[[Path], None]) -> NanoEmoX | None:
    """Finish a trained phase: its model folder `run.folder/model` (`save_model`, then `extra_files(folder)`),
    history.json (steps and loss history), loss.png, and last the DONE marker that a resumed run skips
    the phase on. All processes wait for the main one to finish.

    Returns the trained model, unwrapped (`whole_model`): the one written on the main process, None on
    the others under FSDP.
    """
    model = whole_model(run.model, accelerator, run.init_dir)
    if accelerator.is_main_process:
        final = run.folder / "model"
        save_model(model, final, processor=run.processor)
        extra_files(final)
        atomic_write_json({"phase": run.phase.name, "steps": run.state.step, "history": run.state.history},
                          run.folder / "history.json")
        plot_phase(run.folder, run.state)
        (run.folder / "DONE").write_text("complete\n")
    accelerator.wait_for_everyone()
    return model


def whole_model(model: nn.Module, accelerator: Accelerator, init_dir: Path) -> NanoEmoX | None:
    """The trained `model`, unwrapped; under FSDP its saved weights gathered into a copy on the main process.

    The copy is loaded from `init_dir` (the hand-over folder the phase started from, which holds the
    frozen backbones) with the gathered weights loaded over it; the other processes get None.
    """
    if not is_sharded(accelerator):
        return accelerator.unwrap_model(model)
    weights = full_tensors(trainable_state_dict(model))  # every process takes part in the gather
    if not accelerator.is_main_process:
        return None
    whole = load_model(init_dir)
    whole.load_state_dict(weights, strict=False)
    return whole


def plot_phase(folder: Path, state: PhaseState) -> None:
    """The phase's loss curve so far as `folder/loss.png` (nothing before the first logged step)."""
    if state.history:
        plot_loss({folder.name: state.history}, folder / "loss.png")
