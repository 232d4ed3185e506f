"""Write a SynthAffect clip (frames + 16 kHz mono voice) into one mp4 with PyAV.

Video is H.264 (`libx264`) when PyAV's bundled FFmpeg has it, otherwise MPEG-4 Part 2;
audio is AAC at 16 kHz mono. Encoders run single-threaded so the same input gives
the same decoded content on every run. `StreamWriter` (the package's `MediaWriter` with
these settings) appends frames and samples piece by piece, so videos too long to hold can
be written (the long videos of `synth/long.py`); `write_clip` writes one clip from arrays
held in memory with it.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nanoemox.media.writer import MediaWriter


@functools.lru_cache(maxsize=1)
def video_codec() -> str:
    """Name of the video encoder used: libx264 if available, else mpeg4."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # PyAV raises UnknownCodecError, a subclass varying by version
        return "mpeg4"


def write_clip(path: str | Path, frames: np.ndarray, fps: int, wave: np.ndarray, sample_rate: int) -> None:
    """Encode `frames` [F, H, W, 3] uint8 and `wave` [S] float32 in [-1, 1] into `path`."""
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"{path}: frames must be [F, H, W, 3] uint8 with even H and W, got shape {frames.shape}")
    with StreamWriter(path, fps, frames.shape[2], frames.shape[1], sample_rate) as writer:
        for image in frames:
            writer.add_frame(image)
        writer.add_audio(wave)


class StreamWriter(MediaWriter):
    """One mp4 with the corpus's encoder settings, written piece by piece (see `MediaWriter`).

    The video is `width` x `height` at `fps` (`video_codec()`, single-threaded); the audio
    is AAC mono at `sample_rate`, 64 kbit/s. The file is written bit-exact (no encoder
    version strings), so the same input gives the same file.
    """

    def __init__(self, path: str | Path, fps: int | Fraction, width: int, height: int, sample_rate: int):
        super().__init__(path, format="mp4", container_options={"fflags": "+bitexact"})
        codec = video_codec()
        video = self.add_video_stream(codec, fps, width, height)
        video.thread_count = 1
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "crf": "20", "threads": "1"}
        else:
            video.bit_rate = 800_000
        self.add_audio_stream("aac", sample_rate).bit_rate = 64_000
