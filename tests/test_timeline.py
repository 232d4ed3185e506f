"""Emotion timelines: windows streamed over a long video, damaged stretches, answers per
window, segments, files, resume, the command line, and scoring against ground truth."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
import torch

from nanoemox.cli import main as cli
from nanoemox.inference import Predictor
from nanoemox.media.audio import load_waveform
from nanoemox.media.stream import WindowReader, frame_targets, window_spans
from nanoemox.media.synth import brightness_to_time, write_video
from nanoemox.timeline import (
    Subtitles, SubtitleError, Timeline, TimelineError, TimelineOptions, csv_columns, segment, write_timeline,
)
from nanoemox.timeline.evaluate import boundary_f1, segment_scores, true_labels, window_accuracy
from nanoemox.inference.windows import prepare

LABELS = ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_pretrained(model_dir, dtype="float32", max_new_tokens=5)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline_media")
    video = write_video(folder / "talk.mp4", seconds=12.0, fps=10, size=(64, 48), audio_rate=16000)
    srt = folder / "talk.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:03,000\nI passed the exam!\n\n"
                   "2\n00:00:05,000 --> 00:00:07,500\nBut then <i>everything</i>\nwent wrong.\n", encoding="utf-8")
    return {"folder": folder, "video": video, "srt": srt}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A 20 s mp4 whose middle tenth of bytes is overwritten with noise."""
    folder = tmp_path_factory.mktemp("timeline_damaged")
    good = write_video(folder / "good.mp4", seconds=20, fps=10, size=(64, 48), audio_rate=16000, texture=True, gop=10)
    data = bytearray(good.read_bytes())
    a, b = int(len(data) * 0.45), int(len(data) * 0.55)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    bad = folder / "bad.mp4"
    bad.write_bytes(bytes(data))
    return good, bad


# ---------------------------------------------------------------------- windows


def test_window_spans_cover_the_video_and_end_at_its_end():
    assert window_spans(10.0, 4.0, 2.0) == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 10.0)]
    assert window_spans(9.0, 4.0, 2.0) == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 9.0)]
    assert window_spans(3.0, 4.0, 2.0) == [(0.0, 3.0)]
    assert window_spans(8.0, 4.0, 4.0) == [(0.0, 4.0), (4.0, 8.0)]
    assert window_spans(0.0, 4.0, 2.0) == []
    with pytest.raises(ValueError):
        window_spans(10.0, 0.0, 2.0)


def test_windows_hold_the_frames_and_audio_of_their_span(media):
    """Each frame is the one on screen at its target; the audio equals the decoded track's slice."""
    video = media["video"]
    reader = WindowReader(video)
    windows = list(reader.windows())
    assert [(w.start, w.end) for w in windows] == window_spans(12.0, 4.0, 2.0)
    whole, _, _ = load_waveform(video)
    for w in windows:
        assert w.problems == []
        targets = frame_targets(w.start, w.end, 8)
        assert len(w.frames) == 8
        for frame, target in zip(w.frames, targets):
            # the pattern's brightness encodes its time; the frame on screen is at most 1/fps earlier
            assert abs(brightness_to_time(frame, 12.0) - target) < 0.25
        a, b = int(round(w.start * 16000)), int(round(w.end * 16000))
        piece = whole[a:b]
        assert w.waveform.shape == (b - a,) and w.audio_samples == piece.size
        assert np.corrcoef(w.waveform[1000:-1000], piece[1000:-1000])[0, 1] > 0.99
    # Starting at a later window (resume) gives the same windows.
    later = list(reader.windows(first=3))
    assert [w.index for w in later] == [3, 4]
    for a, b in zip(later, windows[3:]):
        assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
        assert np.abs(a.waveform - b.waveform).max() < 1e-3


def test_damaged_stretch_marks_only_its_windows(damaged):
    good, bad = damaged
    assert all(not w.problems for w in WindowReader(good).windows())
    windows = list(WindowReader(bad).windows())
    assert len(windows) == 9  # the run went through to the end
    hit = [w.index for w in windows if w.problems]
    assert hit and len(hit) <= 5, hit
    assert not windows[0].problems and not windows[-1].problems
    text = " ".join(p for w in windows for p in w.problems)
    assert "damaged" in text or "no video frame" in text or "audio gap" in text


def test_cut_file_marks_the_windows_after_the_cut(tmp_path):
    whole = write_video(tmp_path / "whole.mkv", seconds=20, fps=10, size=(64, 48), audio_rate=16000, texture=True, gop=10)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    windows = list(WindowReader(cut).windows())
    assert len(windows) >= 9
    assert not windows[0].problems
    assert any("video data ends" in p for p in windows[-1].problems)
    assert any("audio data ends" in p for p in windows[-1].problems)


