"""Windows of media received live: frames and audio chunks in, `Window`s out (`LiveMedia`).

A live client sends what it captures, each piece stamped with its time in seconds from
the start of the session: frames as encoded images (JPEG, PNG or WebP), audio as mono
float32 chunks at the session's sample rate (the time of a chunk is that of its first
sample). Window k spans [k * hop, k * hop + window), as a timeline's windows do
(`nanoemox.media.stream.window_spans`; live windows are all full length), and holds what
a timeline's window holds (`nanoemox.media.stream.Window`):

- the frame on screen at each of the window's frame times (`frame_targets`): the latest
  frame at or before the time, the first frame where none is before it; none within
  `FRAME_GAP_SECONDS` of the time is a problem of the window, as in a timeline;
- the largest face the detector finds in each (`detect_largest_face` at `detect_side`);
- the audio of the window as 16 kHz mono float32 (other rates are resampled with soxr's
  streaming resampler). A jump in the chunks' times of more than `AUDIO_GAP_SECONDS` is
  filled with silence, which does not count as audio data (`Window.audio_samples`).

A window is ready once every announced stream has reached its end: the video when a frame
after its last frame time has arrived, the audio when its samples are in. A stream that
lags the other by more than `STALLED_SECONDS` no longer holds windows back: they are made
without it (and say so in their problems).

Frames are kept as the bytes received, checked on arrival (`FrameRefused` for one that is
too large or not an image; one closer than `1 / max_fps` s to the previous is dropped and
counted) and decoded only when a window picks them; whatever no window
from `forget_before` on can use is dropped, so memory does not grow with the session.
"""

from __future__ import annotations

import bisect
import io
import math
from dataclasses import dataclass

import cv2
import numpy as np
import soxr
from PIL import Image, UnidentifiedImageError

from nanoemox.media.faces import detect_largest_face
from nanoemox.media.stream import (
    AUDIO_GAP_SECONDS, SampleBuffer, Window, frame_targets, missing_frames_problem, window_span,
)
from nanoemox.media.video import downscaled_size

FRAME_FORMATS = ("JPEG", "PNG", "WEBP")
FRAME_GAP_SECONDS = 1.0  # no frame this close to a frame time: the window has a problem (a timeline's rule)
STALLED_SECONDS = 2.0  # a stream this far behind the other no longer holds windows back


@dataclass(frozen=True)
class LiveLimits:
    """Bounds on one live session's media; the one place their defaults are stated (the
    service's settings and `nanoemox serve` options start from these)."""

    max_frame_bytes: int = 2 * 1024 * 1024  # one encoded frame
    max_frame_side: int = 4096  # pixels on the longer side of a frame
    max_fps: float = 60.0  # frames closer together than 1 / this are dropped
    max_seconds: float = 3600.0  # media past this time (and sessions longer than this) end


class FrameRefused(ValueError):
    """A received frame that cannot be used: too large, not an image of a known format, or out of order."""


@dataclass
class _Frame:
    time: float
    payload: bytes
    rgb: np.ndarray | None = None
    box: tuple | None = None
    problem: str | None = None

    @property
    def decoded(self) -> bool:
        """Decoded already: into `rgb`, or into the `problem` of bytes that are no image."""
        return self.rgb is not None or self.problem is not None


