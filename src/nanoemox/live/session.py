"""One live session's windows and answers, apart from the transport (`LiveSession`).

Media arrive through `receive`; `due()` says which window to answer next: always the
newest one whose media are all in, so a model slower than real time skips the stale
windows in between instead of queueing them (`skipped` counts them). `pick` takes that
window's media where they arrive (cheap), `answer` runs the model on it (blocking: the
service runs it in its model pool) and `reply` writes an empathetic reply (ERG) to the
last window answered. Both go through the one window mechanism timelines use
(`nanoemox.inference.windows.WindowAnswerer`), so frames and speech clips that
consecutive answered windows share are encoded once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from nanoemox.live.protocol import AUDIO, FRAME, ProtocolError, audio_samples
from nanoemox.inference.people import DENSITY, PeopleAnswerer, reader_detects
from nanoemox.inference.windows import SPEECH_PLACEMENTS, WindowAnswerer, check_tasks
from nanoemox.media.live import FrameRefused, LiveLimits, LiveMedia, PickedWindow
from nanoemox.media.stream import detect_side, frame_targets
from nanoemox.tasks import DEFAULT_WINDOW_TASKS, EMOTION_TASK, SENTIMENT_TASK
from nanoemox.timeline.table import csv_columns, csv_row, csv_rows, csv_text

AUDIO_RATES = (8000, 48000)  # the sample rates a client may send (inclusive)
FRAMES_PER_TARGET = 2  # frames per second worth sending: twice the rate of a window's frame times


@dataclass
class LiveOptions:
    """What one session asks for (its `start` message), checked by `__post_init__` (ValueError)."""

    window: float = 4.0
    hop: float = 1.0
    tasks: tuple[str, ...] = DEFAULT_WINDOW_TASKS
    labels: list[str] | None = None
    video: bool = True
    audio: bool = True
    sample_rate: int = 16000
    detect_faces: bool = True
    share: bool = True  # encoder work shared between answered windows (`nanoemox.inference.windows`)
    speech_clips: str = "grid"  # where each window's speech clips start (`SpeechClips`)
    per_person: bool = False  # people found per window and answered per person (`nanoemox.inference.people`)

    def __post_init__(self) -> None:
        if not self.window > 0 or not self.hop > 0 or self.hop > self.window:
            raise ValueError(f"window and hop must be positive seconds with hop at most the window, "
                             f"got window={self.window}, hop={self.hop}")
        if not (self.video or self.audio):
            raise ValueError("a live session needs video, audio or both")
        if self.per_person and not self.video:
            raise ValueError("per_person finds people by their faces: it needs video")
        low, high = AUDIO_RATES
        if not low <= self.sample_rate <= high:
            raise ValueError(f"sample_rate must be between {low} and {high} Hz, got {self.sample_rate}")
        if self.speech_clips not in SPEECH_PLACEMENTS:
            raise ValueError(f"speech_clips must be one of {', '.join(SPEECH_PLACEMENTS)}, got {self.speech_clips!r}")
        self.tasks = check_tasks(self.tasks)


class LiveSession:
    """See the module docstring. Not thread-safe: `receive`, `due` and `pick` belong to the
    thread media arrive in; `answer` and `reply` run one at a time anywhere."""

    def __init__(self, predictor, options: LiveOptions, limits: LiveLimits | None = None):
        self.options, self.limits = options, limits or LiveLimits()
        media = predictor.processor.media
        # Per person: `DENSITY` times the frames, so that mouths can be followed (clients are asked for them).
        frames = media.num_frames * (DENSITY if options.per_person else 1)
        self.media = LiveMedia(options.window, options.hop, frames, video=options.video, audio=options.audio,
                               source_rate=options.sample_rate, sample_rate=media.sample_rate,
                               detect_faces=options.detect_faces and (reader_detects(media) if options.per_person else True),
                               detect_side=detect_side(media.face_input),
                               limits=self.limits)
        self.answerer = WindowAnswerer(predictor, options.tasks, options.labels, window=options.window,
                                       hop=options.hop, share=options.share, speech_clips=options.speech_clips)
        self.people = PeopleAnswerer(self.answerer, density=DENSITY) if options.per_person else None
        self.columns = csv_columns(options.tasks, self.answerer.labels if EMOTION_TASK in options.tasks else None,
                                   options.per_person)
        self.next_index = 0  # windows before this are answered or skipped
        self.newest = -1  # newest window whose media are all in
        self.ready_at: dict[int, float] = {}  # monotonic time at which a window became the newest ready one
        self.answered = self.skipped = 0

    def describe(self) -> dict[str, Any]:
        """The `ready` message's settings: what the session answers and how clients should send."""
        o = self.options
        labels = self.answerer.labels if EMOTION_TASK in o.tasks else None
        spacing = o.window / self.media.num_frames
        return {"window": o.window, "hop": o.hop, "tasks": list(o.tasks), "labels": labels,
                "sentiments": self.answerer.sentiments if SENTIMENT_TASK in o.tasks else None,
                "num_frames": self.media.num_frames, "frame_times": frame_targets(0.0, o.window, self.media.num_frames),
                "frame_rate": round(FRAMES_PER_TARGET / spacing, 3), "video": o.video, "audio": o.audio,
                "sample_rate": o.sample_rate, "columns": self.columns,
                "csv_header": csv_text([], self.columns, True), "per_person": o.per_person}

    def csv_line(self, result: dict[str, Any]) -> str:
        """A window's row of timeline.csv, as `nanoemox timeline` writes it (with its newline)."""
        rows = csv_rows(result, self.answerer.labels) if self.people is not None else [csv_row(result, self.answerer.labels)]
        return csv_text(rows, self.columns, False)

    # ------------------------------------------------------------------ media in

    def receive(self, kind: int, seconds: float, payload: bytes) -> bool:
        """Add one unpacked media message; False (nothing added) for media past the session's
        length limit, `ProtocolError` for a message that cannot be used."""
        if seconds > self.limits.max_seconds:
            return False
        try:
            if kind == FRAME:
                self.media.add_frame(seconds, payload)
            elif kind == AUDIO:
                self.media.add_audio(seconds, audio_samples(payload))
        except FrameRefused as exc:
            raise ProtocolError(str(exc), code="frame_refused") from None
        except ValueError as exc:
            raise ProtocolError(str(exc)) from None
        newest = self.media.newest_ready()
        if newest > self.newest:
            self.newest = newest
            self.ready_at[newest] = time.monotonic()
        return True

    # ------------------------------------------------------------------ answers

    def due(self) -> int | None:
        """The window to answer next (the newest ready one), or None when none is waiting."""
        return self.newest if self.newest >= self.next_index else None

    def pick(self, index: int) -> tuple[PickedWindow, int]:
        """(the window's media, how many stale windows were skipped before it); forgets what is older."""
        skipped = index - self.next_index
        self.skipped += skipped
        self.next_index = index + 1
        picked = self.media.pick(index)
        self.media.forget_before(index + 1)
        self.ready_at = {k: t for k, t in self.ready_at.items() if k >= index}
        return picked, skipped

    def answer(self, picked: PickedWindow) -> dict[str, Any]:
        """The window's result as a timeline gives it (blocking: decodes frames, runs the model)."""
        if self.people is not None:
            found = self.people.find(picked.media())
            result = self.people.window_result(found)
            result["frame_size"] = list(found.frame_size) if found.frame_size else None
        else:
            result = self.answerer.answer([self.answerer.prepare(picked.media())])[0]
        self.answered += 1
        return result

    def latency(self, index: int) -> float | None:
        """Seconds since window `index`'s media were all in."""
        ready = self.ready_at.get(index)
        return None if ready is None else round(time.monotonic() - ready, 4)

    def reply(self) -> dict[str, Any]:
        """An empathetic reply (ERG) to the last answered window (blocking)."""
        reply = self.answerer.reply()
        if reply is None:
            raise ProtocolError("no window has been answered yet: ask for a reply after the first answer",
                                code="no_window")
        return reply