def test_audio_gap_is_reported_and_filled_with_silence(tmp_path):
    import av
    from fractions import Fraction

    path = tmp_path / "gap.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = 0
        for second in range(12):
            if 4 <= second < 7:  # three seconds without audio packets
                t += 16000
                continue
            for start in range(0, 16000, 1024):
                n = min(1024, 16000 - start)
                samples = (0.3 * np.sin(np.arange(n) / 5.0)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, t + start, Fraction(1, 16000)
                for packet in stream.encode(frame):
                    out.mux(packet)
            t += 16000
        for packet in stream.encode(None):
            out.mux(packet)
    reader = WindowReader(path)
    assert not reader.has_video and reader.has_audio
    windows = list(reader.windows())
    gap = [w for w in windows if any("audio gap" in p for p in w.problems)]
    assert [w.index for w in gap] == [1, 2, 3]  # windows 2-6, 4-8, 6-10 s overlap the gap at 4-7 s
    assert all(w.frames is None for w in windows)
    assert np.abs(gap[1].waveform[16000:40000]).max() < 1e-3  # 5-6.5 s inside the gap: silence
    assert not windows[0].problems and not windows[-1].problems


def test_faces_are_counted_in_hd_frames(tmp_path):
    """faces_found: the detector finds a talking-head face in 1280x720 frames at its 320-pixel scale."""
    import av

    from nanoemox.media.synth import face_image

    path = tmp_path / "face.mp4"
    image = face_image(1280, 720, (640, 360), 300)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(25):  # 5 s
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image if i < 10 else image * 0 + 90), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    windows = list(WindowReader(path, window=2.0, hop=2.0).windows())
    assert [w.faces_found for w in windows] == [8, 0, 0]  # the face is on screen for the first 2 s only
    assert [w.faces_found for w in WindowReader(path, window=2.0, hop=2.0, detect_faces=False).windows()] == [0, 0, 0]
    # A processor that reads face crops gets them from the reader's boxes (found at 640 pixels, as for clips).
    from nanoemox.media.faces import DETECT_MAX_SIDE
    from nanoemox.media.pipeline import MediaConfig, face_images, scene_images
    from nanoemox.media.transforms import normalize

    cfg = MediaConfig(face_input="crops")
    window = next(WindowReader(path, window=2.0, hop=2.0, detect_side=DETECT_MAX_SIDE).windows())
    _, squares = scene_images(window.frames, cfg)
    detected, found = face_images(window.frames, squares, cfg)  # detected here, without the reader's boxes
    assert found.all() and not np.array_equal(detected, squares)
    prepared = prepare(window, cfg, None)
    assert np.array_equal(prepared.arrays["face_pixel_values"], normalize(detected, cfg.face_mean, cfg.face_std))


