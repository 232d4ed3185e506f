"""Audio: any container/rate/channels -> 16 kHz mono -> 8 normalised 2 s clips."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import Wav2Vec2FeatureExtractor

from nanoemox.media import synth
from nanoemox.media.audio import clip_starts, load_waveform, normalize_clips, read_audio_clips
from nanoemox.media.errors import MediaNotFound, NoAudioStream, TruncatedMedia, ZeroDuration


def _dominant_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize(
    "name,rate,channels",
    [("a.wav", 8000, 2), ("b.flac", 44100, 1), ("c.mp3", 44100, 2), ("d.m4a", 48000, 2), ("e.wav", 22050, 1)],
)
def test_formats_rates_channels_to_16k_mono(tmp_path, name, rate, channels):
    path = synth.write_audio(tmp_path / name, 3.0, rate, channels, freq=440.0)
    wave, source_rate, source_channels = load_waveform(path, 16000)
    assert source_rate == rate and source_channels == channels
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 48000) < 16000 * 0.1  # codec padding adds a little at most
    assert _dominant_hz(wave[4000:44000], 16000) == pytest.approx(440.0, abs=1.0)
    if channels == 2 and name.endswith(".wav"):
        # Channel mean: left at 0.3, right at 0.15 amplitude -> 0.225.
        assert np.abs(wave).max() == pytest.approx(0.225, abs=0.01)
    clips = read_audio_clips(path)
    assert clips.clips.shape == (8, 32000) and clips.clips.dtype == np.float32
    assert np.all(clips.valid == 32000)


def test_clips_are_normalised_like_wav2vec2(tmp_path):
    path = synth.write_audio(tmp_path / "tone.wav", 5.0, 16000, 1, freq=300.0)
    wave, _, _ = load_waveform(path)
    clips = read_audio_clips(path)
    starts = clip_starts(wave.size, 32000, 8)
    assert starts[0] == 0 and starts[-1] == wave.size - 32000
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True, sampling_rate=16000)
    ref = extractor([wave[s : s + 32000] for s in starts], sampling_rate=16000, return_tensors="np")["input_values"]
    assert np.allclose(clips.clips, ref, atol=1e-4)
    assert np.allclose(clips.clips.mean(axis=1), 0, atol=1e-4)
    assert np.allclose(clips.clips.std(axis=1), 1, atol=1e-3)


def test_short_audio_is_zero_padded(tmp_path):
    path = synth.write_audio(tmp_path / "short.wav", 0.5, 8000, 1)
    clips = read_audio_clips(path)
    assert np.all(clips.valid == 8000)
    assert np.all(clips.clips[:, 8000:] == 0)
    real = clips.clips[0, :8000]
    assert abs(real.mean()) < 1e-4 and real.std() == pytest.approx(1.0, abs=1e-3)
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    wave, _, _ = load_waveform(path)
    ref = extractor([wave], sampling_rate=16000, padding="max_length", max_length=32000, return_tensors="np")
    assert np.allclose(clips.clips[0], ref["input_values"][0], atol=1e-4)


def test_windowed_decoding_matches_full_decoding(tmp_path):
    path = synth.write_audio(tmp_path / "long.wav", 70.0, 44100, 2, freq=440.0)
    full = read_audio_clips(path, windowed=False)
    windowed = read_audio_clips(path, windowed=True)
    assert windowed.windowed and not full.windowed
    assert np.allclose(full.clips, windowed.clips, atol=1e-3)
    auto = read_audio_clips(path)  # 70 s is above the threshold: windowed by default
    assert auto.windowed


def test_audio_from_video_stream(tmp_path):
    path = synth.write_video(tmp_path / "clip.mp4", seconds=3.0, audio_rate=44100, audio_channels=2)
    clips = read_audio_clips(path)
    assert clips.source_channels == 2 and clips.clips.shape == (8, 32000)
    assert np.abs(clips.clips).max() > 0.5


def test_video_without_audio(tmp_path):
    path = synth.write_video(tmp_path / "silent.mp4", seconds=1.0)
    with pytest.raises(NoAudioStream):
        read_audio_clips(path)


def test_missing_audio_file(tmp_path):
    with pytest.raises(MediaNotFound):
        read_audio_clips(tmp_path / "nope.wav")


def test_empty_wav_is_zero_duration(tmp_path):
    import av

    path = tmp_path / "empty.wav"
    with av.open(str(path), "w") as container:
        container.add_stream("pcm_s16le", rate=8000)
        container.start_encoding()
    with pytest.raises(ZeroDuration):
        read_audio_clips(path)


def test_truncated_m4a(tmp_path):
    path = synth.write_audio(tmp_path / "a.m4a", 2.0, 16000, 1)
    cut = tmp_path / "cut.m4a"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedMedia):
        read_audio_clips(cut)


def test_normalize_skips_padding_and_silence():
    clips = np.zeros((2, 10), np.float32)
    clips[0, :4] = [1, 2, 3, 4]
    out = normalize_clips(clips, np.array([4, 0]))
    assert np.all(out[1] == 0) and np.all(out[0, 4:] == 0)
    assert out[0, :4].mean() == pytest.approx(0, abs=1e-6)



@pytest.mark.parametrize("name,seconds", [("a.wav", 2.0), ("b.wav", 15.0), ("c.m4a", 2.5), ("d.m4a", 25.0), ("e.mp3", 21.0)])
def test_windowed_mode_on_intact_files_fills_every_clip(tmp_path, name, seconds):
    path = synth.write_audio(tmp_path / name, seconds, 22050, 2)
    clips = read_audio_clips(path, windowed=True)
    assert np.all(clips.valid >= 0.9 * 32000) and clips.windowed
