"""`nanoemox demo` end to end on a very small corpus and very short phases: files and report keys."""

from __future__ import annotations

import json

import yaml

from nanoemox.demo.pipeline import DemoOptions, run_demo
from nanoemox.demo.pretrain import PretrainConfig
from nanoemox.model import NanoEmoX


def _short(src, dst, steps):
    data = yaml.safe_load(src.read_text())
    for phase in data["phases"]:
        phase.update(steps=steps, micro_batch=2, warmup_steps=0)
        phase.pop("where", None)  # a 16-clip corpus may lack a cue group in training
    dst.write_text(yaml.safe_dump(data))
    return dst


def test_demo_runs_end_to_end(tmp_path):
    defaults = DemoOptions(out=tmp_path / "demo")
    opts = DemoOptions(
        out=tmp_path / "demo", clips=16, workers=1, batch_size=8,
        p2e_config=_short(defaults.p2e_config, tmp_path / "p2e.yaml", 2),
        joint_config=_short(defaults.joint_config, tmp_path / "joint.yaml", 3),
        pretrain=PretrainConfig(vision_epochs=1, speech_epochs=1, lm_reading_steps=4, lm_steps=4, batch_size=8),
    )
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
    assert saved == json.loads(json.dumps(report))
    assert {"synthaffect", "vision", "speech", "language", "features"} <= set(stages)
    # The exported model is self-contained: it loads on its own.
    assert isinstance(NanoEmoX.from_pretrained(out / "model"), NanoEmoX)
    assert (out / "model" / "language").is_dir()
