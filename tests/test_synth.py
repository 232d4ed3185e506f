"""SynthAffect: manifests, determinism, media decoding and where each clip's emotion lives."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from nanoemox.data.manifest import SPLITS, load_manifest
from nanoemox.data.synth import (
    EMOTIONS, INTENTS, MediaConfig, VALENCE, generate, intent_for, make_plans, ovmer_words, valence,
)
from nanoemox.data.synth import face, text as wording, voice
from nanoemox.data.synth.generate import clip_prosody, face_peak
from nanoemox.tasks import TASK_NAMES

N, SEED = 24, 7
MEDIA = MediaConfig(size=96, fps=8, duration=3.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    summary = generate(out, N, SEED, media=MEDIA, workers=1)
    return out, summary, load_manifest(out / "manifest.jsonl")


def _decode(path):
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate, channels = stream.rate, stream.codec_context.channels
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    return frames, audio, rate, channels


def _by_clip(records):
    clips = {}
    for r in records:
        clips.setdefault(r.extra["clip_id"], {})[r.task] = r
    return clips


def test_manifests_validate_and_cover_every_task(corpus):
    out, summary, records = corpus
    assert {r.task for r in records} == set(TASK_NAMES)
    assert len(records) == N * len(TASK_NAMES) == summary["counts"]["records"]
    split_ids = []
    for split in SPLITS:
        part = load_manifest(out / f"{split}.jsonl")
        assert part and all(r.split == split for r in part)
        split_ids += [r.id for r in part]
    assert sorted(split_ids) == sorted(r.id for r in records)
    for r in records:
        assert not r.media["video"].startswith("/") and (out / r.media["video"]).is_file()
    on_disk = json.loads((out / "synthaffect.json").read_text())
    assert on_disk["seed"] == SEED and on_disk["n"] == N
    assert sum(on_disk["counts"]["emotion"].values()) == N


def test_targets_follow_the_vocabulary(corpus):
    _, _, records = corpus
    for r in records:
        e, intensity = r.extra["emotion"], r.extra["intensity"]
        if r.task == "msa":
            assert r.target == valence(e, intensity) and np.sign(r.target) == np.sign(VALENCE[e])
        elif r.task == "mer":
            assert r.target == e and r.candidates == list(EMOTIONS)
        elif r.task == "ovmer":
            assert r.target == ovmer_words(e, intensity) and 1 <= len(r.target) <= 3
        elif r.task == "mir":
            assert r.target == intent_for(r.extra["act"], e) and r.candidates == list(INTENTS)
        elif r.task == "erg":
            assert r.target["speaker_emotion"] == e
            assert r.history and r.history[-1]["role"] == "listener"
            assert any(t["text"] == wording.EVENTS_BY_KEY[r.extra["event"]].opener for t in r.history)


def test_intent_needs_valence_for_remarks():
    assert intent_for("remark", "happy") == "praise"
    assert intent_for("remark", "anger") == "complain"
    assert intent_for("remark", "neutral") == "inform"
    assert intent_for("thank", "anger") == "thank"
    with pytest.raises(ValueError, match="speech act"):
        intent_for("shout", "anger")


def test_splits_are_disjoint_by_clip(corpus):
    _, _, records = corpus
    split_of = {}
    for r in records:
        assert split_of.setdefault(r.extra["clip_id"], r.split) == r.split
        assert r.media["video"] == f"media/{r.extra['clip_id']}.mp4"
    assert set(split_of.values()) == set(SPLITS)


def test_same_seed_same_corpus_whatever_the_workers(corpus, tmp_path):
    out, _, _ = corpus
    again = tmp_path / "b"
    generate(again, N, SEED, media=MEDIA, workers=2)
    for name in ("manifest.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "synthaffect.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes()
    for clip in ("synth_00000", "synth_00013"):
        f1, a1, _, _ = _decode(out / "media" / f"{clip}.mp4")
        f2, a2, _, _ = _decode(again / "media" / f"{clip}.mp4")
        assert np.array_equal(f1, f2) and np.array_equal(a1, a2)
    other = tmp_path / "c"
    generate(other, N, SEED + 1, media=MEDIA, workers=1)
    assert (out / "manifest.jsonl").read_bytes() != (other / "manifest.jsonl").read_bytes()


def test_media_decode_to_expected_shape_and_length(corpus):
    out, _, records = corpus
    for clip in sorted({r.media["video"] for r in records})[:6]:
        frames, audio, rate, channels = _decode(out / clip)
        assert frames.shape == (MEDIA.fps * MEDIA.duration, MEDIA.size, MEDIA.size, 3)
        assert rate == 16000 and channels == 1
        # AAC pads to whole 1024-sample frames
        assert abs(audio.shape[1] / rate - MEDIA.duration) < 0.1
        assert np.abs(audio).max() > 0.05


def test_non_cue_modalities_stay_neutral(corpus):
    _, _, records = corpus
    clips = _by_clip(records)
    remarks = {s for e in EMOTIONS for v in wording.EMOTION_REMARKS[e].values() for s in v if s}
    for tasks in clips.values():
        r = tasks["mer"]
        plan = r.extra
        cues = plan["cue_modalities"]
        for m in ("face", "voice", "text"):
            expected = plan["emotion"] if m in cues else ("happy" if m == "face" and plan["conflict"] else "neutral")
            assert plan["shown"][m] == expected
        has_remark = any(s in r.text for s in remarks)
        assert has_remark == (plan["shown"]["text"] not in ("neutral",))
        reason = tasks["eri"].target
        if "face" in cues:
            assert wording.FACE_CUES[plan["emotion"]][plan["intensity"]] in reason
        else:
            assert not any(c in reason for e in EMOTIONS for c in wording.FACE_CUES[e].values())
    groups = {t["mer"].extra["cue_group"] for t in clips.values()}
    assert {"face", "voice", "text"} <= groups


def test_voice_pitch_moves_only_in_voice_cue_clips(corpus):
    """Measured pitch / speaker pitch follows the voice's emotion and is ~1 when the voice is neutral."""
    out, _, records = corpus
    moved = 0
    for tasks in _by_clip(records).values():
        r = tasks["mer"]
        _, audio, rate, _ = _decode(out / r.media["video"])
        ratio = voice.estimate_pitch(audio[0], rate) / r.extra["speaker_f0"]
        shown = r.extra["shown"]["voice"]
        expected = voice.NEUTRAL.toward(voice.PROFILES[shown], 0.6 if r.extra["intensity"] == "mild" else 1.0).pitch
        assert ratio == pytest.approx(expected, rel=0.08), (r.id, shown)
        if shown == "neutral":
            assert 0.9 < ratio < 1.1
        elif abs(expected - 1) > 0.2:
            moved += 1
    assert moved >= 2  # the corpus really has voice-cue clips whose pitch departs from neutral