def test_unreadable_file_is_one_clear_error(tmp_path, model_dir, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    code = cli(["timeline", str(junk), "--model", str(model_dir), "--out", str(tmp_path / "out"), "--dtype", "float32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "junk.mp4" in err[0]


# ---------------------------------------------------------------------- answers


def test_window_answers_equal_scoring_the_window_alone(predictor, media):
    """Batched encoders + shared prefix give what scoring the window's own arrays gives."""
    options = TimelineOptions(batch_size=3)
    timeline = Timeline(predictor, media["video"], options, media["srt"])
    results = list(timeline.results())
    assert [r["index"] for r in results] == list(range(5))
    assert results[0]["text"] == "I passed the exam!"
    assert results[2]["text"] == "But then everything went wrong."  # 4-8 s overlaps line 2 only
    assert results[1]["text"] == "I passed the exam! But then everything went wrong."
    subtitles = Subtitles.load(media["srt"])
    for window, result in zip(timeline.reader.windows(), results):
        prepared = prepare(window, predictor.processor.media, subtitles)
        sample = {**{k: torch.from_numpy(v) for k, v in prepared.arrays.items()}}
        for task, labels in (("mer", LABELS), ("msa", ["positive", "negative", "neutral"])):
            encoded = predictor.processor.encode_text(task, prepared.text, None, LABELS if task == "mer" else None)
            alone = predictor.score({"input_ids": torch.tensor(encoded.input_ids), **sample}, labels, task)
            got = result[task]["probabilities"]
            assert set(got) == set(labels)
            assert max(abs(got[k] - alone["probabilities"][k]) for k in labels) < 1e-4
        assert math.isclose(sum(result["mer"]["probabilities"].values()), 1.0, abs_tol=1e-6)
        msa = result["msa"]["probabilities"]
        assert math.isclose(result["msa"]["valence"], msa["positive"] - msa["negative"], abs_tol=1e-9)
    one = list(Timeline(predictor, media["video"], TimelineOptions(batch_size=1), media["srt"]).results())
    for a, b in zip(one, results):
        assert max(abs(a["mer"]["probabilities"][k] - b["mer"]["probabilities"][k]) for k in LABELS) < 1e-4


def test_files_beyond_the_clip_size_limit_are_streamed(predictor, media, monkeypatch):
    """The processor's max_file_bytes guards clips decoded whole; a timeline streams, so it does not apply."""
    monkeypatch.setattr(predictor.processor.media, "max_file_bytes", 1000)
    assert media["video"].stat().st_size > 1000
    assert len(list(Timeline(predictor, media["video"], TimelineOptions(tasks=("msa",))).results())) == 5


def test_damaged_windows_get_an_error_and_no_answer(predictor, damaged):
    results = list(Timeline(predictor, damaged[1], TimelineOptions(tasks=("mer",))).results())
    bad = [r for r in results if "error" in r]
    assert bad and all("mer" not in r for r in bad)
    assert all("mer" in r for r in results if "error" not in r)
    assert len(results) == 9


# ---------------------------------------------------------------------- files, resume, CLI


def _rows(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_files_written_and_resume_continues_where_it_stopped(predictor, media, tmp_path):
    options = TimelineOptions(tasks=("mer", "msa", "ovmer"), batch_size=2)
    full = write_timeline(Timeline(predictor, media["video"], options), tmp_path / "full")
    rows = _rows(tmp_path / "full" / "timeline.csv")
    assert list(rows[0]) == csv_columns(("mer", "msa", "ovmer"), LABELS)
    assert list(rows[0])[:4] == ["start", "end", "label", "confidence"]
    assert len(rows) == full["window_count"] == 5 and full["complete"]
    for row, result in zip(rows, full["windows"]):
        assert row["label"] == result["mer"]["label"]
        assert math.isclose(sum(float(row[f"p_{k}"]) for k in LABELS), 1.0, abs_tol=1e-3)
        assert row["sentiment"] in ("positive", "negative", "neutral") and -1 <= float(row["valence"]) <= 1
        assert row["audio_present"] == "1" and row["error"] == ""
        assert row["words"] == "; ".join(result["ovmer"]["words"])
    segments = json.loads((tmp_path / "full" / "segments.json").read_text())
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == 12.0
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
    assert (tmp_path / "full" / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((tmp_path / "full" / "timeline.json").read_text())
    assert meta["settings"]["window"] == 4.0 and meta["settings"]["dtype"] == "float32"
    assert meta["timing"]["windows"] == 5 and meta["segments"] == segments
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("timeline.csv", "segments.json", "timeline.png", "timeline.json", "windows.jsonl"):
        # atomically written files get the permissions a plain open() gives, not mkstemp's 0600
        assert (tmp_path / "full" / name).stat().st_mode & 0o777 == 0o666 & ~mask, name

    # An interrupted run: two windows written, the third cut mid-line.
    part = tmp_path / "part"
    part.mkdir()
    lines = (tmp_path / "full" / "windows.jsonl").read_text().splitlines(keepends=True)
    (part / "windows.jsonl").write_text("".join(lines[:2]) + lines[2][:40])
    (part / "timeline.json").write_text(json.dumps({"settings": full["settings"], "complete": False}))
    with pytest.raises(TimelineError, match="--resume"):
        write_timeline(Timeline(predictor, media["video"], options), part)
    with pytest.raises(TimelineError, match="window"):
        write_timeline(Timeline(predictor, media["video"], TimelineOptions(window=6.0, tasks=options.tasks)), part, resume=True)
    resumed = write_timeline(Timeline(predictor, media["video"], options), part, resume=True)
    assert resumed["resumed_from_window"] == 2 and resumed["timing"]["windows"] == 3 and resumed["complete"]
    for a, b in zip(resumed["windows"], full["windows"]):
        assert a["mer"]["label"] == b["mer"]["label"]
        assert max(abs(a["mer"]["probabilities"][k] - b["mer"]["probabilities"][k]) for k in LABELS) < 1e-4
    assert len(_rows(part / "timeline.csv")) == 5


def test_cli_with_relative_paths(model_dir, media, monkeypatch, capsys):
    monkeypatch.chdir(media["folder"])
    args = ["timeline", "talk.mp4", "--model", os.path.relpath(model_dir), "--out", "tl", "--subtitles", "talk.srt",
            "--dtype", "float32", "--labels", "calm,angry,happy", "--tasks", "mer"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "5 windows" in out and "timeline.csv" in out
    rows = _rows(media["folder"] / "tl" / "timeline.csv")
    assert list(rows[0]) == ["start", "end", "label", "confidence", "p_calm", "p_angry", "p_happy",
                             "faces_found", "audio_present", "error"]
    assert cli(args) == 2  # the folder holds a timeline: --resume or --overwrite
    assert "--resume" in capsys.readouterr().err
    assert cli(args + ["--resume"]) == 0
    assert "5 from an earlier run" in capsys.readouterr().out
    assert cli(args[:-4] + ["--tasks", "mer,eri", "--overwrite"]) == 2
    assert "eri" in capsys.readouterr().err
    assert cli(args + ["--smooth", "0", "--overwrite"]) == 2  # refused before any window is computed
    assert "smooth" in capsys.readouterr().err
    # Without --subtitles, talk.srt beside talk.mp4 is read; --no-subtitles leaves it out.
    beside = [a for a in args if a not in ("--subtitles", "talk.srt")]
    assert cli(beside + ["--overwrite"]) == 0
    meta = json.loads((media["folder"] / "tl" / "timeline.json").read_text())
    assert meta["settings"]["subtitles"].endswith("talk.srt") and meta["windows"][0]["text"] == "I passed the exam!"
    assert cli(beside + ["--overwrite", "--no-subtitles"]) == 0
    meta = json.loads((media["folder"] / "tl" / "timeline.json").read_text())
    assert meta["settings"]["subtitles"] is None and meta["windows"][0]["text"] is None


def test_subtitle_files(tmp_path):
    vtt = tmp_path / "a.vtt"
    vtt.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:03.500\nHello <b>there</b>\n\n00:00:05.000 --> 00:00:06.000\nBye\n",
                   encoding="utf-8")
    subs = Subtitles.load(vtt)
    assert subs.between(0, 2) == "Hello there" and subs.between(3, 5.5) == "Hello there Bye"
    assert subs.between(3.5, 5.0) is None  # touching is not overlapping
    junk = tmp_path / "junk.srt"
    junk.write_text("this is not a subtitle file\n", encoding="utf-8")
    with pytest.raises(SubtitleError, match="junk.srt"):
        Subtitles.load(junk)
    with pytest.raises(SubtitleError, match="no such subtitle file"):
        Subtitles.load(tmp_path / "missing.vtt")


# ---------------------------------------------------------------------- segments and scoring


def _windows(labels_per_window, hop=2.0, window=4.0):
    out, probabilities = [], []
    for i, label in enumerate(labels_per_window):
        out.append({"index": i, "start": i * hop, "end": i * hop + window})
        probabilities.append(None if label is None else {k: (0.9 if k == label else 0.05) for k in ("a", "b")})
    return out, probabilities


def test_segments_merge_runs_absorb_short_ones_and_keep_errors():
    windows, probs = _windows(["a", "a", "a", "b", "a", "a", "b", "b", "b", None, "b"])
    duration = 24.0
    raw = segment(windows, ["a", "b"], probs, duration, smooth=1, min_segment=0.0)
    assert [s["label"] for s in raw] == ["a", "b", "a", "b", None, "b"]
    assert raw[0]["start"] == 0.0 and raw[-1]["end"] == duration
    assert raw[1]["start"] == 7.0 and raw[1]["end"] == 9.0  # a window stands for the midpoints around its centre
    merged = segment(windows, ["a", "b"], probs, duration, smooth=1, min_segment=4.0)
    assert [s["label"] for s in merged] == ["a", "b", None, "b"]  # the lone "b" joined its neighbours
    assert merged[0]["end"] == 13.0 and merged[0]["windows"] == 6
    assert merged[2]["error"] and merged[2]["confidence"] is None
    assert math.isclose(merged[0]["confidence"], (5 * 0.9 + 0.05) / 6, abs_tol=1e-4)


def test_scoring_against_ground_truth():
    truth = [(0.0, 8.0, "a"), (8.0, 16.0, "b")]
    assert true_labels(0, 4, truth) == {"a"} and true_labels(6, 10, truth) == {"a", "b"} and true_labels(7, 11, truth) == {"b"}
    windows, probs = _windows(["a", "a", "a", "b", "b", "a", "b"])
    for w, p in zip(windows, probs):
        w["mer"] = {"probabilities": p}
    acc = window_accuracy(windows, truth, ["a", "b"])
    assert acc["windows"] == 7 and math.isclose(acc["accuracy"], 6 / 7)  # window 5 (10-14 s) is wrong
    f1 = boundary_f1(np.array([8.0]), np.array([7.0, 11.0]), tolerance=2.0)
    assert f1["boundary_recall"] == 1.0 and f1["boundary_precision"] == 0.5
    scores = segment_scores([{"start": 0.0, "end": 9.0, "label": "a"}, {"start": 9.0, "end": 16.0, "label": "b"}],
                            truth, 16.0)
    assert math.isclose(scores["time_accuracy"], 15 / 16, abs_tol=0.01)
    assert scores["boundary_error_mean_s"] == 1.0 and scores["boundary_f1"] == 1.0
