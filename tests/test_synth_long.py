"""Long SynthAffect videos: the mp4 plays the planned clips back to back, and its side files say so."""

from __future__ import annotations

import collections
import csv
import shutil

import av
import numpy as np
import pysubs2
import pytest

from nanoemox.data.manifest import Record, load_manifest, write_manifest
from nanoemox.data.synth import MediaConfig, compose_long_video, generate
from nanoemox.data.synth.long import CLIP_COLUMNS, SEGMENT_COLUMNS, plan_long_video, side_files
from nanoemox.data.synth.mux import write_clip

MEDIA = MediaConfig(size=64, fps=8, duration=2.0)
SPLIT_FRACTIONS = (0.5, 0.1, 0.4)  # 16 of 40 clips in test: six emotions with two clips or more


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_long") / "corpus"
    generate(out, 40, 0, media=MEDIA, split_fractions=SPLIT_FRACTIONS, workers=1)
    return out


@pytest.fixture(scope="module")
def mer(corpus):
    """clip id -> MER record of the test split."""
    return {r.extra["clip_id"]: r for r in load_manifest(corpus / "test.jsonl") if r.task == "mer"}


@pytest.fixture(scope="module")
def long_video(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "long.mp4"
    calls = []
    summary = compose_long_video(corpus, out, minutes=0.5, seed=3, progress=calls.append)
    return out, summary, calls


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _decode(path):
    """Frames [F, H, W, 3] uint8 and mono audio [S] float32 of an mp4."""
    frames, audio = [], []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0], c.streams.audio[0]):
            if isinstance(frame, av.VideoFrame):
                frames.append(frame.to_ndarray(format="rgb24"))
            else:
                audio.append(frame.to_ndarray()[0])
    return np.stack(frames), np.concatenate(audio)


