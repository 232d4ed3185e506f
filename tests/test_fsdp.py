"""FSDP2 training on two CPU processes over gloo, launched as a user launches it:

    accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m nanoemox train CONFIG --out OUT

The tiny preset's phase-3 groups train (adapters, fusion, LoRA; encoders and LM frozen).
Checked: each step's loss against one process on the same global batch, the sharded
optimizer, exact resume from a checkpoint written under FSDP, and that checkpoint loading
in one process for `nanoemox analyze` and `nanoemox export`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ADAPTERS, free_port, write_config
from nanoemox.train.sharding import shares_in_log

ROOT = Path(__file__).resolve().parents[1]
FSDP_CONFIG = ROOT / "configs" / "accelerate" / "fsdp_cpu.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same threads in every run: sums in the same order
# The loss of a step, FSDP against one process: relative. Measured 3e-8 (reduction order of the gradients).
LOSS_RTOL = 1e-5


@pytest.fixture(scope="module")
def no_dropout_model(init_model, tmp_path_factory):
    """The same model with LoRA dropout 0: with dropout, two processes drawing masks for one sample each cannot
    draw what one process draws for both, so only a model without dropout can match one process."""
    out = tmp_path_factory.mktemp("nodrop") / "model"
    shutil.copytree(init_model, out)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["lora"]["dropout"] > 0
    config["config"]["lora"]["dropout"] = 0.0
    (out / "config.json").write_text(json.dumps(config))
    return out


def phase3(micro_batch: int) -> dict:
    return {"name": "instruct", "trainable": ADAPTERS + ["lora"], "steps": 3, "lr": 1e-3, "micro_batch": micro_batch,
            "grad_accum": 2, "tasks": {"mer": 1, "mir": 1, "ovmer": 1}, "max_grad_norm": 1.0,
            "modality_dropout": {"face": 0.3, "voice": 0.3, "text": 0.3}}


def fsdp_train(config: Path, out: Path, *extra: str) -> str:
    """The launch of docs/training.md, two processes; its log (stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG), "--main_process_port",
         str(free_port()), "-m", "nanoemox", "train", str(config), "--out", str(out), *extra],
        env=ENV, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr


def one_process_train(config: Path, out: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "nanoemox", "train", str(config), "--out", str(out)],
                            env=ENV, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]


def phase(out: Path) -> Path:
    return out / "phases" / "01_instruct"


def losses(out: Path) -> list[list[float]]:
    return json.loads((phase(out) / "history.json").read_text())["history"]


def test_fsdp_cpu_config_is_fsdp_8gpu_but_for_the_hardware():
    import yaml

    cpu = yaml.safe_load(FSDP_CONFIG.read_text())
    gpu = yaml.safe_load((FSDP_CONFIG.parent / "fsdp_8gpu.yaml").read_text())
    hardware = ("num_processes", "mixed_precision")
    assert (cpu["num_processes"], cpu["mixed_precision"]) == (2, "no")
    assert {k: v for k, v in cpu.items() if k not in hardware} == {k: v for k, v in gpu.items() if k not in hardware}
    assert cpu["fsdp_config"]["fsdp_version"] == 2