class LiveMedia:
    """The media of one live session and its windows (see the module docstring)."""

    def __init__(self, window: float, hop: float, num_frames: int, *, video: bool = True, audio: bool = True,
                 source_rate: int = 16000, sample_rate: int = 16000, detect_faces: bool = True,
                 detect_side: int = 320, limits: LiveLimits = LiveLimits()):
        if not (video or audio):
            raise ValueError("a live session needs video, audio or both")
        self.window, self.hop, self.num_frames = float(window), float(hop), int(num_frames)
        self.video, self.audio = bool(video), bool(audio)
        self.source_rate, self.sample_rate = int(source_rate), int(sample_rate)
        self.detect_side = detect_side if detect_faces else None
        self.max_frame_bytes, self.max_frame_side = int(limits.max_frame_bytes), int(limits.max_frame_side)
        self.min_frame_spacing = 1.0 / limits.max_fps  # closer frames are dropped (`dropped_frames`)
        self.dropped_frames = 0
        self.frames: list[_Frame] = []
        self.frame_times: list[float] = []  # parallel to frames, for bisect
        self.samples = SampleBuffer(0)
        self.resampler = None if self.source_rate == self.sample_rate else self._new_resampler()
        self.next_audio_time: float | None = None  # where the next chunk should start (source time)

    def _new_resampler(self):
        return soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32", quality="HQ")

    # ------------------------------------------------------------------ receiving

    def add_frame(self, time: float, payload: bytes) -> None:
        """Keep one encoded frame shown at `time`; `FrameRefused` says why one cannot be kept."""
        if not self.video:
            raise FrameRefused("a frame arrived but the session was started without video")
        if len(payload) > self.max_frame_bytes:
            raise FrameRefused(f"a frame of {len(payload)} bytes is larger than the limit of {self.max_frame_bytes} bytes")
        if self.frames and time < self.frames[-1].time:
            raise FrameRefused(f"frame times must not go back: {time:.3f} s after {self.frames[-1].time:.3f} s")
        if self.frames and time - self.frames[-1].time < self.min_frame_spacing - 1e-9:
            self.dropped_frames += 1  # faster than the frame-rate limit
            return
        try:
            with Image.open(io.BytesIO(payload)) as image:  # reads the header only
                kind, (width, height) = image.format, image.size
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise FrameRefused(f"the frame at {time:.3f} s is not an image ({exc})") from None
        if kind not in FRAME_FORMATS:
            raise FrameRefused(f"the frame at {time:.3f} s is {kind}; send {', '.join(FRAME_FORMATS)}")
        if max(width, height) > self.max_frame_side:
            raise FrameRefused(f"a frame of {width}x{height} pixels is larger than the limit of "
                               f"{self.max_frame_side} pixels a side")
        self.frames.append(_Frame(time, bytes(payload)))
        self.frame_times.append(time)

    def add_audio(self, time: float, samples: np.ndarray) -> None:
        """Append one mono chunk at the source rate whose first sample is at `time`."""
        if not self.audio:
            raise ValueError("audio arrived but the session was started without audio")
        samples = np.asarray(samples, np.float32)
        if not np.isfinite(samples).all():
            raise ValueError(f"the audio chunk at {time:.3f} s holds values that are not finite numbers")
        if self.next_audio_time is None or time - self.next_audio_time > AUDIO_GAP_SECONDS:
            # the first chunk, or one after a gap: silence up to its time
            self._flush()
            first = int(round(time * self.sample_rate))
            if first - self.samples.end > self.window * self.sample_rate:  # a long gap: start over there
                self.samples.restart(first)  # (what lies before it reads as silence, not as data)
            elif first > self.samples.end:
                self.samples.append(np.zeros(first - self.samples.end, np.float32), False)
            self.next_audio_time = time
        self.samples.append(self.resampler.resample_chunk(samples) if self.resampler is not None else samples, True)
        self.next_audio_time += samples.size / self.source_rate

    def _flush(self) -> None:
        if self.resampler is not None and self.next_audio_time is not None:
            self.samples.append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True), True)
            self.resampler = self._new_resampler()

    # ------------------------------------------------------------------ windows

    def span(self, index: int) -> tuple[float, float]:
        return window_span(index, self.window, self.hop)

    def _video_reach(self) -> float:
        """Every frame time before this is settled (a later frame has arrived)."""
        return self.frame_times[-1] if self.frame_times else -math.inf

    def _audio_reach(self) -> float:
        return self.samples.end / self.sample_rate if self.next_audio_time is not None else -math.inf

    def newest_ready(self) -> int:
        """Index of the newest window whose media are all in; -1 when none is."""
        reaches = []
        if self.video:
            reaches.append(("video", self._video_reach()))
        if self.audio:
            reaches.append(("audio", self._audio_reach()))
        lead = max(r for _, r in reaches)
        if lead == -math.inf:
            return -1
        live = [(kind, r) for kind, r in reaches if lead - r <= STALLED_SECONDS]  # stalled streams wait no more
        k = max(int(math.floor((lead - self.window) / self.hop + 1e-9)) + 1, 0)
        for index in range(k, -1, -1):
            start, end = self.span(index)
            last_target = frame_targets(start, end, self.num_frames)[-1]
            if all((r > last_target) if kind == "video" else (r >= end - 1e-9) for kind, r in live):
                return index
        return -1

    def pick(self, index: int) -> "PickedWindow":
        """What window `index` is made of: the frames on screen at its frame times and a copy of its
        audio. Cheap; call it where media arrive. `PickedWindow.media()` then decodes, anywhere."""
        start, end = self.span(index)
        picked = PickedWindow(index, start, end, frame_targets(start, end, self.num_frames), None, None, 0, self.detect_side)
        if self.video:
            picked.frames = [self._on_screen(t) for t in picked.targets]
        if self.audio:
            picked.waveform, picked.audio_samples = self.samples.take(int(round(start * self.sample_rate)),
                                                                      int(round(end * self.sample_rate)))
        return picked

    def _on_screen(self, target: float) -> _Frame | None:
        if not self.frames:
            return None
        at = bisect.bisect_right(self.frame_times, target) - 1
        return self.frames[max(at, 0)]

    def forget_before(self, index: int) -> None:
        """Drop what no window from `index` on can use (the frame on screen at its start is kept)."""
        start = self.span(index)[0]
        keep = max(bisect.bisect_right(self.frame_times, start) - 1, 0)
        if keep:
            del self.frames[:keep], self.frame_times[:keep]
        self.samples.drop_before(int(round(start * self.sample_rate)))

    def held_bytes(self) -> int:
        """Bytes of media held now (frames as received or decoded, and audio samples)."""
        frames = sum(len(f.payload) + (f.rgb.nbytes if f.rgb is not None else 0) for f in self.frames)
        return frames + (self.samples.end - self.samples.start) * 4


