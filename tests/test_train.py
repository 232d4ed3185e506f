"""The P2E trainer: curriculum configs, optimizer coverage, exact resume after SIGKILL,
signals, NaN handling and multi-process gradient synchronisation (gloo on CPU)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ADAPTERS, free_port, write_config
from nanoemox.data.manifest import load_manifest
from nanoemox.model import NanoEmoX, set_trainable
from nanoemox.model.groups import count_parameters
from nanoemox.train import Trainer, TrainingDiverged, load_train_config
from nanoemox.train.optim import build_optimizer, check_optimizer_coverage

ROOT = Path(__file__).resolve().parents[1]


TWO_PHASES = [
    {"name": "align", "trainable": ["scene_adapter", "face_adapter"], "steps": 2, "lr": 1e-3,
     "tasks": {"mer": 1}, "micro_batch": 2, "grad_accum": 1},
    {"name": "instruct", "trainable": ADAPTERS + ["lora"], "steps": 4, "lr": 1e-3,
     "tasks": {"mer": 1, "mir": 1, "ovmer": 1}, "micro_batch": 2, "grad_accum": 2, "schedule": "linear"},
]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "phases" / "02_instruct" / "model" / "model.safetensors")


def test_paper_configs_carry_the_curriculum():
    p2e = load_train_config(ROOT / "configs" / "p2e_paper.yaml")
    steps = {p.name: p.steps for p in p2e.phases}
    assert steps == {"p1_visual_face": 25000, "p1_speech": 15000, "p2_fusion": 5000, "p3_instruct": 300000}
    lrs = [p.lr for p in p2e.phases]
    assert lrs == [3e-4, 3e-4, 1e-5, 8e-6]
    assert all(p.micro_batch == 3 and p.grad_accum == 4 for p in p2e.phases)
    p3 = p2e.phases[-1]
    assert p3.tasks == {"mer": 18, "ovmer": 28, "mir": 5, "eri": 31, "erg": 18}
    assert "lora" in p3.trainable and all("lora" not in p.trainable for p in p2e.phases[:-1])
    assert all("encoders" not in p.trainable for p in p2e.phases)
    jot = load_train_config(ROOT / "configs" / "jot_paper.yaml")
    assert [p.steps for p in jot.phases] == [345000]
    for demo in sorted((ROOT / "configs").glob("demo_*.yaml")):
        assert load_train_config(demo).phases


def test_phase_applies_groups_and_optimizer_covers_exactly_trainable(tiny_model):
    config = load_train_config(ROOT / "configs" / "p2e_paper.yaml")
    counts = count_parameters(tiny_model)
    for phase in config.phases:
        set_trainable(tiny_model, phase.trainable)
        trainable = sum(p.numel() for p in tiny_model.parameters() if p.requires_grad)
        assert trainable == sum(counts[g] for g in phase.trainable)
        optimizer = build_optimizer(tiny_model, phase)
        assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trainable
    # A group list that forgets a trainable parameter is refused.
    groups = [{"params": [p for p in tiny_model.parameters() if p.requires_grad][1:]}]
    with pytest.raises(AssertionError, match="missing"):
        check_optimizer_coverage(tiny_model, groups)


def test_lr_scale_gives_a_group_its_own_learning_rate(tiny_model):
    """`lr_scale` sets the named groups' learning rate to lr times the factor, the schedule scales all alike,
    and a group that does not train is refused."""
    from nanoemox.model.groups import group_of
    from nanoemox.train.config import PhaseConfig
    from nanoemox.train.optim import build_scheduler

    phase = PhaseConfig(name="p3", trainable=["fusion", "lora"], steps=10, lr=1e-2, tasks={"mer": 1},
                        lr_scale={"fusion": 0.1}, warmup_steps=0)
    set_trainable(tiny_model, phase.trainable)
    optimizer = build_optimizer(tiny_model, phase)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    lrs = {group_of(names[id(p)]): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lrs == {"fusion": pytest.approx(1e-3), "lora": pytest.approx(1e-2)}
    scheduler = build_scheduler(optimizer, phase)
    optimizer.step()
    scheduler.step()
    ratios = {g["lr"] / (1e-2 if g["lr"] > 2e-3 else 1e-3) for g in optimizer.param_groups}
    assert len({round(r, 9) for r in ratios}) == 1  # one schedule for every group
    with pytest.raises(ValueError, match="lr_scale"):
        PhaseConfig(name="p", trainable=["lora"], steps=1, lr=1.0, tasks={"mer": 1}, lr_scale={"fusion": 0.1})


def test_bad_config_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("phases: [{name: a, trainable: [adapters], steps: 1, lr: 1, tasks: {mer: 1}}]\n")
    with pytest.raises(ValueError, match="unknown parameter group"):
        load_train_config(bad)
    bad.write_text("phases: [{name: a, trainable: [fusion], steps: 1, lr: 1, tasks: {sing: 1}}]\n")
    with pytest.raises(ValueError, match="unknown task"):
        load_train_config(bad)
    # A group that model folders do not store would train and then be lost without a word.
    for group in ("language", "encoders"):
        bad.write_text(f"phases: [{{name: a, trainable: [lora, {group}], steps: 1, lr: 1, tasks: {{mer: 1}}}}]\n")
        with pytest.raises(ValueError, match=rf"\['{group}'\] cannot be trained"):
            load_train_config(bad)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not (path / "state.json").is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training ended (code {proc.returncode}) before {path} appeared")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.2)


def _train_cmd(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nanoemox", "train", str(config), "--out", str(out), "--no-progress", *extra]


def test_sigkill_then_resume_is_bit_identical(tmp_path, corpus, init_model):
    config = write_config(tmp_path / "run.yaml", corpus, init_model, TWO_PHASES)
    reference = Trainer(load_train_config(config), tmp_path / "reference", progress=False).train()
    expected = load_file(reference / "model.safetensors")

    # Kill at a random checkpoint of the second phase (its micro-batches accumulate).
    step = random.Random().randint(1, 3)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(config, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(out / "phases" / "02_instruct" / "checkpoints" / f"step_{step:08d}", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "phases" / "02_instruct" / "DONE").exists()
    resumed = Trainer(load_train_config(config), out, resume=True, progress=False).train()
    got = load_file(resumed / "model.safetensors")
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), f"{key} differs after resume from step {step}"
    history = (out / "phases" / "02_instruct" / "history.json").read_text()
    assert '"steps": 4' in history
    # Answer budgets measured on the training targets travel with the model (nanoemox.decoding).
    budgets = json.loads((resumed / "answer_budgets.json").read_text())
    assert set(budgets["budgets"]) == {r.task for r in load_manifest(corpus / "train.jsonl")}
    assert all(budgets["budgets"][t] > s["p99_tokens"] for t, s in budgets["stats"].items())
    assert (out / "loss.png").is_file() and (out / "phases" / "02_instruct" / "tensorboard").is_dir()


def test_sigterm_checkpoints_and_stops(tmp_path, corpus, init_model):
    phases = [{**TWO_PHASES[0], "steps": 40}]
    config = write_config(tmp_path / "run.yaml", corpus, init_model, phases, save_every=1000)
    out = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(config, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list((out / "phases" / "01_align").glob("tensorboard/*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    checkpoints = sorted((out / "phases" / "01_align" / "checkpoints").glob("step_*"))
    assert checkpoints, "no checkpoint written on SIGTERM"
    assert 1 <= int(checkpoints[-1].name.split("_")[1]) < 40


def test_nan_loss_stops_after_saving(tmp_path, corpus, init_model):
    config = write_config(tmp_path / "run.yaml", corpus, init_model, [TWO_PHASES[0] | {"steps": 3}], save_every=100)

    class Poisoned(Trainer):
        calls = 0

        def loss_step(self, model, batch):
            Poisoned.calls += 1
            loss = super().loss_step(model, batch)
            return loss * float("nan") if Poisoned.calls == 2 else loss

    with pytest.raises(TrainingDiverged, match=r"step 2 .*batch ids \['synth_"):
        Poisoned(load_train_config(config), tmp_path / "run", progress=False).train()
    saved = sorted((tmp_path / "run" / "phases" / "01_align" / "checkpoints").glob("step_*"))
    assert [p.name for p in saved] == ["step_00000001"]


DDP_SCRIPT = textwrap.dedent(
    """
    import sys
    from safetensors.torch import save_file
    from nanoemox.model.build import trainable_state_dict
    from nanoemox.train import Trainer, load_train_config

    trainer = Trainer(load_train_config(sys.argv[1]), sys.argv[2], progress=False)
    trainer.train()
    rank = trainer.accelerator.process_index
    save_file({k: v.contiguous() for k, v in trainable_state_dict(trainer.model).items()}, f"{sys.argv[2]}/rank{rank}.safetensors")
    """
)


class TwoOfOne:
    """The same 2-step phase as two processes of micro-batch 1 (`two`) and as one of micro-batch 2
    (`one`, run by `single()`): DDP must make both sides end with the same weights."""

    def __init__(self, tmp_path, corpus, init_model):
        self.tmp_path, self.init_model = tmp_path, init_model
        self.script = tmp_path / "ddp_train.py"
        self.script.write_text(DDP_SCRIPT)
        phase = {"name": "align", "trainable": ADAPTERS, "steps": 2, "lr": 1e-3, "tasks": {"mer": 1, "mir": 1},
                 "grad_accum": 2}
        self.two = write_config(tmp_path / "two.yaml", corpus, init_model, [phase | {"micro_batch": 1}], save_every=100)
        self.one = write_config(tmp_path / "one.yaml", corpus, init_model, [phase | {"micro_batch": 2}], save_every=100)
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.port = free_port()

    def check(self, out) -> None:
        """Both ranks' weights in `out` equal each other and those of one process; the adapters moved."""
        single = subprocess.run([sys.executable, str(self.script), str(self.one), str(self.tmp_path / "single")],
                                env=self.env, capture_output=True, text=True, timeout=600)
        assert single.returncode == 0, single.stderr[-3000:]
        r0, r1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
        ref = load_file(self.tmp_path / "single" / "rank0.safetensors")
        init = load_file(self.init_model / "model.safetensors")
        moved = 0
        for key in r0:
            assert torch.equal(r0[key], r1[key]), f"ranks differ at {key}"
            # Float tolerance: 1% of one Adam step (lr 1e-3); unsynchronised gradients differ by whole steps.
            torch.testing.assert_close(r0[key], ref[key], rtol=1e-4, atol=1e-5, msg=f"two processes != one at {key}")
            moved += int(not torch.equal(r0[key], init[key]))
        assert moved > 10  # the adapters did train


