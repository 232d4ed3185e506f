"""Sliding windows over a long video, decoded as a stream: `WindowReader`.

Windows of `window` seconds start every `hop` seconds from the video's start
(`window_spans`); the last one ends at the end of the video, so it may be shorter. A
video shorter than one window is one window. Each window holds what one short clip
would give the model:

- `num_frames` frames at the centres of `num_frames` equal slices of the window (the
  frame on screen at that moment, as `read_frames` picks them for a clip), with the
  largest frontal face the OpenCV detector finds in each (`detect_largest_face` on the
  frame scaled to `detect_side` pixels: 320 by default, where faces are only counted,
  640 as for clips when the boxes become face crops);
- the audio of the window as 16 kHz mono float32 (channels averaged, resampled with
  soxr's streaming resampler), which the caller cuts into clips as for a clip file.

The video and the audio are each decoded once, forward, in two cursors over the file
(two containers), and only the frames and samples of the windows not yet handed out
are kept, so memory does not grow with the length of the video. Frames are looked up
on a sorted grid of target times shared by overlapping windows (with the default 4 s
window, 2 s hop and 8 frames, neighbouring windows share half their frames). Where the
demuxer's keyframe index lets a seek skip decoding, the video cursor seeks as
`read_frames` does; `first` starts at a later window (resuming).

Damage does not stop the stream; it is reported per window in `Window.problems`:
video packets that fail to decode, a stretch without video frames (no frame within
`max(1 s, 3 frame intervals)` of a target), video or audio data that ends before the
declared duration, a gap in the audio timestamps longer than `AUDIO_GAP_SECONDS`
(filled with silence), and audio packets that fail to decode. A file that cannot be
opened, or has neither a video nor an audio stream, raises a `MediaError` at once.
An audio-only file gives windows without frames.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import soxr

from nanoemox.media.container import DEFAULT_MAX_FILE_BYTES, check_file, first_stream, open_container
from nanoemox.media.errors import NoAudioStream, NoVideoStream, UnsupportedCodec, ZeroDuration
from nanoemox.media.faces import DETECT_MAX_SIDE, detect_largest_face
from nanoemox.media.video import (
    FrameCursor, advance, decode_stats, decoded_frames, keyframe_times, measured_span, should_seek, stream_span, to_rgb,
    video_stream,
)

logger = logging.getLogger(__name__)

COUNT_DETECT_SIDE = 320  # faces only counted: the detector searches the frame scaled to this (5x faster than 640)
AUDIO_GAP_SECONDS = 0.25  # a jump in audio timestamps longer than this is a gap (filled with silence)
ENDS_EARLY_SECONDS = 1.0  # data ending this much before the declared duration is reported


@dataclass
class Window:
    """One window's media. Times in seconds from the start of the video.

    `frames`: RGB uint8 [H, W, 3] per target (None without a video stream or where the
    video had no frame); `faces`: the largest detected face box (x, y, w, h) per frame or
    None; `waveform`: 16 kHz mono float32 of [start, end) (None without an audio stream),
    `audio_samples`: how many of its samples are decoded data (the rest is silence);
    `problems`: what was damaged or missing in this window; `targets`: the frame times
    asked for (`frame_targets`), one per entry of `frames`.
    """

    index: int
    start: float
    end: float
    frames: list[np.ndarray | None] | None
    frame_times: list[float | None]
    faces: list[tuple[int, int, int, int] | None]
    waveform: np.ndarray | None
    audio_samples: int
    problems: list[str] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)

    @property
    def faces_found(self) -> int:
        return sum(box is not None for box in self.faces)


def window_spans(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """(start, end) of every window over `duration` seconds; the last ends at `duration`."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got window={window} and hop={hop}")
    if duration <= 0:
        return []
    count = 1 if duration <= window else math.ceil(round((duration - window) / hop, 9)) + 1
    return [window_span(k, window, hop, duration) for k in range(count)]


def window_span(index: int, window: float, hop: float, duration: float = math.inf) -> tuple[float, float]:
    """(start, end) of window `index`: `index * hop` to `window` seconds later or the end of the video."""
    return round(index * hop, 6), round(min(index * hop + window, duration), 6)


