"""`nanoemox demo` end to end on a very small corpus and very short phases: files and report keys."""

from __future__ import annotations

import json

import torch
import yaml

from nanoemox.demo.pipeline import DemoOptions, packaged_config, run_demo
from nanoemox.demo.pretrain import PretrainConfig
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
        pretrain=PretrainConfig(vision_epochs=1, speech_epochs=2, lm_steps=4, batch_size=8, lm_sentences=50,
                                lm_feelings=50, lm_instructions=50, lm_copies=50, lm_framed=50),
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
    assert {"synthaffect", "vision", "speech", "language", "features"} <= set(stages)
    # The exported model is self-contained: it loads on its own.
    exported = NanoEmoX.from_pretrained(out / "model")
    # The stand-ins pre-train scene, speech and language; the face encoder stays random, and says so.
    assert exported.config.random_backbones == ["face"]
    assert (out / "model" / "answer_budgets.json").is_file()
    assert (out / "model" / "language").is_dir()


def _synth_records(n: int = 40):
    """SynthAffect records of all six tasks, planned but not rendered (no media needed)."""
    from nanoemox.data.synth.plan import make_plans
    from nanoemox.data.synth.records import clip_records

    return [r for plan in make_plans(n, seed=3) for r in clip_records(plan)]


def test_language_stand_in_never_sees_the_tasks(tiny_config, tiny_tokenizer):
    """The language stand-in reads subtitles, dialogue lines, feelings and generic instructions:
    never a task instruction, a task identifier, an answer format, a long answer or a dev/test text."""
    import random

    from nanoemox.demo.language import framed_samples, language_corpus, language_texts
    from nanoemox.processor import NanoEmoXProcessor
    from nanoemox.tasks import TASKS, get_task

    records = _synth_records()
    processor = NanoEmoXProcessor.from_config(tiny_config, tiny_tokenizer)
    corpus = language_corpus(tiny_tokenizer, language_texts(records, seed=0, feelings=400, instructions=400))
    corpus["framed"] = framed_samples(processor, records, random.Random(0), 400)
    assert {k: len(v) > 0 for k, v in corpus.items()} == {"corpus": True, "feelings": True, "instructions": True,
                                                          "framed": True}
    # Framed requests sit in the whole prompt framing: every placeholder, then the words of a training clip.
    ids, labels = corpus["framed"][0]
    assert sum(int(t) in set(processor.placeholder_ids.values()) for t in ids) == sum(processor.token_counts.values())
    texts = [tiny_tokenizer.decode(ids) for kind in corpus.values() for ids, _ in kind]
    joined = "\n".join(texts)
    for name, task in TASKS.items():
        if task.identifier:
            assert task.identifier not in joined, task.identifier
        for template in task.templates + task.candidate_templates:
            fragment = template.split("{")[0].strip()[:40]
            assert len(fragment) < 12 or fragment not in joined, (name, fragment)
    assert "<think>" not in joined and "emotion of the speaker" not in joined
    long_answers = {get_task(r.task).format_target(r.target) for r in records if r.task in ("eri", "erg", "ovmer")}
    assert not [a for a in long_answers if a in joined]
    train_texts = {r.text for r in records if r.split == "train" and r.text}
    train_joined = "\n".join(train_texts)
    held_out = {r.text for r in records if r.split != "train" and r.text if r.text not in train_joined}
    assert held_out and not [t for t in held_out if t in joined]
    # Generic turns: the answer is learned, the request is not; corpus texts are read whole.
    ids, labels = corpus["instructions"][0]
    assert (labels == -100).sum() > 0 and (labels != -100).sum() > 0
    ids, labels = corpus["corpus"][0]
    assert bool((labels == ids).all())


def test_demo_tokenizer_fits_only_what_the_stand_in_reads(tiny_config):
    """The demo's tokenizer is fitted to the stand-in's texts alone (no bundled task text), and with
    copying the stand-in reads every token of the vocabulary: nothing P2E trains on is unread."""
    from nanoemox.demo.language import copy_samples, flat_texts, language_corpus, language_texts, token_coverage
    from nanoemox.demo.pretrain import _task_tokens
    from nanoemox.processor import NanoEmoXProcessor
    from nanoemox.tokenizer import build_tiny_tokenizer

    records = _synth_records()
    texts = language_texts(records, seed=0, feelings=300, instructions=300)
    tokenizer = build_tiny_tokenizer(tiny_config, flat_texts(texts), bundled=False)
    bundled = build_tiny_tokenizer(tiny_config, flat_texts(texts))
    # The bundled text carries the task instructions; without it "[Recognition]" is not one merged piece.
    assert len(tokenizer("[Recognition]")["input_ids"]) > len(bundled("[Recognition]")["input_ids"])
    processor = NanoEmoXProcessor.from_config(tiny_config, tokenizer)
    task = [_task_tokens(processor, r) for r in records if r.split == "train" and r.target is not None]
    without = token_coverage(language_corpus(tokenizer, texts), task)
    with_copies = token_coverage(language_corpus(tokenizer, texts, copies=400), task)
    assert without < 1.0 and with_copies == 1.0
    special = set(tokenizer.all_special_ids)
    read = {int(t) for ids, _ in copy_samples(tokenizer, __import__("random").Random(0), 400) for t in ids}
    assert {i for i in range(len(tokenizer)) if i not in special} <= read


def test_language_stand_in_feelings_use_every_emotion():
    import random

    from nanoemox.data.synth import EMOTIONS
    from nanoemox.data.synth.vocab import ADJECTIVE
    from nanoemox.demo.language import feeling_sentences

    sentences = " ".join(feeling_sentences(random.Random(1), 500)).lower()
    assert all(ADJECTIVE[e] in sentences for e in EMOTIONS if e != "neutral")


def _fingerprint(out) -> tuple[dict, dict]:
    """SHA-256 of every .safetensors file a demo wrote, and its report without times and paths."""
    import hashlib

    hashes = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(out.rglob("*.safetensors"))}
    report = json.loads((out / "report.json").read_text())
    for key in ("minutes", "stages_seconds", "setup"):
        report.pop(key)
    report["pretraining"].pop("seconds")
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
