"""`nanoemox demo` end to end on a very small corpus and very short phases: files and report keys."""

from __future__ import annotations

import json
from collections import Counter

import torch
import yaml
from conftest import synth_records

from nanoemox.demo.pipeline import DemoOptions, packaged_config, run_demo
from nanoemox.model import NanoEmoX


def _short(src, dst, steps):
    data = yaml.safe_load(src.read_text())
    for phase in data["phases"]:
        phase.update(steps=steps, micro_batch=2, warmup_steps=0)
        phase.pop("where", None)  # a 16-clip corpus may lack a cue group in training
    dst.write_text(yaml.safe_dump(data))
    return dst


def _short_options(folder, joint: bool = True) -> DemoOptions:
    """A demo of 16 clips and a few steps per stage (joint training included when asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    defaults = DemoOptions(out=folder / "demo")
    return DemoOptions(
        out=folder / "demo", clips=16, workers=1, batch_size=8,
        p2e_config=_short(defaults.p2e_config, folder / "p2e.yaml", 2),
        joint_config=_short(packaged_config("demo_jot_tiny.yaml"), folder / "joint.yaml", 3) if joint else None,
    )


def test_demo_runs_end_to_end(tmp_path):
    opts = _short_options(tmp_path)
    stages = []
    report = run_demo(opts, progress=lambda stage, done, total: stages.append(stage))
    out = opts.out
    for name in ("report.md", "report.json", "ablation.png", "p2e_vs_joint.png", "model/config.json",
                 "eval_p2e/results.json", "p2e/loss.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "report.json").read_text())
    for key in ("mer_accuracy", "msa_waf", "mir_accuracy", "ovmer_fscore", "erg_emotion_accuracy", "minutes",
                "modality_ablation", "p2e_vs_joint"):
        assert key in saved, key
    for key in ("mer_accuracy", "msa_waf", "mir_accuracy", "ovmer_fscore", "erg_emotion_accuracy"):
        assert 0.0 <= saved[key] <= 1.0
    assert set(saved["modality_ablation"]["accuracy_by_cue"]) == {"none", "face", "voice", "text"}
    assert saved["p2e_vs_joint"]["mer_accuracy"].keys() == {"p2e", "joint"}
    # The same figures on dev, where the demo's settings are chosen; evaluated apart from test.
    for key in ("mer_accuracy", "msa_waf", "mir_accuracy", "ovmer_fscore", "erg_emotion_accuracy"):
        assert 0.0 <= saved["dev"][key] <= 1.0
    assert saved["dev"]["p2e_vs_joint"]["mer_accuracy"].keys() == {"p2e", "joint"}
    assert (out / "eval_p2e_dev" / "results.json").is_file() and (out / "eval_joint_dev" / "results.json").is_file()
    dev_ids = {json.loads(line)["id"] for line in (out / "eval_p2e_dev" / "predictions.jsonl").open()}
    test_ids = {json.loads(line)["id"] for line in (out / "eval_p2e" / "predictions.jsonl").open()}
    assert dev_ids and test_ids and not dev_ids & test_ids
    assert saved == json.loads(json.dumps(report))
    assert {"synthaffect", "features"} <= set(stages)
    assert not {"vision", "speech", "language"} & set(stages)  # the shipped stand-ins are loaded, not trained
    # The exported model is self-contained: it loads on its own.
    exported = NanoEmoX.from_pretrained(out / "model")
    # Every backbone is a shipped stand-in (none random), recorded in the report with its manifest's checks.
    assert exported.config.random_backbones == []
    assert saved["standins"]["checks"]["oracle_reading"]["placeholders"]["accuracy"] >= 0.98
    # Diagnostics: intervals around every headline figure, three baselines, probes of every stage.
    for where in (saved, saved["dev"]):
        assert set(where["baselines"]) == {"text_only", "majority", "chance"}
        for key in ("mer_accuracy", "msa_waf", "mir_accuracy", "ovmer_fscore", "erg_emotion_accuracy"):
            low, high = where["intervals"][key]
            assert 0.0 <= low <= where[key] <= high <= 1.0
            assert all(0.0 <= b[key] <= 1.0 for b in where["baselines"].values())
    probes = saved["diagnostics"]["probes"]
    assert {"encoder/scene", "encoder/speech", "encoder/face", "tokens/speech", "tokens/fusion"} <= set(probes)
    assert all(0.0 <= probes[s]["test"] <= 1.0 for s in probes)
    assert set(saved["diagnostics"]["stand_in_heads_dev"]) == {"vision", "speech", "face"}
    # The training split beside dev and test (fit against generalisation), and the intact <think> share.
    train = saved["train"]
    assert (out / "eval_p2e_train" / "results.json").is_file()
    train_ids = {json.loads(line)["id"] for line in (out / "eval_p2e_train" / "predictions.jsonl").open()}
    assert train_ids and not train_ids & (dev_ids | test_ids)
    assert set(train["baselines"]) == {"majority", "chance"}
    for where in (saved, saved["dev"], train):
        for key in ("mer_accuracy", "msa_waf", "mir_accuracy", "ovmer_fscore", "erg_emotion_accuracy",
                    "erg_think_intact"):
            low, high = where["intervals"][key]
            assert 0.0 <= low <= where[key] <= high <= 1.0, key
        assert set(where["per_cue_accuracy"]) <= {"face", "voice", "text", "face+voice", "face+text",
                                                  "voice+text", "face+voice+text"}
    assert "P2E evaluation (train)" in saved["stages_seconds"]
    assert {"erg_think_intact", "train_mer_accuracy", "face_cue_mer_accuracy"} <= set(saved["targets"])
    assert saved["targets"]["train_mer_accuracy"]["value"] == train["mer_accuracy"]
    assert isinstance(saved["learning_problems"], list)
    assert "## Fit against generalisation" in (out / "report.md").read_text()
    assert (out / "model" / "answer_budgets.json").is_file()
    assert (out / "model" / "language").is_dir()


def test_bootstrap_and_baselines_score_with_the_benchmark():
    """Per-clip scoring for the intervals gives the benchmark's own figure; perfect answers have a point
    interval; the majority baseline answers the training split's commonest label."""
    from nanoemox.demo import diagnostics
    from nanoemox.eval.harness import score_run
    from nanoemox.tasks import get_task

    records = synth_records(60)
    test = [r for r in records if r.split == "test" and r.task != "eri"]
    perfect = {r.id: get_task(r.task).format_target(r.target) for r in test}
    perfect.update({r.id: ("positive" if r.target > 0 else "negative" if r.target < 0 else "neutral")
                    for r in test if r.task == "msa"})
    scored = diagnostics.score_texts(test, perfect, resamples=50)
    assert all(v["value"] == v["low"] == v["high"] == 1.0 for v in scored.values()), scored
    answers = diagnostics.baseline_answers(test, [r for r in records if r.split == "train"])
    majority = diagnostics.score_texts(test, answers["majority"], resamples=50)
    mer = [r for r in test if r.task == "mer"]
    train_mer = Counter(r.target for r in records if r.split == "train" and r.task == "mer")
    top = max(train_mer, key=lambda k: (train_mer[k], k))
    assert majority["mer_accuracy"]["value"] == sum(r.target == top for r in mer) / len(mer)
    benchmark = score_run("synthaffect", answers["chance"], test)
    ovmer = next(c for c in benchmark["columns"] if c["name"] == "OVMER")["value"] / 100
    assert abs(diagnostics.score_texts(test, answers["chance"], resamples=10)["ovmer_fscore"]["value"] - ovmer) < 1e-9