def test_voice_profiles_differ_between_emotions():
    rng = np.random.default_rng(0)
    happy = voice.synthesize(2.0, 130.0, voice.PROFILES["happy"], rng)
    sad = voice.synthesize(2.0, 130.0, voice.PROFILES["sad"], rng)
    assert voice.estimate_pitch(happy) > 1.5 * voice.estimate_pitch(sad)
    assert np.sqrt(np.mean(happy ** 2)) > 2 * np.sqrt(np.mean(sad ** 2))


def test_face_expressions_are_visually_distinct():
    look = face.sample_look(np.random.default_rng(1), 96)
    imgs = {e: face.render_frame(look, face.PEAKS[e], 0.5).astype(np.float32) for e in EMOTIONS}
    for a in EMOTIONS:
        for b in EMOTIONS:
            if a < b:
                assert np.abs(imgs[a] - imgs[b]).mean() > 1.0, (a, b)


def test_plans_route_face_and_voice_by_cue():
    plans = make_plans(40, 3)
    for p in plans:
        if "face" not in p.cues and not p.conflict:
            assert face_peak(p) == face.NEUTRAL
        if "voice" not in p.cues:
            assert clip_prosody(p) == voice.NEUTRAL
    single = [p.cue_group for p in plans if p.cue_group in ("face", "voice", "text")]
    assert max(single.count(g) for g in ("face", "voice", "text")) - min(
        single.count(g) for g in ("face", "voice", "text")) <= 1


def test_cli_writes_corpus_and_refuses_to_overwrite(tmp_path):
    from nanoemox.cli import main

    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--n", "3", "--size", "64", "--duration", "2", "--workers", "1"]
    assert main(args) == 0
    assert len(load_manifest(out / "manifest.jsonl")) == 3 * len(TASK_NAMES)
    assert main(args) == 2
    assert main(args + ["--overwrite", "--tasks", "mer,mir"]) == 0
    assert {r.task for r in load_manifest(out / "manifest.jsonl")} == {"mer", "mir"}