def test_fsdp_losses_match_one_process_and_the_optimizer_holds_shards(tmp_path, corpus, no_dropout_model):
    two = write_config(tmp_path / "two.yaml", corpus, no_dropout_model, [phase3(1)], save_every=2)
    one = write_config(tmp_path / "one.yaml", corpus, no_dropout_model, [phase3(2)], save_every=2)
    log = fsdp_train(two, tmp_path / "fsdp")
    one_process_train(one, tmp_path / "one")

    sharded, single = losses(tmp_path / "fsdp"), losses(tmp_path / "one")
    assert [s for s, _ in sharded] == [s for s, _ in single] == [1, 2, 3]
    for (step, a), (_, b) in zip(sharded, single):
        assert abs(a - b) <= LOSS_RTOL * abs(b), f"step {step}: FSDP loss {a} != one process {b}"

    # Whole tensors in the model folder, equal to one process's (1% of one Adam step at lr 1e-3).
    weights = load_file(phase(tmp_path / "fsdp") / "model" / "model.safetensors")
    reference = load_file(phase(tmp_path / "one") / "model" / "model.safetensors")
    init = load_file(no_dropout_model / "model.safetensors")
    assert weights.keys() == reference.keys()
    for key in weights:
        torch.testing.assert_close(weights[key], reference[key], rtol=1e-4, atol=1e-5, msg=f"FSDP != one process at {key}")
    assert sum(not torch.equal(weights[k], init[k]) for k in weights) > 100  # adapters, fusion and LoRA all moved

    # Each process's optimizer holds its shard of exactly the trainable parameters, never a frozen one.
    held = shares_in_log(log)
    assert len(held) == 2, log[-3000:]
    (n0, local0, full0, frozen0), (n1, local1, full1, frozen1) = held
    from nanoemox.model import load_model, set_trainable

    model = load_model(no_dropout_model)
    set_trainable(model, ADAPTERS + ["lora"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert n0 == n1 == len(trainable) and frozen0 == frozen1 == sum(1 for p in model.parameters() if not p.requires_grad)
    assert full0 == full1 == sum(p.numel() for p in trainable)
    assert local0 + local1 == full0 and 0 < local0 < full0  # split between the processes, not replicated

    # The checkpoint's optimizer file: whole states of the trainable parameters only, as one process writes it.
    states = load_file(phase(tmp_path / "fsdp") / "checkpoints" / "step_00000002" / "optimizer.safetensors")
    single_states = load_file(phase(tmp_path / "one") / "checkpoints" / "step_00000002" / "optimizer.safetensors")
    assert states.keys() == single_states.keys()
    assert {k for k in states if k.endswith(".exp_avg")} == {f"state.{i}.exp_avg" for i in range(len(trainable))}
    assert all(states[k].shape == single_states[k].shape for k in states)


def test_fsdp_checkpoint_resumes_exactly_and_loads_in_one_process(tmp_path, corpus, init_model):
    """With LoRA dropout on: each process's random state is saved and restored, so the resumed run draws
    the same masks as the uninterrupted one on both processes."""
    config = write_config(tmp_path / "run.yaml", corpus, init_model, [phase3(1)], save_every=1)
    fsdp_train(config, tmp_path / "whole")

    # A run killed after its first checkpoint: what is on disk then.
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    for later in ("checkpoints/step_00000002", "model"):
        shutil.rmtree(phase(cut) / later)
    for name in ("DONE", "history.json", "loss.png"):
        (phase(cut) / name).unlink()
    for name in ("run.json", "loss.png"):
        (cut / name).unlink(missing_ok=True)
    log = fsdp_train(config, cut, "--resume")
    assert "resumed phase instruct from" in log and "(step 1)" in log
    assert losses(cut) == losses(tmp_path / "whole")  # exactly: steps 2 and 3 computed again
    resumed = load_file(phase(cut) / "model" / "model.safetensors")
    uninterrupted = load_file(phase(tmp_path / "whole") / "model" / "model.safetensors")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)

    # The FSDP checkpoint is a model folder: one process loads it, analyzes a clip, exports it.
    checkpoint = phase(tmp_path / "whole") / "checkpoints" / "step_00000001"
    saved = load_file(checkpoint / "model.safetensors")
    from nanoemox.model import load_model
    from nanoemox.model.saving import trainable_state_dict

    loaded = trainable_state_dict(load_model(checkpoint))
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    clip = next((corpus / "media").glob("*.mp4"))
    analyzed = subprocess.run([sys.executable, "-m", "nanoemox", "analyze", str(clip), "--model", str(checkpoint),
                               "--tasks", "mer,msa", "--json"], env=ENV, capture_output=True, text=True, timeout=600)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert {"mer", "msa"} <= set(json.loads(analyzed.stdout)["answers"])
    exported = subprocess.run([sys.executable, "-m", "nanoemox", "export", "--model", str(checkpoint), "--out",
                               str(tmp_path / "export")], env=ENV, capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    adapter = load_file(tmp_path / "export" / "lora" / "adapter_model.safetensors")
    assert adapter
    for key, value in adapter.items():
        ours = key.replace("base_model.model.", "language.", 1).replace(".weight", ".default.weight")
        assert torch.equal(value, saved[ours]), key