def check_start(message: dict[str, Any]) -> LiveOptions:
    """The options of a `start` message; `ProtocolError` naming the field that is wrong."""
    known = {"type", "window", "hop", "tasks", "labels", "video", "audio", "sample_rate", "detect_faces", "per_person"}
    unknown = sorted(set(message) - known)
    if unknown:
        raise ProtocolError(f"unknown field(s) in the start message: {', '.join(unknown)}")
    fields: dict[str, Any] = {}
    for name, kind in (("window", float), ("hop", float), ("sample_rate", int)):
        if name in message:
            value = message[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ProtocolError(f"{name} must be a number, got {value!r}")
            if kind is int and value != int(value):
                raise ProtocolError(f"{name} must be a whole number, got {value!r}")
            fields[name] = kind(value)
    for name in ("video", "audio", "detect_faces", "per_person"):
        if name in message:
            if not isinstance(message[name], bool):
                raise ProtocolError(f"{name} must be true or false, got {message[name]!r}")
            fields[name] = message[name]
    for name in ("tasks", "labels"):
        if name in message and message[name] is not None:
            value = message[name]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise ProtocolError(f"{name} must be a non-empty list of names, got {value!r}")
            fields[name] = tuple(value) if name == "tasks" else [v.strip() for v in value]
    try:
        return LiveOptions(**fields)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None
