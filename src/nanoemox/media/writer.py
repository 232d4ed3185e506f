"""Writing video frames and audio samples into one file with PyAV: `MediaWriter`.

The package's one writer: the synthetic test media (media/synth.py) and the
SynthAffect corpus (data/synth/mux.py) both write through it, each with its own
stream settings.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np


class MediaWriter:
    """A media file written piece by piece: video frames and audio samples appended as they come.

    Add the streams first (`add_video_stream`, `add_audio_stream`: they return the PyAV
    stream for further settings), then append. Video frame i gets pts i unless a pts is
    given (in the stream's time base: variable frame rate). Audio is cut into the
    encoder's frame size with pts = sample index, so pieces appended one after another
    play as one continuous stream. Use it as a context manager: leaving the block flushes
    the encoders and closes the file (an error closes it unflushed).
    """

    def __init__(self, path: str | os.PathLike, *, format: str | None = None,
                 container_options: dict[str, str] | None = None):
        self.path = str(path)
        self.frames = 0    # video frames written so far
        self.samples = 0   # audio samples handed to the encoder so far
        self._container = av.open(self.path, mode="w", format=format, container_options=container_options)
        self._video = None
        self._audio = None
        self._pending = np.zeros((0, 0), dtype=np.float32)  # [channels, samples] waiting for a full encoder frame

    def add_video_stream(self, codec: str, fps: int | Fraction, width: int, height: int, *,
                         pix_fmt: str = "yuv420p") -> av.VideoStream:
        self._video = self._container.add_stream(codec, rate=fps)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, pix_fmt
        return self._video

    def add_audio_stream(self, codec: str, sample_rate: int, channels: int = 1) -> av.AudioStream:
        self._audio = self._container.add_stream(codec, rate=sample_rate)
        self._audio.layout = "mono" if channels == 1 else "stereo"
        self._pending = np.zeros((channels, 0), dtype=np.float32)
        return self._audio

    def add_frame(self, frame: av.VideoFrame | np.ndarray, pts: int | None = None) -> None:
        """Append one frame: an [H, W, 3] uint8 RGB array or a decoded `av.VideoFrame` (any pixel format)."""
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        else:
            # A fresh frame: a decoded one carries its picture type, which would force keyframes.
            planes = frame.to_ndarray(format="yuv420p", width=self._video.width, height=self._video.height)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = self.frames if pts is None else pts
        self.frames += 1
        self._mux(self._video.encode(frame))

    def add_audio(self, wave: np.ndarray) -> None:
        """Append samples, [S] (mono) or [channels, S], float in [-1, 1]; they follow the previous ones without a gap."""
        wave = np.asarray(wave, dtype=np.float32).reshape(len(self._pending), -1)
        self._pending = np.concatenate([self._pending, wave], axis=1)
        chunk = self._audio.codec_context.frame_size or 1024
        full = self._pending.shape[1] - self._pending.shape[1] % chunk
        for start in range(0, full, chunk):
            self._encode_samples(self._pending[:, start:start + chunk])
        self._pending = self._pending[:, full:]

    def close(self) -> None:
        """Encode what is left, flush the encoders and finish the file."""
        if self._pending.shape[1]:
            self._encode_samples(self._pending)  # a short last frame
            self._pending = self._pending[:, :0]
        for stream in (self._video, self._audio):
            if stream is not None:
                self._mux(stream.encode(None))
        self._container.close()

    def _encode_samples(self, piece: np.ndarray) -> None:
        """Encode [channels, n] float samples; converted first where the encoder takes another sample format."""
        layout = self._audio.layout.name
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="fltp", layout=layout)
        frame.sample_rate = self._audio.rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self._audio.rate)
        self.samples += piece.shape[1]
        encoder_format = self._audio.codec_context.format.name if self._audio.codec_context.format else "fltp"
        frames = [frame]
        if encoder_format != "fltp":  # e.g. 16-bit PCM and FLAC
            frames = av.AudioResampler(format=encoder_format, layout=layout, rate=self._audio.rate).resample(frame)
        for f in frames:
            self._mux(self._audio.encode(f))

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._container.close()
