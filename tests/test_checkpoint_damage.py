"""Checkpoints verify themselves: a damaged newest one falls back to the newest intact one."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from nanoemox.cli import main
from nanoemox.train import Trainer, load_train_config
from nanoemox.train.checkpoint import CheckpointError, load_checkpoint, verify_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from nanoemox.data.synth import generate

    root = tmp_path_factory.mktemp("ckpt")
    generate(root / "synth", 12, seed=3)
    assert main(["init-model", "--preset", "tiny", "--out", str(root / "init"), "--seed", "1"]) == 0
    config = {"model": {"path": str(root / "init"), "preset": None},
              "data": {"root": str(root / "synth"), "train": [str(root / "synth" / "train.jsonl")], "workers": 0},
              "seed": 7, "save_every": 1, "keep_last": 10, "log_every": 1, "mixed_precision": "no",
              "phases": [{"name": "p", "trainable": ["scene_adapter", "lora"], "steps": 4, "lr": 1e-3,
                          "tasks": {"mer": 1, "mir": 1}, "micro_batch": 2, "grad_accum": 1}]}
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    reference = Trainer(load_train_config(path), root / "reference", progress=False).train()
    return path, load_file(reference / "model.safetensors"), root / "reference"


def _interrupted_copy(reference, dest):
    """The finished run as if killed after its last checkpoint (no final model, no DONE)."""
    shutil.copytree(reference, dest)
    phase = dest / "phases" / "01_p"
    shutil.rmtree(phase / "model")
    (phase / "DONE").unlink()
    (dest / "run.json").unlink()
    return phase / "checkpoints"


def test_damaged_newest_checkpoint_falls_back_and_resumes_exactly(setup, tmp_path, caplog):
    config, expected, reference = setup
    checkpoints = _interrupted_copy(reference, tmp_path / "run")
    newest = checkpoints / "step_00000003"
    data = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated by a full disk
    (checkpoints / "step_00000002" / "optimizer.safetensors").write_bytes(b"")  # and this one emptied
    stale = checkpoints / ".step_00000004.abcd.tmp"
    stale.mkdir()
    with pytest.raises(CheckpointError, match=r"step_00000003/model.safetensors: \d+ bytes, \d+ when written"):
        verify_checkpoint(newest)
    with caplog.at_level("WARNING"):
        final = Trainer(load_train_config(config), tmp_path / "run", resume=True, progress=False).train()
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "step_00000003" in warnings and "step_00000002" in warnings  # both named, step 1 used
    assert not stale.exists()
    got = load_file(final / "model.safetensors")
    assert all(torch.equal(got[k], expected[k]) for k in expected)  # resumed from step 1, bit-identical


def test_same_size_corruption_and_garbled_state_are_named(setup, tmp_path):
    _, _, reference = setup
    checkpoints = _interrupted_copy(reference, tmp_path / "run")
    path = checkpoints / "step_00000003" / "optimizer.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside a tensor: the file still loads
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="optimizer.safetensors: checksum differs"):
        verify_checkpoint(path.parent)
    (checkpoints / "step_00000002" / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"step_00000002/state.json: unreadable checkpoint state"):
        load_checkpoint(checkpoints / "step_00000002")


def test_no_intact_checkpoint_is_one_clear_error(setup, tmp_path, capsys):
    config, _, reference = setup
    checkpoints = _interrupted_copy(reference, tmp_path / "run")
    for step in checkpoints.iterdir():
        (step / "rng.safetensors").write_bytes(b"\x00" * 3)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 2
    assert "no intact checkpoint to resume from" in capsys.readouterr().err
