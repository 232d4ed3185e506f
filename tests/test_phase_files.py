"""What a training phase writes: a checkpoint holds the model files of a model folder, written by the same
function (model/saving.py's `write_model_files`) that writes the phase's hand-over."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator

from conftest import ADAPTERS
from nanoemox.model import load_model, set_trainable
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.train.config import PhaseConfig
from nanoemox.train.optim import build_optimizer, build_scheduler
from nanoemox.train.phase_files import write_checkpoint, write_handover
from nanoemox.train.state import PhaseRun, PhaseState

OWN_FILES = {"optimizer.safetensors", "rng.safetensors", "state.json"}  # a checkpoint's, beside the model files


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_checkpoint_and_handover_hold_the_same_model_files(tmp_path, init_model):
    phase = PhaseConfig(name="align", trainable=ADAPTERS, steps=2, lr=1e-3, tasks={"mer": 1.0})
    model = load_model(init_model)
    set_trainable(model, phase.trainable)
    with torch.no_grad():  # weights of its own: the files cannot be copies of init_model's
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.5)
    optimizer = build_optimizer(model, phase)
    scheduler = build_scheduler(optimizer, phase)
    accelerator = Accelerator(cpu=True)
    prepared, optimizer = accelerator.prepare(model, optimizer)
    run = PhaseRun(phase=phase, folder=tmp_path / "01_align", init_dir=init_model, model=prepared,
                   processor=NanoEmoXProcessor.from_pretrained(init_model), optimizer=optimizer, scheduler=scheduler,
                   loader=None, state=PhaseState(step=1, history=[[1, 2.5]]))

    def extra_files(folder: Path) -> None:
        (folder / "extra.json").write_text("{}")

    write_checkpoint(run, accelerator, keep_last=1, extra_files=extra_files)
    trained = write_handover(run, accelerator, extra_files=extra_files)

    checkpoint = files(run.folder / "checkpoints" / "step_00000001")
    handover = files(run.folder / "model")
    assert {"config.json", "model.safetensors", "extra.json"} <= handover.keys()
    assert any(name.startswith("tokenizer/") for name in handover)
    assert checkpoint.keys() == handover.keys() | OWN_FILES
    assert all(checkpoint[name] == handover[name] for name in handover)  # byte for byte
    assert trained is model
    assert (run.folder / "DONE").is_file() and (run.folder / "history.json").is_file()
    reloaded = load_model(run.folder / "checkpoints" / "step_00000001").state_dict()
    assert all(torch.equal(reloaded[k], v) for k, v in model.state_dict().items())