def frame_targets(start: float, end: float, num_frames: int) -> list[float]:
    """Centres of `num_frames` equal slices of [start, end], rounded to microseconds (shared keys)."""
    return [round(start + (i + 0.5) * (end - start) / num_frames, 6) for i in range(num_frames)]


def missing_frames_problem(missing: list[float], gap: float) -> str:
    """A window's problem when no frame lies within `gap` seconds of its frame times `missing`."""
    span = f"{missing[0]:.2f} s" if len(missing) == 1 else f"{missing[0]:.2f}-{missing[-1]:.2f} s"
    return f"no video frame within {gap:.1f} s of {span}"


def detect_side(face_input: str) -> int:
    """The side frames are scaled to for face detection: as for clips where the boxes become
    face crops (`face_input="crops"`), smaller where faces are only counted."""
    return DETECT_MAX_SIDE if face_input == "crops" else COUNT_DETECT_SIDE


def _where(times: list[float | None]) -> str:
    known = sorted(t for t in times if t is not None)
    if not known:
        return "at an unknown time"
    return f"at {known[0]:.2f} s" if len(known) == 1 else f"between {known[0]:.2f} and {known[-1]:.2f} s"


class _VideoCursor:
    """The frames at a sorted list of target times, decoded forward once (seeking where it skips work)."""

    def __init__(self, container, stream, path: Path, origin: float, detect_side: int | None):
        self.container, self.stream, self.path, self.origin = container, stream, path, origin
        self.detect_side = detect_side
        self.stats = decode_stats(origin)
        self.keyframes = keyframe_times(stream)
        self.cursor = FrameCursor(decoded_frames(container, stream, path, self.stats, max_bad=None))
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        self.gap = max(1.0, 3.0 / rate)
        self._last = (None, None, None)  # (av frame, rgb, face box): a frame repeated across targets

    def at(self, target: float) -> tuple[np.ndarray | None, float | None, tuple | None, str | None]:
        """(frame, its time, face box, problem) for a target time relative to the video start.

        problem: None, "missing" (no frame within `gap` seconds of the target) or "ended"
        (the video data stopped before the target).
        """
        absolute = self.origin + target
        if should_seek(self.cursor, absolute, self.keyframes, self.origin):
            self.container.seek(int(absolute / self.stream.time_base), stream=self.stream, backward=True, any_frame=False)
            self.cursor = FrameCursor(decoded_frames(self.container, self.stream, self.path, self.stats, max_bad=None))
        frame = advance(self.cursor, absolute)
        if frame is None:
            return None, None, None, "ended"
        time = float(frame.time) - self.origin
        if frame is not self._last[0]:
            rgb, _ = to_rgb(frame)
            box = detect_largest_face(rgb, max_side=self.detect_side) if self.detect_side else None
            self._last = (frame, rgb, box)
        _, rgb, box = self._last
        if abs(target - time) > self.gap:
            return None, time, None, "ended" if self.cursor.ended and time < target else "missing"
        return rgb, time, box, None

    def bad_times(self) -> list[float | None]:
        """Times (relative to the video start) of packets that failed to decode and are not forgotten."""
        return [None if t is None else t - self.origin for t in self.stats.get("bad_times", [])]

    def forget_before(self, time: float) -> None:
        """Drop damaged packets before `time` and those without a time (they have been reported)."""
        self.stats["bad_times"] = [t for t in self.stats.get("bad_times", []) if t is not None and t - self.origin >= time]


