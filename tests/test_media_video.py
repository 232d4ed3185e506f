"""Video decoding: uniform seeking sampler, odd inputs and typed errors (files made in tmp_path)."""

from __future__ import annotations

import pickle

import av
import numpy as np
import pytest

from nanoemox.media import synth
from nanoemox.media.errors import (
    CorruptMedia,
    MediaError,
    MediaNotFound,
    MediaTooLarge,
    NoVideoStream,
    TruncatedMedia,
    UnsupportedCodec,
    ZeroDuration,
)
from nanoemox.media.video import read_frames


def test_frames_sampled_at_segment_centres(tmp_path):
    path = synth.write_video(tmp_path / "clip.mp4", seconds=4.0, fps=25, size=(64, 48))
    result = read_frames(path, 8)
    assert len(result.frames) == 8 and all(f.shape == (48, 64, 3) for f in result.frames)
    expected = [(i + 0.5) * 4.0 / 8 for i in range(8)]
    # The frame on screen at each target: at most one frame period before it.
    assert np.all(np.array(expected) - np.array(result.times) >= -1e-6)
    assert np.all(np.array(expected) - np.array(result.times) < 1 / 25 + 1e-6)
    # The pixels agree: brightness encodes the frame's time.
    seen = [synth.brightness_to_time(f, 4.0) for f in result.frames]
    assert np.allclose(seen, result.times, atol=0.15)


def test_odd_size_and_yuv444(tmp_path):
    path = synth.write_video(tmp_path / "odd.mp4", seconds=1.0, size=(161, 97), pix_fmt="yuv444p")
    result = read_frames(path)
    assert result.frames[0].shape == (97, 161, 3)


def test_long_clip_is_sampled_by_seeking(tmp_path):
    path = synth.write_video(tmp_path / "long.mp4", seconds=60.0, fps=25, size=(64, 48), gop=50)
    result = read_frames(path, 8)
    assert result.seeks >= 6
    # Decoding everything would be 1500 frames; seeking decodes a small part of that.
    assert result.decoded < 500
    expected = [(i + 0.5) * 60.0 / 8 for i in range(8)]
    assert np.allclose(result.times, expected, atol=0.05)


def test_variable_frame_rate_picks_frame_on_screen(tmp_path):
    times = [0.0, 0.1, 0.15, 1.0, 2.5, 2.6, 3.9]
    path = synth.write_video(tmp_path / "vfr.mp4", frame_times=times)
    result = read_frames(path, 8)
    for target, got in zip(result.targets, result.times):
        on_screen = max(t for t in times if t <= target + 1e-9)
        assert got == pytest.approx(on_screen, abs=1e-3)


@pytest.mark.parametrize("count", [1, 3])
def test_short_clips_repeat_frames(tmp_path, count):
    path = synth.write_video(tmp_path / "short.mp4", frame_times=[i / 25 for i in range(count)])
    result = read_frames(path, 8)
    assert len(result.frames) == 8
    assert len(set(result.times)) == count
    assert result.times == sorted(result.times)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    # 64x32 frame, white marker in the top-left quarter.
    path = synth.write_video(tmp_path / "rot.mp4", seconds=0.5, size=(64, 32), rotation=rotation)
    result = read_frames(path, 2)
    frame = result.frames[0]
    assert result.rotation % 360 == rotation % 360
    upright = synth.frame_pattern(64, 32, 0)
    expected = np.rot90(upright, k=(rotation // 90) % 4)
    assert frame.shape == expected.shape
    marker = expected[..., 0] == 255
    # Marker white, the rest at the (darker) time level of the first sampled frame.
    assert frame[..., 0][marker].mean() > 240 and frame[..., 0][~marker].mean() < 120


def test_missing_file(tmp_path):
    with pytest.raises(MediaNotFound, match="no such file"):
        read_frames(tmp_path / "absent.mp4")


def test_garbage_bytes_are_corrupt(tmp_path):
    # Seeded bytes: about 1 in 300 random buffers happens to probe as an audio-only format
    # (then NoVideoStream, still a MediaError naming the file), which made os.urandom flaky.
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CorruptMedia) as info:
        read_frames(path)
    assert str(path) in str(info.value) and "re-encode" in str(info.value)
    for seed in range(1, 21):
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        with pytest.raises(MediaError, match="garbage.mp4"):
            read_frames(path)


def test_empty_file_is_corrupt(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(CorruptMedia, match="empty"):
        read_frames(path)


def test_mp4_cut_in_half_is_truncated(tmp_path):
    path = synth.write_video(tmp_path / "full.mp4", seconds=2.0, audio_rate=8000)
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedMedia):
        read_frames(cut)


def test_mkv_cut_in_half_is_truncated(tmp_path):
    path = synth.write_video(tmp_path / "full.mkv", seconds=8.0, size=(64, 48), gop=25)
    cut = tmp_path / "cut.mkv"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedMedia, match="ends at"):
        read_frames(cut)


def test_audio_only_file_has_no_video(tmp_path):
    path = synth.write_audio(tmp_path / "speech.wav", 1.0, 8000, 2)
    with pytest.raises(NoVideoStream):
        read_frames(path)


def test_container_without_streams_is_zero_duration(tmp_path):
    path = tmp_path / "nothing.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    with pytest.raises(ZeroDuration):
        read_frames(path)


def test_size_limit(tmp_path):
    path = synth.write_video(tmp_path / "clip.mp4", seconds=0.5)
    with pytest.raises(MediaTooLarge, match="limit"):
        read_frames(path, max_bytes=100)


def test_errors_share_a_base_and_pickle(tmp_path):
    err = TruncatedMedia(tmp_path / "x.mp4", "ends early")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, MediaError) and back.path == err.path and str(back) == str(err)


def test_unknown_codec_is_unsupported(tmp_path):
    path = synth.write_video(tmp_path / "clip.avi", seconds=0.5, codec="mpeg4")
    data = path.read_bytes()
    assert b"FMP4" in data
    bad = tmp_path / "unknown.avi"
    bad.write_bytes(data.replace(b"FMP4", b"QQQQ"))  # a fourcc no decoder claims
    with pytest.raises(UnsupportedCodec, match="no decoder"):
        read_frames(bad)


def test_huge_frames_are_downscaled_while_decoding_or_refused(tmp_path, monkeypatch):
    import nanoemox.media.video as video

    path = tmp_path / "huge.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 2560, 1600, "yuv420p"
        for i in range(2):
            image = np.full((1600, 2560, 3), 40 * (i + 1), np.uint8)
            image[:, :1280] = 200  # left half bright: the aspect ratio must survive
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert path.stat().st_size < 200_000  # a small file of large frames
    sampled = read_frames(path, num_frames=2)
    assert {f.shape for f in sampled.frames} == {(800, 1280, 3)}
    assert sampled.frames[0][:, :600].mean() > 190 and sampled.frames[0][:, 700:].mean() < 100
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 1000 * 1000)
    with pytest.raises(UnsupportedCodec, match=r"2560x1600 pixels exceed the limit"):
        read_frames(path, num_frames=2)
