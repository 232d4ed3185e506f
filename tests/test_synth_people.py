"""Two-person SynthAffect clips: frame layout, per-person ground truth, a mouth that follows the voice."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from nanoemox.data.manifest import SPLITS, load_manifest
from nanoemox.data.synth import EMOTIONS, MODALITIES, MediaConfig, generate, make_plans, ovmer_words, valence
from nanoemox.data.synth import people
from nanoemox.media.audio import load_waveform
from nanoemox.media.video import read_frames

N, SEED = 6, 11
MEDIA = MediaConfig(size=96, fps=8, duration=2.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("people") / "a"
    summary = generate(out, N, SEED, media=MEDIA, workers=1, people=2)
    return out, summary, load_manifest(out / "manifest.jsonl")


def _clips(records):
    clips = {}
    for r in records:
        clips.setdefault(r.extra["clip_id"], []).append(r)
    return clips


def _plans():
    return {p.clip_id: p for p in make_plans(N, SEED, cue_groups=people.SPEAKER_CUE_GROUPS)}


def _decode(out, record):
    path = out / record.media["video"]
    frames = np.stack(read_frames(path, MEDIA.n_frames).frames).astype(np.float32)  # [F, S, 2S, 3]
    wave, _, _ = load_waveform(path, MEDIA.sample_rate)
    return frames, wave


def _opening(frames, box):
    """Per frame, the share of the mouth area (lower middle of the head box) dark enough to be the
    open mouth's inside (70, 10, 20) rather than lips, skin or teeth: [F]. A share rather than a
    pixel difference, so the slow drift of the face (a one-pixel jump of every line now and then)
    barely moves it."""
    x, y, w, h = box
    area = frames[:, y + int(0.55 * h):y + int(0.95 * h), x + int(0.15 * w):x + int(0.85 * w)]
    return (area.mean(axis=3) < 60).mean(axis=(1, 2))


def _frame_rms(wave):
    """Loudness of the sound heard while each frame shows: [F]."""
    step = MEDIA.sample_rate // MEDIA.fps
    return np.array([np.sqrt(np.mean(wave[i * step:(i + 1) * step] ** 2)) for i in range(MEDIA.n_frames)])


def test_frames_are_two_faces_wide(corpus):
    out, summary, records = corpus
    frames, wave = _decode(out, records[0])
    assert frames.shape == (MEDIA.n_frames, MEDIA.size, 2 * MEDIA.size, 3)
    assert abs(len(wave) - MEDIA.duration * MEDIA.sample_rate) <= 0.05 * MEDIA.sample_rate
    assert summary["people"] == 2
    assert json.loads((out / "synthaffect.json").read_text())["people"] == 2


def test_records_describe_both_people(corpus):
    out, summary, records = corpus
    plans = _plans()
    clips = _clips(records)
    assert len(clips) == N and {r.task for r in records} == set(people.PEOPLE_TASKS)
    for split in SPLITS:
        assert load_manifest(out / f"{split}.jsonl"), f"{split} split is empty"
    sides = set()
    for clip_id, recs in clips.items():
        plan = plans[clip_id]
        extra = recs[0].extra
        assert all(r.extra == extra for r in recs)
        assert extra["people_count"] == 2 and [p["person"] for p in extra["people"]] == [0, 1]
        assert [p["side"] for p in extra["people"]] == ["left", "right"]
        assert [p["speaking"] for p in extra["people"]] == [i == extra["speaker"] for i in range(2)]
        speaker, listener = extra["people"][extra["speaker"]], extra["people"][1 - extra["speaker"]]
        sides.add(speaker["side"])
        # the speaker is planned like a one-person single-cue clip; the usual fields describe it
        assert speaker["cue_group"] == plan.cue_group == extra["cue_group"] and speaker["cue_group"] in MODALITIES
        assert speaker["emotion"] == plan.emotion == extra["emotion"] and not extra["conflict"]
        assert (speaker["face_emotion"], speaker["voice_emotion"], speaker["words_emotion"]) == (
            extra["shown"]["face"], extra["shown"]["voice"], extra["shown"]["text"])
        assert extra["shown"][speaker["cue_group"]] == plan.emotion
        assert listener["cue_group"] == "face" and listener["emotion"] == listener["face_emotion"]
        assert listener["emotion"] in EMOTIONS and listener["emotion"] != speaker["emotion"]
        assert listener["voice_emotion"] is None and listener["words_emotion"] is None
        for i, person in enumerate(extra["people"]):
            x, y, w, h = person["box"]
            assert i * MEDIA.size <= x and x + w <= (i + 1) * MEDIA.size and 0 <= y and y + h <= MEDIA.size
            assert w > 0.4 * MEDIA.size and h > 0.5 * MEDIA.size
        for r in recs:  # clip-level targets are the speaker's
            expected = {"mer": plan.emotion, "msa": valence(plan.emotion, plan.intensity),
                        "ovmer": ovmer_words(plan.emotion, plan.intensity)}[r.task]
            assert r.target == expected
    assert len(sides) == 2  # both sides speak somewhere in the corpus


def _skin_run(row, start, step):
    """Last x, walking from `start` by `step`, whose pixel still has the colour of row[start]."""
    x = start
    while 0 <= x + step < len(row) and np.abs(row[x + step] - row[start]).max() < 30:
        x += step
    return x


def test_box_frames_the_head(corpus):
    """Across the box's middle row the skin runs from the box's left edge to its right edge."""
    out, _, records = corpus
    for recs in _clips(records).values():
        frames, _ = _decode(out, recs[0])
        mid = frames[MEDIA.n_frames // 2]
        for person in recs[0].extra["people"]:
            x, y, w, h = person["box"]
            row = mid[y + h // 2]
            assert abs(_skin_run(row, x + w // 8, -1) - x) <= 3
            assert abs(_skin_run(row, x + w - 1 - w // 8, 1) - (x + w - 1)) <= 3


def test_speaker_mouth_follows_the_voice(corpus):
    out, _, records = corpus
    speaker_change, listener_change, sound_change, agreement = [], [], [], []
    # frames while the expression holds its peak: after the onset, before the release
    hold = slice(int(0.25 * MEDIA.n_frames), int(0.8 * MEDIA.n_frames))
    for recs in _clips(records).values():
        extra = recs[0].extra
        frames, wave = _decode(out, recs[0])
        rms = _frame_rms(wave)[hold]
        for person in extra["people"]:
            opening = _opening(frames, person["box"])[hold]
            if person["speaking"]:
                speaker_change.append(np.abs(np.diff(opening)))
                sound_change.append(np.abs(np.diff(rms)))
                agreement.append(np.corrcoef(opening, rms)[0, 1])
            else:
                listener_change.append(np.abs(np.diff(opening)))
    speaker_change, listener_change = np.concatenate(speaker_change), np.concatenate(listener_change)
    assert speaker_change.mean() > 3 * listener_change.mean()
    assert np.corrcoef(speaker_change, np.concatenate(sound_change))[0, 1] > 0.5
    assert np.mean(agreement) > 0.5  # the mouth is open most where the voice is loudest


def test_listener_half_is_drawn_without_the_voice(corpus):
    out, _, records = corpus
    plans = _plans()
    for clip_id, recs in _clips(records).items():
        speaker = recs[0].extra["speaker"]
        _, moving, _ = people.render_frames(plans[clip_id], MEDIA)
        _, still, _ = people.render_frames(plans[clip_id], MEDIA, mouth_gain=0.0)
        halves = [slice(0, MEDIA.size), slice(MEDIA.size, 2 * MEDIA.size)]
        listener, talker = halves[1 - speaker], halves[speaker]
        assert np.array_equal(moving[:, :, listener], still[:, :, listener])
        assert not np.array_equal(moving[:, :, talker], still[:, :, talker])
        decoded, _ = _decode(out, recs[0])
        # the file's listener half is that rendering, up to compression (the static noise of the
        # background costs a few levels), its mouth included
        assert np.abs(decoded[:, :, listener] - still[:, :, listener]).mean() < 6.0
        box = recs[0].extra["people"][1 - speaker]["box"]
        assert np.abs(_opening(decoded, box) - _opening(still.astype(np.float32), box)).max() < 0.02


def test_mouth_opening_is_zero_in_silence_and_peaks_at_the_gain():
    rate, fps = MEDIA.sample_rate, 8
    assert not people.mouth_opening(np.zeros(rate, dtype=np.float32), fps, fps, rate).any()
    tone = np.sin(2 * np.pi * 200.0 * np.arange(rate) / rate)  # whole periods in every 1/8 s
    loudness = np.repeat([0.0, 0.0, 0.15, 0.15, 0.3, 0.3, 0.3, 0.3], rate // fps)
    opening = people.mouth_opening((loudness * tone).astype(np.float32), fps, fps, rate)
    assert not opening[:2].any() and np.allclose(opening[4:], people.MOUTH_GAIN)
    quiet = people.MOUTH_GAIN * (0.15 / np.sqrt(2) - people.SILENT_RMS) / (0.3 / np.sqrt(2) - people.SILENT_RMS)
    assert np.allclose(opening[2:4], quiet, rtol=1e-3)


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_corpus(corpus, tmp_path):
    out, _, _ = corpus
    generate(tmp_path / "b", N, SEED, media=MEDIA, workers=1, people=2)
    assert _hashes(out) == _hashes(tmp_path / "b")
    generate(tmp_path / "c", N, SEED + 1, media=MEDIA, workers=1, people=2)
    assert (tmp_path / "b" / "manifest.jsonl").read_bytes() != (tmp_path / "c" / "manifest.jsonl").read_bytes()


def test_cli_two_people_and_refusals(tmp_path, capsys):
    from nanoemox.cli import main

    out = tmp_path / "cli"
    args = ["synth", "--people", "2", "--out", str(out), "--n", "3", "--size", "64", "--duration", "1",
            "--workers", "1"]
    assert main(args) == 0
    records = load_manifest(out / "manifest.jsonl")
    assert len(records) == 3 * len(people.PEOPLE_TASKS) and all(r.extra["people_count"] == 2 for r in records)
    assert json.loads((out / "synthaffect.json").read_text())["people"] == 2
    capsys.readouterr()
    assert main(args + ["--overwrite", "--tasks", "eri"]) == 2
    assert "eri" in capsys.readouterr().err
    assert main(["synth", "--people", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--people must be 1 or 2" in capsys.readouterr().err
    assert main(["synth", "--people", "2", "--compose", str(out), "--out", str(tmp_path / "long.mp4")]) == 2
    assert "--people 2 is not supported" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "long.mp4").exists()