class SampleBuffer:
    """Mono float32 samples from sample index `start` on, appended at the end and dropped from
    the front; each sample is marked as data (decoded or received) or as filled silence."""

    def __init__(self, start: int = 0):
        self.start = self.end = int(start)  # sample indices of the first and one past the last sample
        self.array = np.zeros(0, np.float32)
        self.data = np.zeros(0, bool)
        self.chunks: list[tuple[np.ndarray, bool]] = []  # appended since the last merge

    def append(self, samples: np.ndarray, data: bool) -> None:
        self.chunks.append((samples.astype(np.float32, copy=False), data))
        self.end += samples.size

    def restart(self, start: int) -> None:
        """Start over, empty, at sample index `start`."""
        self.__init__(start)

    def _merge(self) -> None:
        if self.chunks:
            self.array = np.concatenate([self.array] + [c for c, _ in self.chunks])
            self.data = np.concatenate([self.data] + [np.full(c.size, d) for c, d in self.chunks])
            self.chunks = []

    def take(self, first: int, last: int) -> tuple[np.ndarray, int]:
        """Samples [first, last) (silence outside what is held) and how many of them are data."""
        self._merge()
        out = np.zeros(last - first, np.float32)
        lo, hi = max(first, self.start), min(last, self.end)
        present = 0
        if hi > lo:
            out[lo - first : hi - first] = self.array[lo - self.start : hi - self.start]
            present = int(self.data[lo - self.start : hi - self.start].sum())
        return out, present

    def drop_before(self, index: int) -> None:
        """Forget the samples before sample index `index`."""
        self._merge()
        cut = min(index, self.end) - self.start
        if cut > 0:
            self.array, self.data = self.array[cut:], self.data[cut:]
            self.start += cut


class _AudioCursor:
    """16 kHz mono samples of the audio stream from a start time on, decoded forward once."""

    def __init__(self, container, stream, path: Path, origin: float, sample_rate: int, begin: float):
        self.container, self.stream, self.path, self.origin, self.rate = container, stream, path, origin, sample_rate
        if begin > 0:
            container.seek(int(max(origin + begin - 0.5, 0) / stream.time_base), stream=stream, backward=True)
        self.packets = container.demux(stream)
        self.converter = av.AudioResampler(format="fltp")  # sample format only; rate and layout unchanged
        self.resampler: soxr.ResampleStream | None = None
        self.source_rate: int | None = None
        self.samples = SampleBuffer(int(round(begin * sample_rate)))
        self.next_time: float | None = None  # source time where the next decoded frame should start
        self.started = False
        self.ended = False
        self.gaps: list[tuple[float, float]] = []
        self.bad: list[float | None] = []

    def _flush(self) -> None:
        if self.resampler is not None:
            self.samples.append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True), True)
            self.resampler = None

    def _frame(self, frame: av.AudioFrame) -> None:
        time = None if frame.time is None else float(frame.time) - self.origin
        rate = int(frame.sample_rate)
        if not self.started:
            self.started = True
            if time is not None:
                first = int(round(time * self.rate))
                if first > self.samples.end:  # audio starts after the window start: silence before it
                    self.samples.append(np.zeros(first - self.samples.end, np.float32), False)
                elif first < self.samples.start:  # decoded from before the start after a seek
                    self.samples.restart(first)
        elif time is not None and self.next_time is not None and time - self.next_time > AUDIO_GAP_SECONDS:
            self._flush()
            self.gaps.append((self.next_time, time))
            self.samples.append(np.zeros(max(int(round(time * self.rate)) - self.samples.end, 0), np.float32), False)
        if rate != self.source_rate:
            self._flush()
            self.source_rate = rate
        if self.resampler is None:
            self.resampler = soxr.ResampleStream(rate, self.rate, 1, dtype="float32", quality="HQ")
        for converted in self.converter.resample(frame):
            array = converted.to_ndarray().reshape(-1, converted.samples)  # [channels, samples]
            mono = np.ascontiguousarray(array.mean(axis=0) if array.shape[0] > 1 else array[0], dtype=np.float32)
            self.samples.append(self.resampler.resample_chunk(mono), True)
        start = time if time is not None else (self.next_time or 0.0)
        self.next_time = start + frame.samples / rate

    def fill(self, until: int) -> None:
        """Decode until the buffer reaches sample index `until` or the stream ends."""
        while not self.ended and self.samples.end < until:
            try:
                packet = next(self.packets)
            except StopIteration:
                self.ended = True
                break
            except av.error.FFmpegError:
                self.ended = True
                break
            try:
                frames = packet.decode()
            except av.error.DecoderNotFoundError:
                raise UnsupportedCodec(self.path, "no decoder for the audio codec") from None
            except (av.error.InvalidDataError, av.error.UndefinedError, av.error.PatchWelcomeError):
                self.bad.append(float(packet.pts * self.stream.time_base) - self.origin if packet.pts is not None else None)
                continue
            for frame in frames:
                self._frame(frame)
        if self.ended:
            self._flush()

    def take(self, start: float, end: float) -> tuple[np.ndarray, int]:
        """Samples of [start, end) (silence where there is no data) and how many are decoded data."""
        first, last = int(round(start * self.rate)), int(round(end * self.rate))
        self.fill(last)
        return self.samples.take(first, last)

    def drop_before(self, time: float) -> None:
        """Forget samples, gaps and damaged packets before `time` (no later window needs them)."""
        self.gaps = [(a, b) for a, b in self.gaps if b > time]
        self.bad = [t for t in self.bad if t is not None and t >= time]
        self.samples.drop_before(int(round(time * self.rate)))

    def decoded_until(self) -> float:
        """Time up to which samples exist (decoded data or filled gaps)."""
        return self.samples.end / self.rate


