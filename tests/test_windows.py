"""Windows of long videos and live streams share encoder work (`nanoemox.inference.windows`):
the same answers as encoding every window whole, far fewer encoder passes, grid-placed
speech clips, and memory that does not grow with the stream."""

from __future__ import annotations

import numpy as np
import pytest

from nanoemox.inference import Predictor
from nanoemox.inference.windows import SpeechClips, WindowAnswerer, clip_pieces, prepare
from nanoemox.media.audio import clip_starts
from nanoemox.media.pipeline import MediaConfig
from nanoemox.media.stream import Window, frame_targets, window_span
from nanoemox.timeline import Timeline, TimelineOptions

PROBABILITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_pretrained(model_dir, dtype="float32", max_new_tokens=5)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """A SynthAffect corpus strung into a 32 s video with subtitles (`nanoemox synth --compose`)."""
    from nanoemox.data.synth import compose_long_video, generate

    folder = tmp_path_factory.mktemp("windows")
    generate(folder / "corpus", 12, seed=3)
    summary = compose_long_video(folder / "corpus", folder / "long.mp4", minutes=0.5, split="train", seed=0)
    return folder / "long.mp4", folder / summary["files"]["srt"]


def _max_difference(a: list[dict], b: list[dict]) -> float:
    return max(abs(x[task]["probabilities"][k] - y[task]["probabilities"][k])
               for x, y in zip(a, b) for task in ("mer", "msa") for k in x[task]["probabilities"])


@pytest.mark.parametrize("speech_clips", ["grid", "window"])
def test_shared_windows_answer_as_whole_windows(predictor, long_video, speech_clips):
    video, srt = long_video
    runs = {}
    for share in (True, False):
        timeline = Timeline(predictor, video, TimelineOptions(hop=1.0, batch_size=3, share=share,
                                                              speech_clips=speech_clips), srt)
        runs[share] = (list(timeline.results()), timeline.answerer.stats())
    (shared, stats), (whole, whole_stats) = runs[True], runs[False]
    assert len(shared) == len(whole) == 29 and all("error" not in r for r in shared)
    assert [r["mer"]["label"] for r in shared] == [r["mer"]["label"] for r in whole]
    assert [r["msa"]["sentiment"] for r in shared] == [r["msa"]["sentiment"] for r in whole]
    assert _max_difference(shared, whole) < PROBABILITY_TOLERANCE
    # 8 frames every 0.5 s, a 1 s hop: each new window brings 2 new frames (the first brings 8)
    assert whole_stats["encoded"]["scene"] == 29 * 8
    assert stats["encoded"]["scene"] == 8 + 28 * 2 and stats["encoded"]["face"] <= stats["encoded"]["scene"]
    if speech_clips == "grid":  # 4 of 8 clips new per window (all 29 windows are full length: 32 s)
        assert stats["encoded"]["speech"] == 8 + 28 * 4


def test_grid_places_clips_as_the_window_does_at_the_default_hop_and_shares_them_at_1s():
    cfg = MediaConfig()
    rate = cfg.sample_rate

    def window(index: int, hop: float) -> Window:
        start, end = window_span(index, 4.0, hop)
        return Window(index, start, end, None, [], [], np.zeros(int(round((end - start) * rate)), np.float32), 1)

    two = SpeechClips(4.0, 2.0)
    for k in range(5):
        assert np.array_equal(two.starts(window(k, 2.0), cfg), clip_starts(4 * rate, cfg.clip_samples, cfg.num_clips))
    one = SpeechClips(4.0, 1.0)
    assert one.spacing(cfg) == pytest.approx(0.25)
    absolute = [set((one.starts(window(k, 1.0), cfg) + k * rate).tolist()) for k in range(4)]
    for k in range(3):
        assert len(absolute[k] & absolute[k + 1]) == 4  # half the clips shared with the next window
    starts = one.starts(window(0, 1.0), cfg)
    assert starts.min() >= 0 and starts.max() + cfg.clip_samples <= 4 * rate
    short = Window(9, 9.0, 11.5, None, [], [], np.zeros(int(2.5 * rate), np.float32), 1)  # a video's last window
    assert np.array_equal(one.starts(short, cfg), clip_starts(short.waveform.size, cfg.clip_samples, cfg.num_clips))
    with pytest.raises(ValueError, match="placement"):
        SpeechClips(4.0, 1.0, "nearest")