def _fingerprint(out) -> tuple[dict, dict]:
    """SHA-256 of every .safetensors file a demo wrote, and its report without times and paths."""
    import hashlib

    hashes = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(out.rglob("*.safetensors"))}
    report = json.loads((out / "report.json").read_text())
    for key in ("minutes", "stages_seconds", "setup"):
        report.pop(key)
    return hashes, report


def test_two_demo_runs_are_bit_identical(tmp_path):
    """Every generator is seeded (numpy's global one too, which draws HuBERT's SpecAugment masks while the
    speech stand-in trains) and the threads are pinned: a second run in the same process, after other
    draws, writes the same weights, byte for byte, and the same figures."""
    import numpy as np

    first = _short_options(tmp_path / "a", joint=False)
    run_demo(first)
    np.random.rand(7)  # the global generators move on between the runs, as in any longer process
    torch.rand(3)
    second = _short_options(tmp_path / "b", joint=False)
    run_demo(second)
    hashes_a, report_a = _fingerprint(first.out)
    hashes_b, report_b = _fingerprint(second.out)
    assert len(hashes_a) >= 10 and hashes_a.keys() == hashes_b.keys()
    assert {k for k in hashes_a if hashes_a[k] != hashes_b[k]} == set()
    assert report_a == report_b
    assert json.loads((first.out / "report.json").read_text())["setup"]["threads"] == first.threads