class WindowReader:
    """Windows of `window` seconds every `hop` seconds over one media file (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike,
        window: float = 4.0,
        hop: float = 2.0,
        num_frames: int = 8,
        sample_rate: int = 16000,
        max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        detect_faces: bool = True,
        detect_side: int = COUNT_DETECT_SIDE,
    ):
        self.path = check_file(path, max_bytes)
        self.window, self.hop, self.num_frames, self.sample_rate = float(window), float(hop), int(num_frames), int(sample_rate)
        self.max_bytes = max_bytes
        self.detect_side = detect_side if detect_faces else None
        with open_container(self.path, max_bytes) as container:
            self.has_video = self._has(container, "video")
            self.has_audio = self._has(container, "audio")
            if not (self.has_video or self.has_audio):
                raise ZeroDuration(self.path, "the file has neither a video nor an audio stream")
            main = video_stream(container, self.path) if self.has_video else first_stream(container, self.path, "audio")
            self.origin, duration = measured_span(container, main)
            self.audio_declared = None
            if self.has_audio:
                audio = container.streams.audio[0]
                a_start, a_duration = stream_span(container, audio)
                self.audio_declared = None if a_duration is None else a_start + a_duration - self.origin
        if duration <= 0:
            raise ZeroDuration(self.path, "the file's duration is zero")
        self.duration = float(duration)
        self.spans = window_spans(self.duration, self.window, self.hop)

    def _has(self, container, kind: str) -> bool:
        try:
            first_stream(container, self.path, kind)
        except (NoAudioStream, NoVideoStream):
            return False
        return True

    def __len__(self) -> int:
        return len(self.spans)

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames windows hold (upright, downscaled as they are taken), read from
        the first decodable frame; None without a video stream or without a decodable frame."""
        if not self.has_video:
            return None
        with open_container(self.path, self.max_bytes) as container:
            stream = container.streams.video[0]
            for frame in decoded_frames(container, stream, self.path, decode_stats(self.origin), max_bad=None):
                rgb, _ = to_rgb(frame)
                return int(rgb.shape[1]), int(rgb.shape[0])
        return None

    def windows(self, first: int = 0) -> Iterator[Window]:
        """Windows `first`, `first + 1`, ... in order (see the module docstring)."""
        spans = self.spans[first:]
        if not spans:
            return
        with open_container(self.path, self.max_bytes) as vfile, open_container(self.path, self.max_bytes) as afile:
            video = None
            if self.has_video:
                video = _VideoCursor(vfile, vfile.streams.video[0], self.path, self.origin, self.detect_side)
            audio = None
            if self.has_audio:
                audio = _AudioCursor(afile, afile.streams.audio[0], self.path, self.origin, self.sample_rate, spans[0][0])
            frames: dict[float, tuple] = {}  # target -> (rgb, time, box, problem), for windows not yet handed out
            pending = iter(sorted({t for s, e in spans for t in frame_targets(s, e, self.num_frames)}))
            for offset, (start, end) in enumerate(spans):
                targets = frame_targets(start, end, self.num_frames)
                window = Window(first + offset, start, end, None, [], [], None, 0, targets=targets)
                if video is not None:
                    try:
                        while targets[-1] not in frames:
                            target = next(pending)
                            frames[target] = video.at(target)
                    except av.error.DecoderNotFoundError:
                        raise UnsupportedCodec(self.path, "no decoder for the video codec") from None
                    chosen = [frames[t] for t in targets]
                    window.frames = [c[0] for c in chosen]
                    window.frame_times = [c[1] for c in chosen]
                    window.faces = [c[2] for c in chosen]
                    window.problems += self._frame_problems(targets, chosen, video)
                    # A damaged packet belongs to the windows it falls in (unknown times: the current one).
                    hits = [t for t in video.bad_times() if t is None or start <= t <= end]
                    if hits:
                        window.problems.append(f"{len(hits)} damaged video packet(s) {_where(hits)}")
                next_start = spans[offset + 1][0] if offset + 1 < len(spans) else math.inf
                if video is not None:
                    for t in [t for t in frames if t < next_start]:
                        del frames[t]
                    video.forget_before(next_start)
                if audio is not None:
                    window.waveform, window.audio_samples = audio.take(start, end)
                    window.problems += self._audio_problems(audio, start, end)
                    audio.drop_before(min(next_start, end))
                yield window

    def media_events(self, chunk_seconds: float = 0.1) -> Iterator[tuple[str, float, np.ndarray]]:
        """The file as a capture device would hand it over, in order of time: ("frame", time, RGB)
        for every decoded frame (upright and downscaled as windows take them) and ("audio",
        time, samples) for each `chunk_seconds` of 16 kHz mono audio (what windows take, gaps
        filled with silence), up to the duration. Times are those the windows use."""
        with open_container(self.path, self.max_bytes) as vfile, open_container(self.path, self.max_bytes) as afile:
            frames: Iterator[tuple[str, float, np.ndarray]] = iter(())
            if self.has_video:
                decoded = decoded_frames(vfile, vfile.streams.video[0], self.path, decode_stats(self.origin), max_bad=None)
                frames = (("frame", float(f.time) - self.origin, to_rgb(f)[0]) for f in decoded)
            chunks: Iterator[tuple[str, float, np.ndarray]] = iter(())
            if self.has_audio:
                audio = _AudioCursor(afile, afile.streams.audio[0], self.path, self.origin, self.sample_rate, 0.0)
                chunks = self._audio_chunks(audio, chunk_seconds)
            yield from heapq.merge(frames, chunks, key=lambda event: event[1])  # a frame first at equal times

    def _audio_chunks(self, audio: "_AudioCursor", seconds: float) -> Iterator[tuple[str, float, np.ndarray]]:
        step = int(round(seconds * self.sample_rate))
        total = int(round(self.duration * self.sample_rate))
        for first in range(0, total, step):
            start, end = first / self.sample_rate, min(first + step, total) / self.sample_rate
            samples, _ = audio.take(start, end)
            audio.drop_before(end)
            yield "audio", start, samples

    @staticmethod
    def _frame_problems(targets: list[float], chosen: list[tuple], video: _VideoCursor) -> list[str]:
        problems = []
        missing = [t for t, c in zip(targets, chosen) if c[3] == "missing"]
        if missing:
            problems.append(missing_frames_problem(missing, video.gap))
        if any(c[3] == "ended" for c in chosen):
            last = video.stats["data_end"] - video.origin
            problems.append(f"video data ends at {last:.2f} s")
        return problems

    def _audio_problems(self, audio: _AudioCursor, start: float, end: float) -> list[str]:
        problems = []
        gaps = [(a, b) for a, b in audio.gaps if a < end and b > start]
        if gaps:
            problems.append("audio gap " + ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in gaps))
        bad = [t for t in audio.bad if t is None or start <= t <= end]
        if bad:
            problems.append(f"{len(bad)} damaged audio packet(s) {_where(bad)}")
        declared = self.audio_declared
        reached = audio.decoded_until()
        if audio.ended and declared is not None and reached < min(end, declared) - ENDS_EARLY_SECONDS:
            problems.append(f"audio data ends at {reached:.2f} s of a declared {declared:.2f} s")
        return problems
