"""Speech input: decode any audio to 16 kHz mono and cut it into normalised clips.

The source is an audio file (wav, flac, mp3, m4a, ...) or the audio stream of a
video; any sample rate and channel count is accepted. Channels are averaged to
mono and the signal is resampled with `soxr` (high quality). The waveform is cut
into `num_clips` windows of `clip_seconds`, evenly spaced from the start to the
end (they overlap on short audio; audio shorter than one window is zero-padded
and every clip is that padded audio). Each clip is normalised to zero mean and
unit variance over its real samples, padding left at zero, which is what
transformers' `Wav2Vec2FeatureExtractor(do_normalize=True)` does for HuBERT.

Long recordings are not decoded in full: beyond `WINDOWED_MIN_SECONDS` only the
stretch around each window is decoded after a seek (plus a short margin on both
sides so the resampler has context), which keeps a ten-minute clip cheap.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr

from nanoemox.media.container import DEFAULT_MAX_FILE_BYTES, first_stream, open_container
from nanoemox.media.errors import TruncatedMedia, UnsupportedCodec, ZeroDuration
from nanoemox.media.video import stream_span

logger = logging.getLogger(__name__)

WINDOWED_MIN_SECONDS = 20.0  # longer audio is decoded window by window after seeking
MARGIN_SECONDS = 0.25  # extra audio decoded around each window (resampler context, seek slack)
NORM_EPS = 1e-7  # the variance floor Wav2Vec2FeatureExtractor uses


@dataclass
class AudioClips:
    """`clips`: float32 [num_clips, clip_samples], normalised; `valid`: real (unpadded) samples per clip."""

    clips: np.ndarray
    valid: np.ndarray
    duration: float
    source_rate: int
    source_channels: int
    windowed: bool


def normalize_clips(clips: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the first `valid[i]` samples of clip i; padding stays 0."""
    out = np.zeros_like(clips, dtype=np.float32)
    for i, n in enumerate(valid):
        if n <= 0:
            continue
        x = clips[i, :n].astype(np.float64)
        out[i, :n] = (x - x.mean()) / np.sqrt(x.var() + NORM_EPS)
    return out


def clip_starts(total: int, clip: int, num_clips: int) -> np.ndarray:
    """Start sample of each window: evenly spaced so the first starts at 0 and the last ends at `total`."""
    if total <= clip or num_clips == 1:
        return np.zeros(num_clips, dtype=np.int64)
    return np.round(np.linspace(0, total - clip, num_clips)).astype(np.int64)


def _decode(container, stream, path: Path, begin: float | None = None, end: float | None = None):
    """Decode to float32 [channels, samples] at the source rate; returns (array, time of first sample)."""
    resampler = av.AudioResampler(format="fltp")  # sample format only; rate and layout unchanged
    chunks, first_time = [], None
    try:
        for frame in container.decode(stream):
            rate = frame.sample_rate
            if begin is not None and frame.time is not None and frame.time + frame.samples / rate < begin:
                continue
            for converted in resampler.resample(frame):
                array = converted.to_ndarray()  # [channels, samples]
                if first_time is None:
                    first_time = frame.time if frame.time is not None else 0.0
                chunks.append(array.reshape(-1, array.shape[-1]))
            if end is not None and frame.time is not None and frame.time > end:
                break
    except av.error.DecoderNotFoundError:
        raise UnsupportedCodec(path, "no decoder for the audio codec") from None
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        # Keep what decoded so far; a damaged tail should not lose the whole sample.
        logger.warning("%s: audio decoding stopped early (%s)", path, type(exc).__name__)
    if not chunks:
        return np.zeros((1, 0), np.float32), first_time or 0.0
    channels = max(c.shape[0] for c in chunks)
    chunks = [c if c.shape[0] == channels else np.repeat(c[:1], channels, axis=0) for c in chunks]
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), first_time


def _align_to_grid(array: np.ndarray, t0: float, rate: int, target_rate: int) -> tuple[np.ndarray, float]:
    """Drop leading samples so the chunk starts on a time both sample grids share.

    Resampling a chunk that starts between two output samples would shift it by a
    fraction of a sample relative to resampling the whole signal; both grids meet
    every 1/gcd(rate, target_rate) seconds.
    """
    step = rate // math.gcd(rate, target_rate)  # source samples between shared instants
    n0 = int(round(t0 * rate))
    skip = (-n0) % step
    return array[:, skip:], (n0 + skip) / rate