def test_video_lengths_and_ground_truth_agree(long_video, mer):
    out, summary, calls = long_video
    clips, segments = _read_csv(side_files(out)["clips"]), _read_csv(side_files(out)["segments"])
    assert list(clips[0]) == list(CLIP_COLUMNS) and list(segments[0]) == list(SEGMENT_COLUMNS)
    assert sum(calls) == len(clips) == summary["clips"] and len(segments) == summary["stretches"]
    lengths = [float(c["end"]) - float(c["start"]) for c in clips]
    total = sum(lengths)
    assert total >= 30.0 and total - lengths[-1] < 30.0  # the fewest whole clips reaching 0.5 minutes
    assert summary["duration"] == pytest.approx(total)
    assert sum(summary["emotion_seconds"].values()) == pytest.approx(total)

    with av.open(str(out)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        assert float(video.duration * video.time_base) == pytest.approx(total, abs=1 / MEDIA.fps)
        assert float(audio.duration * audio.time_base) == pytest.approx(total, abs=0.05)
    frames, wave = _decode(out)
    assert len(frames) == round(total * MEDIA.fps) == sum(round(n * MEDIA.fps) for n in lengths)
    assert len(wave) / MEDIA.sample_rate == pytest.approx(total, abs=0.05)

    # Stretches tile [0, duration], alternate emotions, and hold clips of their emotion only.
    assert float(segments[0]["start"]) == 0.0 and float(segments[-1]["end"]) == pytest.approx(total)
    for a, b in zip(segments, segments[1:]):
        assert a["end"] == b["start"] and a["emotion"] != b["emotion"]
    rows = iter(clips)
    for seg in segments:
        ids = seg["clips"].split()
        assert all(mer[i].target == seg["emotion"] for i in ids)
        placed = [next(rows) for _ in ids]
        assert [c["clip_id"] for c in placed] == ids and all(c["emotion"] == seg["emotion"] for c in placed)
        assert placed[0]["start"] == seg["start"] and placed[-1]["end"] == seg["end"]
        assert all(a["end"] == b["start"] for a, b in zip(placed, placed[1:]))
    assert next(rows, None) is None
    assert all(a["clip_id"] != b["clip_id"] for a, b in zip(clips, clips[1:]))
    for c in clips:
        extra = mer[c["clip_id"]].extra
        assert (c["cue_group"], c["conflict"], c["text"]) == (extra["cue_group"], str(extra["conflict"]).lower(),
                                                               mer[c["clip_id"]].text)


def test_pixels_and_sound_are_the_placed_clips(long_video, corpus, mer):
    out, _, _ = long_video
    frames, wave = _decode(out)
    sources = {}
    rate, fps = MEDIA.sample_rate, MEDIA.fps
    for c in _read_csv(side_files(out)["clips"]):
        clip_id, start, end = c["clip_id"], float(c["start"]), float(c["end"])
        if clip_id not in sources:
            sources[clip_id] = _decode(corpus / mer[clip_id].media["video"])
        own_frames, own_wave = sources[clip_id]
        first = round(start * fps)
        for i in (len(own_frames) // 2 - 1, len(own_frames) // 2):  # the middle of the clip
            diff = np.abs(frames[first + i].astype(np.int16) - own_frames[i].astype(np.int16)).mean()
            assert diff < 8, (clip_id, i, diff)
        # The middle of the clip's sound, away from the AAC frames at its edges.
        a, b = round((start + 0.25) * rate), round((end - 0.25) * rate)
        here, own = wave[a:b], own_wave[a - round(start * rate):b - round(start * rate)]
        rms_here, rms_own = np.sqrt(np.mean(here ** 2)), np.sqrt(np.mean(own ** 2))
        assert rms_here == pytest.approx(rms_own, rel=0.3), clip_id
        assert np.corrcoef(here, own)[0, 1] > 0.8, clip_id  # in step, not merely as loud


def test_subtitles_read_back_at_the_clip_times(long_video, mer):
    out, _, _ = long_video
    clips = _read_csv(side_files(out)["clips"])
    events = pysubs2.load(str(side_files(out)["srt"])).events
    with_text = [c for c in clips if mer[c["clip_id"]].text]
    assert len(events) == len(with_text) > 0
    for event, c in zip(events, with_text):
        assert event.plaintext == mer[c["clip_id"]].text
        assert (event.start, event.end) == (round(float(c["start"]) * 1000), round(float(c["end"]) * 1000))


def _layout(plan):
    return [(s.emotion, [p.clip.clip_id for p in s.clips]) for s in plan.stretches]


def test_the_seed_decides_the_plan(corpus, long_video, mer):
    out, _, _ = long_video
    per_emotion = collections.Counter(r.target for r in mer.values())
    lonely = {e for e, n in per_emotion.items() if n == 1}  # one clip cannot fill a stretch without repeating
    assert lonely and len(per_emotion) - len(lonely) >= 2
    same = plan_long_video(corpus, minutes=0.5, seed=3)
    assert _layout(same) == _layout(plan_long_video(corpus, minutes=0.5, seed=3))
    assert _layout(same) == [(s["emotion"], s["clips"].split()) for s in _read_csv(side_files(out)["segments"])]
    assert _layout(same) != _layout(plan_long_video(corpus, minutes=0.5, seed=4))
    for seed in range(5):  # every stretch within the bounds, but the last one, which may be cut short
        stretches = plan_long_video(corpus, minutes=0.5, seed=seed, stretch_clips=(1, 3)).stretches
        assert all(1 <= len(s.clips) <= 3 for s in stretches)
        assert all(a.emotion != b.emotion for a, b in zip(stretches, stretches[1:]))
        assert not lonely & {s.emotion for s in stretches}


def _small_corpus(root, sizes):
    """A corpus of MER records only: two emotions, one clip per entry of `sizes` (frame sizes) each."""
    records = []
    for i, (emotion, size) in enumerate((e, s) for e in ("happy", "sad") for s in sizes):
        rng = np.random.default_rng(i)
        (root / "media").mkdir(parents=True, exist_ok=True)
        write_clip(root / f"media/c{i}.mp4", rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8), 8,
                   rng.uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
        records.append(Record(id=f"c{i}_mer", dataset="test", split="test", task="mer", target=emotion,
                              media={"video": f"media/c{i}.mp4"}, text=f"clip {i}", extra={"clip_id": f"c{i}"}))
    write_manifest(root / "test.jsonl", records)
    return root


def test_bad_inputs_are_named(tmp_path, corpus):
    out = tmp_path / "x.mp4"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        compose_long_video(tmp_path / "nowhere", out)
    with pytest.raises(FileNotFoundError, match="dev.jsonl"):
        compose_long_video(_small_corpus(tmp_path / "a", [64, 64]), out, split="dev")
    with pytest.raises(ValueError, match="minutes"):
        compose_long_video(corpus, out, minutes=0)
    with pytest.raises(ValueError, match="stretch_clips"):
        compose_long_video(corpus, out, stretch_clips=(3, 2))
    with pytest.raises(ValueError, match="mp4"):
        compose_long_video(corpus, tmp_path / "x.avi")
    no_mer = tmp_path / "b"
    no_mer.mkdir()
    shutil.copy(corpus / "test.jsonl", no_mer / "test.jsonl")
    write_manifest(no_mer / "test.jsonl", [r for r in load_manifest(no_mer / "test.jsonl") if r.task != "mer"])
    with pytest.raises(ValueError, match="no MER records"):
        compose_long_video(no_mer, out)
    with pytest.raises(ValueError, match=r"c\d\.mp4 is (64x64|96x96) .* placed before it"):
        compose_long_video(_small_corpus(tmp_path / "c", [64, 96]), out, minutes=0.5)
    broken = _small_corpus(tmp_path / "d", [64, 64])
    (broken / "media/c1.mp4").write_bytes(b"not a video")
    (broken / "media/c3.mp4").unlink()
    with pytest.raises((ValueError, FileNotFoundError), match=r"c[13]\.mp4"):
        compose_long_video(broken, out, minutes=0.5)
    assert list(tmp_path.glob("x*")) == [] and list(tmp_path.glob(".x*")) == []  # nothing half-written


def test_cli_compose(corpus, tmp_path, capsys):
    from nanoemox.cli import main

    out = tmp_path / "long.mp4"
    assert main(["synth", "--compose", str(corpus), "--minutes", "0.2", "--out", str(out)]) == 0
    assert out.is_file() and all(p.is_file() for p in side_files(out).values())
    assert "long.segments.csv" in capsys.readouterr().out

    assert main(["synth", "--compose", str(corpus), "--minutes", "0.2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", "--compose", str(corpus), "--minutes", "0.2", "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()

    missing = tmp_path / "no_corpus_here"
    assert main(["synth", "--compose", str(missing), "--out", str(tmp_path / "other.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nanoemox synth: ") and str(missing) in err[0]
    assert main(["synth", "--compose", str(corpus), "--out", str(tmp_path / "other.mkv")]) == 2