def test_two_processes_match_one_process(tmp_path, corpus, init_model):
    """DDP over gloo: both ranks end identical, and equal to one process with the same global batch."""
    run = TwoOfOne(tmp_path, corpus, init_model)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
              "--master_port", str(run.port), str(run.script), str(run.two), str(tmp_path / "ddp")]
    result = subprocess.run(launch, env=run.env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run.check(tmp_path / "ddp")


def test_two_machines_on_localhost_match_one_process(tmp_path, corpus, init_model):
    """`accelerate launch --num_machines 2 --machine_rank R ...` run twice, one process each, as two machines
    would run it (docs/training.md): the same weights as one process with the same global batch."""
    run = TwoOfOne(tmp_path, corpus, init_model)
    machines = [subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2", "--num_processes", "2",
         "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(run.port),
         "--mixed_precision", "no", "--dynamo_backend", "no", str(run.script), str(run.two), str(tmp_path / "nodes")],
        env=run.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for machine in machines:
        _, err = machine.communicate(timeout=600)
        assert machine.returncode == 0, err[-3000:]
    run.check(tmp_path / "nodes")


def test_training_from_cached_features_matches_live(tmp_path, corpus, init_model):
    """One phase from the feature cache gives the weights of the same phase on live media."""
    from nanoemox.data.manifest import load_manifest
    from nanoemox.features import build_cache
    from nanoemox.processor import NanoEmoXProcessor

    model = NanoEmoX.from_pretrained(init_model)
    processor = NanoEmoXProcessor.from_pretrained(init_model)
    build_cache(load_manifest(corpus / "train.jsonl"), corpus, model, processor, tmp_path / "features")
    phase = [{"name": "align", "trainable": ADAPTERS, "steps": 2, "lr": 1e-3, "tasks": {"mer": 1, "mir": 1},
              "micro_batch": 2, "grad_accum": 1}]
    live = write_config(tmp_path / "live.yaml", corpus, init_model, phase, save_every=100)
    cached = write_config(tmp_path / "cached.yaml", corpus, init_model, phase, save_every=100)
    data = yaml.safe_load(cached.read_text())
    data["data"]["features"] = str(tmp_path / "features")
    cached.write_text(yaml.safe_dump(data))
    a = load_file(Trainer(load_train_config(live), tmp_path / "a", progress=False).train() / "model.safetensors")
    b = load_file(Trainer(load_train_config(cached), tmp_path / "b", progress=False).train() / "model.safetensors")
    init = load_file(init_model / "model.safetensors")
    assert any(not torch.equal(a[k], init[k]) for k in a)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_modality_dropout_blanks_inputs_alike_live_and_cached(tmp_path, corpus, init_model):
    """Dropped modalities become blank video / silence / no subtitle: per sample a pure function of
    its index, the same for live media and cached features, and off by default."""
    from nanoemox.data.manifest import load_manifest
    from nanoemox.features import FeatureCache, build_cache, media_key
    from nanoemox.processor import NanoEmoXProcessor
    from nanoemox.train.absent import AbsentModalities
    from nanoemox.train.config import PhaseConfig
    from nanoemox.train.data import PhaseDataset, phase_mixture

    with pytest.raises(ValueError, match="modality_dropout"):
        PhaseConfig(name="x", trainable=ADAPTERS, steps=1, lr=1e-3, tasks={"mer": 1}, modality_dropout={"smell": 0.1})
    model = NanoEmoX.from_pretrained(init_model)
    processor = NanoEmoXProcessor.from_pretrained(init_model)
    records = load_manifest(corpus / "train.jsonl")
    build_cache(records, corpus, model, processor, tmp_path / "features")
    cache = FeatureCache.open(tmp_path / "features")
    dropout = {"face": 0.5, "voice": 0.5, "text": 0.5}
    phase = {"name": "align", "trainable": ADAPTERS, "steps": 2, "lr": 1e-3, "tasks": {"mer": 1, "mir": 1},
             "micro_batch": 2, "grad_accum": 1, "modality_dropout": dropout}
    absent = AbsentModalities(model, processor)
    mixture = phase_mixture(records, PhaseConfig(**phase), seed=0)
    dataset = PhaseDataset(mixture, processor, str(corpus), 0, cache=cache, dropout=dropout, absent=absent)
    seen = set()
    for index in range(12):
        dropped = dataset._dropped(index)
        seen.update(dropped)
        assert dropped == dataset._dropped(index)
        sample, record = dataset[index], mixture.draw(index)
        kept = cache.get(media_key(record))
        for key, value in sample["features"].items():
            if key in absent.features:
                blank = ("voice" in dropped and key.startswith("speech")) or ("face" in dropped and not key.startswith("speech"))
                torch.testing.assert_close(value, absent.features[key].to(value.dtype) if blank else kept[key])
            else:  # a presence flag
                blank = ("voice" in dropped and key == "audio_present") or ("face" in dropped and key != "audio_present")
                expected = torch.as_tensor(absent.media[key] if blank else kept[key])
                assert torch.equal(torch.as_tensor(value), expected.to(torch.as_tensor(value).dtype)), key
        plain = processor.encode_text(record.task, record.text, record.history, record.candidates, record.target)
        assert (len(sample["input_ids"]) < len(plain.input_ids)) == ("text" in dropped and bool(record.text))
    assert seen == {"face", "voice", "text"}
    # Live and cached training with dropout end equal, and differ from training without it.
    live = write_config(tmp_path / "live.yaml", corpus, init_model, [phase], save_every=100)
    cached = write_config(tmp_path / "cached.yaml", corpus, init_model, [phase], save_every=100)
    plain = write_config(tmp_path / "plain.yaml", corpus, init_model, [{**phase, "modality_dropout": None}],
                         save_every=100)
    for path in (cached, plain):
        data = yaml.safe_load(path.read_text())
        data["data"]["features"] = str(tmp_path / "features")
        path.write_text(yaml.safe_dump(data))
    a, b, c = (load_file(Trainer(load_train_config(p), tmp_path / p.stem, progress=False).train() / "model.safetensors")
               for p in (live, cached, plain))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    assert any(not torch.equal(a[k], c[k]) for k in a)
