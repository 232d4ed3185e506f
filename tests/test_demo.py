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


def _record(i, task, text, shown_text, target, split="train"):
    from nanoemox.data.manifest import Record

    return Record(id=f"c{i}_{task}", dataset="SynthAffect", split=split, task=task,
                  media={"video": f"media/c{i}.mp4"}, text=text, target=target,
                  candidates=["anger", "happy", "neutral"] if task == "mer" else None,
                  extra={"shown": {"face": "neutral", "voice": "neutral", "text": shown_text}})


def test_language_reading_samples(tiny_config, tiny_tokenizer):
    """Stage 1 of the language stand-in: one subtitle -> shown-emotion sample per training clip,
    plus instruction samples only where the words carry the emotion; never media, never test."""
    import random

    from nanoemox.demo.pretrain import _reading_samples
    from nanoemox.processor import NanoEmoXProcessor

    processor = NanoEmoXProcessor.from_config(tiny_config, tiny_tokenizer)
    records = [
        _record(0, "mer", "the exam went fine. I am furious", "anger", "anger"),
        _record(0, "msa", "the exam went fine. I am furious", "anger", -0.9),
        _record(1, "mer", "the exam went fine", "neutral", "happy"),  # the face carries it
        _record(1, "msa", "the exam went fine", "neutral", 0.9),
        _record(2, "mer", "what a day. I am glad", "happy", "happy", split="test"),
    ]
    samples = _reading_samples(processor, records, random.Random(0))
    decoded = [(tiny_tokenizer.decode(ids[labels == -100]), tiny_tokenizer.decode(ids[labels != -100])) for ids, labels in samples]
    placeholders = set(processor.placeholder_ids.values())
    assert all(not placeholders & set(ids.tolist()) for ids, _ in samples)
    eos = tiny_tokenizer.eos_token
    # Clip 0: its subtitle alone and with the MER and MSA instructions; clip 1: only the
    # subtitle, labelled with what its words show (neutral), not with the clip's emotion.
    assert len(samples) == 4
    assert [a.replace(eos, "").strip() for _, a in decoded] == ["anger", "anger", "negative", "neutral"]
    assert "furious" in decoded[0][0] and "[" not in decoded[0][0]  # no instruction in the plain sample
    assert all("glad" not in prompt for prompt, _ in decoded)  # no test record