@dataclass
class PickedWindow:
    """One window's frames (as received, decoded on demand) and audio; `media()` makes its `Window`."""

    index: int
    start: float
    end: float
    targets: list[float]
    frames: list[_Frame | None] | None  # None: the session has no video
    waveform: np.ndarray | None
    audio_samples: int
    detect_side: int | None

    def media(self) -> Window:
        window = Window(self.index, self.start, self.end, None, [], [], self.waveform, self.audio_samples,
                        targets=list(self.targets))
        if self.frames is None:
            return window
        window.frames = []
        missing = []
        for target, frame in zip(self.targets, self.frames):
            usable = frame is not None and abs(frame.time - target) <= FRAME_GAP_SECONDS
            if usable:
                _decode(frame, self.detect_side)
                if frame.problem:
                    if frame.problem not in window.problems:
                        window.problems.append(frame.problem)
                    usable = False
            elif frame is None or not frame.problem:
                missing.append(target)
            window.frames.append(frame.rgb if usable else None)
            window.frame_times.append(frame.time if frame is not None else None)
            window.faces.append(frame.box if usable else None)
        if missing:
            window.problems.append(missing_frames_problem(missing, FRAME_GAP_SECONDS))
        return window


def _decode(frame: _Frame, detect_side: int | None) -> None:
    """Decode a received frame once (RGB, downscaled as a file's frames are) and find its face."""
    if frame.decoded:
        return
    try:
        with Image.open(io.BytesIO(frame.payload)) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        frame.problem = f"the frame at {frame.time:.3f} s could not be decoded ({exc})"
        return
    size = downscaled_size(rgb.shape[1], rgb.shape[0])
    if size is not None:  # as a video file's frames are downscaled (`nanoemox.media.video.to_rgb`)
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    frame.box = detect_largest_face(rgb, max_side=detect_side) if detect_side else None
    frame.rgb = np.ascontiguousarray(rgb)
    frame.payload = b""  # decoded: the bytes are no longer needed