def test_pieces_equal_the_whole_window_preparation():
    """A window prepared piece by piece gives the arrays a short clip's preparation gives."""
    from nanoemox.media.audio import clips_from_waveform
    from nanoemox.media.pipeline import frames_to_images

    rng = np.random.default_rng(0)
    cfg = MediaConfig(face_input="crops")
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(cfg.num_frames)]
    boxes = [None, (10, 8, 20, 20), None, None, (30, 10, 16, 16), None, None, None]
    waveform = rng.standard_normal(4 * cfg.sample_rate).astype(np.float32)
    window = Window(0, 0.0, 4.0, frames, frame_targets(0.0, 4.0, 8), boxes, waveform, waveform.size)
    arrays = prepare(window, cfg).arrays
    pixels, faces, _ = frames_to_images(frames, cfg, boxes=boxes)
    assert np.array_equal(arrays["pixel_values"], pixels) and np.array_equal(arrays["face_pixel_values"], faces)
    assert np.array_equal(arrays["audio_values"], clips_from_waveform(waveform, cfg.clip_samples, cfg.num_clips)[0])
    silent = Window(0, 0.0, 4.0, None, [], [], None, 0)
    assert all(not piece.samples.any() for piece in clip_pieces(silent, cfg, None))


def test_memory_stays_bounded_over_a_long_stream(predictor):
    """Answering window after window (as a live session does), the pieces held never exceed one window's."""
    cfg = predictor.processor.media
    answerer = WindowAnswerer(predictor, ["mer"], window=4.0, hop=1.0)
    rng = np.random.default_rng(1)
    signal = rng.standard_normal(130 * cfg.sample_rate).astype(np.float32)
    images = {}  # the frame on screen at each frame time, as a reader hands it to every window holding it
    bound = cfg.num_frames * 2 + cfg.num_clips  # scene and face pieces of one window, and its clips
    for index in range(120):
        start, end = window_span(index, 4.0, 1.0)
        targets = frame_targets(start, end, cfg.num_frames)
        frames = [images.setdefault(t, rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for t in targets]
        waveform = signal[int(start * cfg.sample_rate): int(end * cfg.sample_rate)]
        window = Window(index, start, end, frames, targets, [None] * len(targets), waveform, waveform.size,
                        targets=targets)
        result = answerer.answer([answerer.prepare(window)])[0]
        assert "mer" in result
        assert len(answerer.memory) <= bound
        assert all(key[0] >= start + 1.0 - 1e-9 for key in answerer.memory.scene)
    assert answerer.stats()["encoded"]["scene"] == cfg.num_frames + 119 * 2


def test_timeline_command_takes_the_sharing_options_and_resume_keeps_the_placement(model_dir, long_video, tmp_path,
                                                                                   capsys):
    import json

    from nanoemox.cli import main as cli

    video, srt = long_video
    out = tmp_path / "timeline"
    base = ["timeline", str(video), "--model", str(model_dir), "--out", str(out), "--dtype", "float32", "--hop", "2"]
    assert cli(base + ["--no-share", "--speech-clips", "window"]) == 0
    meta = json.loads((out / "timeline.json").read_text(encoding="utf-8"))
    assert meta["settings"]["speech_clips"] == "window"
    assert meta["encoders"]["share"] is False and meta["encoders"]["encoded"]["scene"] == meta["window_count"] * 8
    capsys.readouterr()
    assert cli(base + ["--resume"]) == 2  # the default placement is "grid": another setting
    assert "speech_clips" in capsys.readouterr().err
