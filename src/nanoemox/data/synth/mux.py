"""Write a SynthAffect clip (frames + 16 kHz mono voice) into one mp4 with PyAV.

Video is H.264 (`libx264`) when PyAV's bundled FFmpeg has it, otherwise MPEG-4 Part 2;
audio is AAC at 16 kHz mono. Encoders run single-threaded so the same input gives
the same decoded content on every run. `StreamWriter` appends frames and samples piece
by piece, so videos too long to hold can be written (the long videos of `synth/long.py`);
`write_clip` writes one clip from arrays held in memory with it.
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


def _add_video(container: av.container.OutputContainer, fps: int | Fraction, size: int,
               height: int | None = None):
    """Add the video stream: `size` x `size` pixels, or `size` wide and `height` high."""
    codec = video_codec()
    stream = container.add_stream(codec, rate=fps)
    stream.width = size
    stream.height = size if height is None else height
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


def write_clip(path: str | Path, frames: np.ndarray, fps: int, wave: np.ndarray, sample_rate: int) -> None:
    """Encode `frames` [F, H, W, 3] uint8 and `wave` [S] float32 in [-1, 1] into `path`."""
    if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[3] != 3:
        raise ValueError(f"{path}: frames must be [F, S, S, 3] uint8, got shape {frames.shape}")
    with StreamWriter(path, fps, frames.shape[2], frames.shape[1], sample_rate) as writer:
        for image in frames:
            writer.add_frame(image)
        writer.add_audio(wave)


class StreamWriter:
    """One mp4 written piece by piece: video frames and mono audio appended as they come.

    Video frame i gets pts i at `fps`; audio
    is cut into the encoder's frame size with pts = sample index, so pieces appended one
    after another play as one continuous stream. Use it as a context manager: leaving
    the block flushes both encoders and closes the file (an error closes it unflushed).
    """

    def __init__(self, path: str | Path, fps: int | Fraction, width: int, height: int, sample_rate: int):
        self.path = str(path)
        self.sample_rate = sample_rate
        self.frames = 0    # video frames written so far
        self.samples = 0   # audio samples handed to the encoder so far
        self._container = av.open(self.path, mode="w", format="mp4", container_options={"fflags": "+bitexact"})
        self._video = _add_video(self._container, fps, width, height)
        self._audio = _add_audio(self._container, sample_rate)
        self._chunk = self._audio.codec_context.frame_size or 1024
        self._pending = np.zeros(0, dtype=np.float32)  # samples waiting for a full encoder frame

    def add_frame(self, frame: av.VideoFrame | np.ndarray) -> None:
        """Append one frame: a decoded `av.VideoFrame` (any pixel format) or an [H, W, 3] uint8 RGB array."""
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        else:
            # A fresh frame: a decoded one carries its picture type, which would force keyframes.
            planes = frame.to_ndarray(format="yuv420p", width=self._video.width, height=self._video.height)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = self.frames
        self.frames += 1
        self._mux(self._video.encode(frame))

    def add_audio(self, wave: np.ndarray) -> None:
        """Append mono samples [S] (float in [-1, 1]); they follow the previous ones without a gap."""
        self._pending = np.concatenate([self._pending, np.asarray(wave, dtype=np.float32).reshape(-1)])
        full = len(self._pending) - len(self._pending) % self._chunk
        for start in range(0, full, self._chunk):
            self._encode_samples(self._pending[start:start + self._chunk])
        self._pending = self._pending[full:]

    def close(self) -> None:
        """Encode what is left, flush both encoders and finish the file."""
        if len(self._pending):
            self._encode_samples(self._pending)  # a short last frame
            self._pending = self._pending[:0]
        self._mux(self._video.encode(None))
        self._mux(self._audio.encode(None))
        self._container.close()

    def _encode_samples(self, piece: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece[None, :]), format="fltp", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self.sample_rate)
        self.samples += len(piece)
        self._mux(self._audio.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._container.close()
