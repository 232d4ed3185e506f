"""Synthetic media files for tests and benchmarks, written with PyAV (`media.writer.MediaWriter`).

The frames carry their own timestamp: frame brightness rises linearly from 0 at
the start of the clip to 255 at its end (`brightness_to_time` inverts it), and the
top-left quarter is a bright marker, so tests can tell which frame was sampled and
which way up it is. Tones are sine waves. Nothing here is used at training time.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from nanoemox.media.writer import MediaWriter

AUDIO_CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac", ".mp4": "aac", ".mkv": "aac"}


def frame_pattern(width: int, height: int, level: int) -> np.ndarray:
    """A uniform frame at gray `level` with a white top-left quarter marker -> uint8 [H, W, 3]."""
    img = np.full((height, width, 3), level, dtype=np.uint8)
    img[: max(1, height // 4), : max(1, width // 4)] = 255
    return img


def brightness_to_time(frame: np.ndarray, duration: float) -> float:
    """Read back the timestamp a `frame_pattern` frame encodes (its bottom-right quarter's level)."""
    h, w = frame.shape[:2]
    return float(frame[h // 2 :, w // 2 :].mean()) / 255.0 * duration


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """A sine tone, float32 [channels, samples]; channel k is scaled by 1/(k+1) to tell them apart."""
    t = np.arange(int(round(seconds * rate)), dtype=np.float64) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([wave / (k + 1) for k in range(channels)]).astype(np.float32)


def write_audio(path: str | os.PathLike, seconds: float, rate: int = 16000, channels: int = 1, freq: float = 440.0) -> Path:
    """Write a tone to an audio file; the codec follows the extension (wav, flac, mp3, m4a)."""
    path = Path(path)
    codec = AUDIO_CODECS[path.suffix.lower()]
    with MediaWriter(path) as writer:
        writer.add_audio_stream(codec, rate, channels)
        writer.add_audio(tone(seconds, rate, channels, freq))
    return path


def write_video(
    path: str | os.PathLike,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (64, 48),
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    rotation: int = 0,
    frame_times: Sequence[float] | None = None,
    audio_rate: int | None = None,
    audio_channels: int = 1,
    levels: int = 64,
    texture: bool = False,
) -> Path:
    """Write a clip of `frame_pattern` frames (+ an optional tone track).

    `size` is (width, height); `frame_times` gives explicit timestamps (variable frame
    rate); `rotation` sets the display matrix (counter-clockwise degrees); `gop` is the
    keyframe interval in frames; `levels` distinct frame images are reused cyclically
    in brightness order so long clips stay cheap to generate. `texture` adds moving
    noise so every frame differs from the last (realistic decode cost per frame).
    """
    path = Path(path)
    width, height = size
    times = list(frame_times) if frame_times is not None else [i / fps for i in range(int(round(seconds * fps)))]
    seconds = max(seconds, times[-1] + 1 / fps) if times else seconds
    with MediaWriter(path) as writer:
        vs = writer.add_video_stream(codec, fps, width, height, pix_fmt=pix_fmt)
        tb = Fraction(1, 1000) if frame_times is not None else Fraction(1, fps)
        vs.time_base = vs.codec_context.time_base = tb
        if codec == "libx264":
            vs.options = {"preset": "ultrafast", "tune": "zerolatency"} if frame_times is None else {"preset": "ultrafast"}
        if gop is not None:
            vs.codec_context.gop_size = gop
        if rotation:
            vs.set_display_rotation(rotation)
        if audio_rate:
            writer.add_audio_stream("aac", audio_rate, audio_channels)
        cache: dict[int, np.ndarray] = {}
        noise = np.random.default_rng(0).integers(0, 16, (25, height, width, 1), dtype=np.uint8) if texture else None
        for i, t in enumerate(times):
            level = min(255, int(255 * t / seconds))
            key = level * levels // 256
            if key not in cache:
                cache[key] = frame_pattern(width, height, level)
            image = cache[key] if noise is None else cache[key] // 2 + noise[i % len(noise)]
            writer.add_frame(image, pts=int(round(t * 1000)) if frame_times is not None else i)
        if audio_rate:
            writer.add_audio(tone(seconds, audio_rate, audio_channels))
    return path


def face_image(width: int, height: int, center: tuple[int, int], size: int, background: int = 90) -> np.ndarray:
    """A drawn frontal face (oval, eyes, brows, nose, mouth) that OpenCV's Haar cascade detects.

    `size` is roughly the face height over 1.1; returns uint8 RGB [height, width, 3].
    """
    import cv2  # local: only the face tests need it

    img = np.full((height, width), background, np.uint8)
    cx, cy = center
    cv2.ellipse(img, (cx, cy), (int(size * 0.42), int(size * 0.55)), 0, 0, 360, 200, -1)
    eye_y, eye_dx = int(cy - size * 0.12), int(size * 0.18)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        cv2.ellipse(img, (ex, eye_y), (int(size * 0.09), int(size * 0.04)), 0, 0, 360, 40, -1)
        brow_y = eye_y - int(size * 0.1)
        cv2.line(img, (ex - int(size * 0.1), brow_y), (ex + int(size * 0.1), brow_y), 60, max(1, int(size * 0.03)))
    cv2.line(img, (cx, eye_y + int(size * 0.05)), (cx, int(cy + size * 0.12)), 150, max(1, int(size * 0.03)))
    cv2.ellipse(img, (cx, int(cy + size * 0.27)), (int(size * 0.15), int(size * 0.04)), 0, 0, 360, 70, -1)
    img = cv2.GaussianBlur(img, (0, 0), size * 0.02)
    return np.repeat(img[:, :, None], 3, axis=2)