def _to_mono(array: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    mono = array.mean(axis=0) if array.shape[0] > 1 else array[0]
    if rate != target_rate and mono.size:
        mono = soxr.resample(mono, rate, target_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_waveform(path: str | os.PathLike, sample_rate: int = 16000, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES):
    """The whole audio track as float32 mono at `sample_rate` -> (waveform [samples], source rate, channels)."""
    path = Path(path)
    with open_container(path, max_bytes) as container:
        stream = first_stream(container, path, "audio")
        array, _ = _decode(container, stream, path)
        rate, channels = stream.codec_context.sample_rate or sample_rate, array.shape[0]
    return _to_mono(array, rate, sample_rate), rate, channels


def cut_clips(waveform: np.ndarray, clip: int, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clips of `clip` samples from each start sample (zero-padded past the end) -> (clips, valid samples)."""
    clips = np.zeros((len(starts), clip), np.float32)
    valid = np.zeros(len(starts), np.int64)
    for i, s in enumerate(starts):
        piece = waveform[s : s + clip]
        clips[i, : piece.size] = piece
        valid[i] = piece.size
    return clips, valid


def _cut(waveform: np.ndarray, clip: int, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
    return cut_clips(waveform, clip, clip_starts(waveform.size, clip, num_clips))


def clips_from_waveform(waveform: np.ndarray, clip: int, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """A mono waveform cut into `num_clips` normalised clips of `clip` samples -> (clips, valid samples)."""
    clips, valid = _cut(waveform, clip, num_clips)
    return normalize_clips(clips, valid), valid


def _windowed(container, stream, path: Path, duration: float, start: float, sample_rate: int, clip: int, num_clips: int):
    """Decode only around each window; window placement matches `clip_starts` on the full signal."""
    clip_s = clip / sample_rate
    clips = np.zeros((num_clips, clip), np.float32)
    valid = np.zeros(num_clips, np.int64)
    rate, channels = stream.codec_context.sample_rate, 1
    for i, s in enumerate(clip_starts(int(round(duration * sample_rate)), clip, num_clips) / sample_rate):
        begin = start + s
        container.seek(int(max(begin - MARGIN_SECONDS, start) / stream.time_base), stream=stream, backward=True)
        array, t0 = _decode(container, stream, path, begin - MARGIN_SECONDS, begin + clip_s + MARGIN_SECONDS)
        channels = max(channels, array.shape[0])
        array, t0 = _align_to_grid(array, t0, rate, sample_rate)
        mono = _to_mono(array, rate, sample_rate)
        offset = int(round((begin - t0) * sample_rate))
        piece = mono[max(offset, 0) : max(offset, 0) + clip]
        clips[i, : piece.size], valid[i] = piece, piece.size
    return clips, valid, rate, channels


def _check_length(path: Path, decoded: float, declared: float | None) -> None:
    """Audio that stops long before the duration its own stream declares is a cut file."""
    if declared and declared - decoded > max(1.0, 0.1 * declared):
        raise TruncatedMedia(path, f"audio data ends at {decoded:.2f} s of a declared {declared:.2f} s")


def read_audio_clips(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    num_clips: int = 8,
    clip_seconds: float = 2.0,
    max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    windowed: bool | None = None,
) -> AudioClips:
    """Decode, resample and cut into normalised clips; `windowed=None` picks by duration.

    Windowed decoding needs a duration declared by the audio stream itself (mp4, wav,
    ...); otherwise (e.g. Matroska, where only the container has one) the whole
    stream is decoded, since a container duration may belong to a longer video.
    """
    path = Path(path)
    clip = int(round(clip_seconds * sample_rate))
    with open_container(path, max_bytes) as container:
        stream = first_stream(container, path, "audio")
        start, _ = stream_span(container, stream)
        declared = float(stream.duration * stream.time_base) if stream.duration else None
        if windowed is None:
            windowed = declared is not None and declared > WINDOWED_MIN_SECONDS
        if windowed and declared:
            clips, valid, rate, channels = _windowed(container, stream, path, declared, start, sample_rate, clip, num_clips)
            duration = declared
            # A few samples short at the very end is rounding; most of a window missing is a cut file.
            if declared * sample_rate >= clip and (valid < 0.9 * clip).any():
                raise TruncatedMedia(path, f"audio windows past {declared:.2f} s hold no data; the file ends early")
        else:
            windowed = False
            array, _ = _decode(container, stream, path)
            rate, channels = stream.codec_context.sample_rate, array.shape[0]
            waveform = _to_mono(array, rate, sample_rate)
            duration = waveform.size / sample_rate
            if waveform.size:
                _check_length(path, duration, declared)
            clips, valid = _cut(waveform, clip, num_clips)
    if not valid.any():
        raise ZeroDuration(path, "the audio stream holds no samples")
    return AudioClips(normalize_clips(clips, valid), valid, float(duration), int(rate), int(channels), bool(windowed))
