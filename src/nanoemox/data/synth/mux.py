"""Write a SynthAffect clip (frames + 16 kHz mono voice) into one mp4 with PyAV.

Video is H.264 (`libx264`) when PyAV's bundled FFmpeg has it, otherwise MPEG-4 Part 2;
audio is AAC at 16 kHz mono. Encoders run single-threaded so the same input gives
the same decoded content on every run.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@functools.lru_cache(maxsize=1)
def video_codec() -> str:
    """Name of the video encoder used: libx264 if available, else mpeg4."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # PyAV raises UnknownCodecError, a subclass varying by version
        return "mpeg4"


def _add_video(container: av.container.OutputContainer, fps: int, size: int):
    codec = video_codec()
    stream = container.add_stream(codec, rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.thread_count = 1
    if codec == "libx264":
        stream.options = {"preset": "ultrafast", "crf": "20", "threads": "1"}
    else:
        stream.bit_rate = 800_000
    return stream


def _add_audio(container: av.container.OutputContainer, sample_rate: int):
    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono"
    stream.bit_rate = 64_000
    return stream


def _encode_audio(container, stream, wave: np.ndarray, sample_rate: int) -> None:
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, len(wave), chunk):
        piece = wave[start:start + chunk].astype(np.float32)[None, :]  # [1, S] planar mono
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_clip(path: str | Path, frames: np.ndarray, fps: int, wave: np.ndarray, sample_rate: int) -> None:
    """Encode `frames` [F, H, W, 3] uint8 and `wave` [S] float32 in [-1, 1] into `path`."""
    if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[3] != 3:
        raise ValueError(f"{path}: frames must be [F, S, S, 3] uint8, got shape {frames.shape}")
    with av.open(str(path), mode="w", format="mp4",
                 container_options={"fflags": "+bitexact"}) as container:
        vstream = _add_video(container, fps, frames.shape[1])
        astream = _add_audio(container, sample_rate)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        _encode_audio(container, astream, wave, sample_rate)
