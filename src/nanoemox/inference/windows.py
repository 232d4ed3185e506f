"""The model's answers for the windows of a long video or a live stream (`WindowAnswerer`).

One mechanism serves `nanoemox timeline`, `/v1/timeline` and live sessions: they hand it
windows (`nanoemox.media.stream.Window`, from a file's `WindowReader` or a live
session's `LiveMedia`) and get one JSON-ready result per window (`result_of`).

Preparing (`WindowAnswerer.prepare`, safe in a background thread): a window is prepared
as a short clip is (`nanoemox.media.pipeline`), but piece by piece. Each sampled frame
(`FramePiece`) becomes a scene image and a face image (the crop of the reader's face box,
a missing box filled from the nearest frame of the same window as for clips, or the
scene square where the window holds no face); the audio becomes the processor's number
of speech clips (`ClipPiece`, `SpeechClips` says where they start); the text is the
subtitle lines that overlap the window. Pixels are computed only for pieces the encoders
have not seen.

Sharing encoder work (`FeatureMemory`): neighbouring windows hold many of the same
frames and, with grid-placed clips, the same speech clips. Each piece has a key made of
what decides its encoder input (a frame: the frame time it was taken for and the time of
the frame shown then, plus the face box its crop uses; a clip: its start in seconds, its
valid samples and a digest of its samples), and its features are computed
once and reused by every window that holds it. After each answer, pieces earlier than the
next window's start are forgotten (no window still to come holds them), so memory does
not grow with the length of the video. `share=False` encodes every window whole, as
before sharing. The answers are the same, since the encoders read each frame and clip on
its own: exactly in float32; in bfloat16 an encoder's rounding depends slightly on how
many pieces share its call, which moved the paper preset's probabilities by up to 0.007
(docs/timeline.md, "Shared encoder work").

Answering: MER and MSA are scored over their labels (closed-set probabilities: the
softmax of each label's total log-likelihood) and OV-MER is generated, all from one
shared prompt prefix per window (`Predictor.answer_shared`); `reply` writes an empathetic
reply (ERG) to the last answered window from its kept features.

A window whose media were damaged (`Window.problems`) gets no answer: its result holds
`error` and the media flags only, and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from nanoemox.inference.common import candidate_labels
from nanoemox.inference.prefetch import prefetched
from nanoemox.media.audio import clip_starts, cut_clips, normalize_clips
from nanoemox.media.faces import fill_missing
from nanoemox.media.pipeline import MediaConfig, frames_to_images
from nanoemox.media.stream import Window, frame_targets
from nanoemox.model.nanoemox import MediaFeatures
from nanoemox.tasks import EMOTION_TASK, REPLY_TASK, SENTIMENTS, TIMELINE_TASKS, default_candidates, get_task

logger = logging.getLogger(__name__)

SPEECH_PLACEMENTS = ("grid", "window")
BLANK = math.inf  # the time of pieces that stand for no media (kept: every window without video or audio uses them)


def check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """The tasks in order without repeats; ValueError unless they are a non-empty subset of TIMELINE_TASKS."""
    unknown = [t for t in tasks if t not in TIMELINE_TASKS]
    if unknown or not tasks:
        raise ValueError(f"timeline tasks must be a non-empty subset of {', '.join(TIMELINE_TASKS)}; got {list(tasks)}")
    return tuple(dict.fromkeys(tasks))


# ---------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class SpeechClips:
    """Where a window's speech clips start.

    `window`: today's per-window placement, as for a clip file (`clip_starts`: the first
    clip starts at the window's start, the last ends at its end, evenly spaced). `grid`:
    the same number of clips, evenly spaced by `hop / m` (m the smallest whole number
    that keeps them inside the window) and centred in it, so that clip starts fall on one
    grid for all windows and overlapping windows share clips. With the default 4 s window,
    8 clips of 2 s and a 2 s hop the two are the same; with a 1 s hop the grid's spacing
    is 0.25 s (instead of 0.286 s) and each window shares 4 of its 8 clips with the one
    before. Windows shorter than `window` (a video's last one) and settings where no grid
    fits use the window placement.
    """

    window: float
    hop: float
    placement: str = "grid"

    def __post_init__(self) -> None:
        if self.placement not in SPEECH_PLACEMENTS:
            raise ValueError(f"speech clip placement must be one of {', '.join(SPEECH_PLACEMENTS)}, got {self.placement!r}")

    def spacing(self, cfg: MediaConfig) -> float | None:
        """The grid's spacing in seconds, or None where the window placement applies."""
        room = self.window - cfg.clip_seconds
        if self.placement != "grid" or cfg.num_clips < 2 or room <= 0:
            return None
        per_hop = math.ceil(round(self.hop * (cfg.num_clips - 1) / room, 9))
        return self.hop / per_hop

    def starts(self, window: Window, cfg: MediaConfig) -> np.ndarray:
        """First sample of each clip, counted from the start of the window's waveform."""
        rate, total = cfg.sample_rate, window.waveform.size
        spacing = self.spacing(cfg)
        if spacing is None or window.end - window.start < self.window - 1e-6:
            return clip_starts(total, cfg.clip_samples, cfg.num_clips)
        offset = (self.window - cfg.clip_seconds - (cfg.num_clips - 1) * spacing) / 2
        first = round(window.start / spacing)  # grid index of the window's start (the start is a whole number of hops)
        origin = int(round(window.start * rate))
        starts = [int(round(((first + i) * spacing + offset) * rate)) - origin for i in range(cfg.num_clips)]
        return np.clip(np.asarray(starts, np.int64), 0, max(total - cfg.clip_samples, 0))


@dataclass
class FramePiece:
    """One sampled frame of a window: the RGB frame (None: the window has no video), its time,
    and the face box its crop uses (after filling from neighbours; None: the full frame)."""

    target: float
    time: float | None
    rgb: np.ndarray | None
    box: tuple | None
    _pixels: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def scene_key(self) -> tuple:
        return (BLANK, None) if self.rgb is None else (self.target, self.time)

    def face_key(self) -> tuple:
        return (BLANK, None, None) if self.rgb is None else (self.target, self.time, self.box)

    def pixels(self, cfg: MediaConfig) -> tuple[np.ndarray, np.ndarray]:
        """(scene pixels [3, S, S], face pixels [3, S, S]), normalised as `frames_to_images` makes them
        (computed once per piece)."""
        if self._pixels is None:
            self._pixels = self._make_pixels(cfg)
        return self._pixels

    def _make_pixels(self, cfg: MediaConfig) -> tuple[np.ndarray, np.ndarray]:
        if self.rgb is None:
            blank = np.zeros((3, cfg.image_size, cfg.image_size), np.float32)
            return blank, blank
        scene, face, _ = frames_to_images([self.rgb], cfg, boxes=[self.box])  # the box is already filled
        return scene[0], face[0]


@dataclass
class ClipPiece:
    """One normalised speech clip [clip_samples] and its key (first sample, valid samples, digest)."""

    key: tuple
    samples: np.ndarray


def frame_pieces(window: Window, cfg: MediaConfig) -> list[FramePiece]:
    """The window's frames as pieces; blank ones where the window has no video."""
    if window.frames is None:
        return [FramePiece(i, None, None, None) for i in range(cfg.num_frames)]
    boxes = [None] * len(window.frames)
    if cfg.face_input != "frames":
        boxes = [None if b is None else tuple(int(v) for v in b) for b in fill_missing(list(window.faces))]
    targets = window.targets
    if len(targets) != len(window.frames):  # a window made by hand: the reader's frame times
        targets = frame_targets(window.start, window.end, len(window.frames))
    return [FramePiece(t, ft, rgb, box) for t, ft, rgb, box in zip(targets, window.frame_times, window.frames, boxes)]


def clip_pieces(window: Window, cfg: MediaConfig, speech: SpeechClips | None) -> list[ClipPiece]:
    """The window's speech clips, cut at `speech`'s starts (the window placement without it); silence without audio."""
    clip = cfg.clip_samples
    if window.waveform is None or window.audio_samples <= 0:
        silence = np.zeros(clip, np.float32)
        return [ClipPiece((BLANK, 0, "silence"), silence) for _ in range(cfg.num_clips)]
    waveform = window.waveform
    starts = speech.starts(window, cfg) if speech is not None else clip_starts(waveform.size, clip, cfg.num_clips)
    clips, valid = cut_clips(waveform, clip, starts)
    origin = int(round(window.start * cfg.sample_rate))
    pieces = []
    for s, n, samples in zip(starts, valid, normalize_clips(clips, valid)):
        digest = hashlib.blake2b(samples.tobytes(), digest_size=16).hexdigest()
        pieces.append(ClipPiece(((origin + int(s)) / cfg.sample_rate, int(n), digest), samples))
    return pieces


@dataclass
class Prepared:
    """A window, its text and media flags, and its pieces (None when it cannot be answered)."""

    window: Window
    text: str | None
    video_present: bool
    audio_present: bool
    config: MediaConfig
    frames: list[FramePiece] | None = None
    clips: list[ClipPiece] | None = None
    _arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def answerable(self) -> bool:
        return self.frames is not None

    @property
    def arrays(self) -> dict[str, np.ndarray] | None:
        """The whole window's model inputs (numpy, unbatched), as a short clip's; None when not answerable."""
        if self.frames is None:
            return None
        if self._arrays is None:
            pixels = [piece.pixels(self.config) for piece in self.frames]
            self._arrays = {"pixel_values": np.stack([p[0] for p in pixels]),
                            "face_pixel_values": np.stack([p[1] for p in pixels]),
                            "audio_values": np.stack([c.samples for c in self.clips])}
        return self._arrays

    def forget_arrays(self) -> None:
        """Drop the whole-window arrays made by `arrays` (they are made again if asked for)."""
        self._arrays = None


def prepare(window: Window, cfg: MediaConfig, subtitles=None, speech: SpeechClips | None = None) -> Prepared:
    """A window's pieces (see the module docstring); `speech` None: the window placement of clips."""
    text = subtitles.between(window.start, window.end) if subtitles is not None else None
    video_present = window.frames is not None
    audio_present = window.waveform is not None and window.audio_samples > 0
    prepared = Prepared(window, text, video_present, audio_present, cfg)
    if not window.problems:
        prepared.frames = frame_pieces(window, cfg)
        prepared.clips = clip_pieces(window, cfg, speech)
    return prepared


# ---------------------------------------------------------------------- shared features


class FeatureMemory:
    """Encoder outputs per piece key (see the module docstring), on the session's device.

    `scene[key]` = (CLS [D_v], taps [L, D_v]); `face[key]` = [D_f]; `speech[key]` =
    (clip vector [D_a], taps [L, D_a]). Every key starts with the piece's time in seconds;
    `forget_before(t)` drops the pieces before `t`.
    """

    def __init__(self) -> None:
        self.scene: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.face: dict[tuple, torch.Tensor] = {}
        self.speech: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.scene) + len(self.face) + len(self.speech)

    def forget_before(self, time: float) -> None:
        for table in (self.scene, self.face, self.speech):
            for key in [k for k in table if k[0] < time - 1e-9]:
                del table[key]

    def fill(self, session, ready: Sequence[Prepared]) -> dict[str, int]:
        """Encode the pieces of `ready` that are not held yet, each once, in one call per encoder;
        returns how many pieces each encoder read."""
        cfg = ready[0].config
        frames: dict[tuple, FramePiece] = {}
        faces: dict[tuple, FramePiece] = {}
        clips: dict[tuple, ClipPiece] = {}
        for prepared in ready:
            for piece in prepared.frames:
                if piece.scene_key() not in self.scene:
                    frames.setdefault(piece.scene_key(), piece)
                if piece.face_key() not in self.face:
                    faces.setdefault(piece.face_key(), piece)
            for clip in prepared.clips:
                if clip.key not in self.speech:
                    clips.setdefault(clip.key, clip)
        if frames:
            pixels = torch.from_numpy(np.stack([piece.pixels(cfg)[0] for piece in frames.values()]))
            cls, taps = session.encode_frames(pixels)  # [N, D], [L, N, D]
            self.scene.update({key: (cls[n], taps[:, n]) for n, key in enumerate(frames)})
        if faces:
            pixels = torch.from_numpy(np.stack([piece.pixels(cfg)[1] for piece in faces.values()]))
            vectors = session.encode_faces(pixels)  # [N, D_f]
            self.face.update({key: vectors[n] for n, key in enumerate(faces)})
        if clips:
            vectors, taps = session.encode_clips(torch.from_numpy(np.stack([c.samples for c in clips.values()])))
            self.speech.update({key: (vectors[n], taps[:, n]) for n, key in enumerate(clips)})
        return {"scene": len(frames), "face": len(faces), "speech": len(clips)}

    def features(self, ready: Sequence[Prepared]) -> MediaFeatures:
        """The windows' encoder outputs [B, ...], assembled from held pieces (call `fill` first)."""
        scene = [[self.scene[piece.scene_key()] for piece in p.frames] for p in ready]
        speech = [[self.speech[clip.key] for clip in p.clips] for p in ready]
        return MediaFeatures(
            scene_cls=torch.stack([torch.stack([s[0] for s in row]) for row in scene]),  # [B, F, D_v]
            scene_taps=torch.stack([torch.stack([s[1] for s in row], dim=1) for row in scene], dim=1),  # [L, B, F, D_v]
            speech_clips=torch.stack([torch.stack([s[0] for s in row]) for row in speech]),  # [B, C, D_a]
            speech_taps=torch.stack([torch.stack([s[1] for s in row], dim=1) for row in speech], dim=1),  # [L, B, C, D_a]
            face_frames=torch.stack([torch.stack([self.face[piece.face_key()] for piece in p.frames]) for p in ready]),
        )


# ---------------------------------------------------------------------- answering


class WindowAnswerer:
    """Prepares and answers windows with one predictor (see the module docstring).

    `window` and `hop` are the stream's window layout (for grid-placed speech clips and for
    forgetting); `share` turns the shared encoder work on (the default) or off;
    `speech_clips` is "grid" (default) or "window" (`SpeechClips`).
    """

    def __init__(self, predictor, tasks: Sequence[str], labels: Sequence[str] | None = None, *,
                 window: float = 4.0, hop: float = 2.0, share: bool = True, speech_clips: str = "grid"):
        self.predictor = predictor
        self.session = predictor.session
        self.config: MediaConfig = predictor.processor.media
        self.tasks = list(check_tasks(tasks))
        self.labels = candidate_labels(labels or default_candidates(EMOTION_TASK))  # the emotion task's labels
        self.sentiments = list(SENTIMENTS)
        self.hop, self.share = float(hop), bool(share)
        self.speech = SpeechClips(float(window), float(hop), speech_clips)
        self.memory = FeatureMemory()
        self.encoded = {"scene": 0, "face": 0, "speech": 0}  # pieces each encoder read
        self.encoder_seconds = 0.0  # wall time in the encoders (and in preparing pixels not prepared ahead)
        self._prepared_until = -math.inf  # the latest frame time `prepare` has made pixels for
        self.last: tuple[Prepared, MediaFeatures] | None = None  # the last answered window (for `reply`)

    def prepare(self, window: Window, subtitles=None) -> Prepared:
        """A window's pieces, text and flags (`prepare`), with the pixels the encoders will read
        made here (safe in one background thread: there it overlaps the model): every frame's
        unshared, the frames after the previous window's shared."""
        prepared = prepare(window, self.config, subtitles, self.speech)
        if prepared.answerable:
            if not self.share:
                prepared.arrays  # the whole window's arrays, made now (in the reading thread)
            else:
                for piece in prepared.frames:
                    if piece.target > self._prepared_until:
                        piece.pixels(self.config)
                seen = [p.target for p in prepared.frames if p.rgb is not None]
                self._prepared_until = max([self._prepared_until, *seen])
        return prepared

    def prepared(self, windows: Iterable[Window], subtitles=None, ahead: int = 16) -> Iterator[Prepared]:
        """`prepare` in a background thread, up to `ahead` windows ahead of the consumer (decoding
        overlaps the model). Errors of the reader are raised in the consumer."""
        return prefetched(windows, lambda window: self.prepare(window, subtitles), ahead=ahead,
                          name="nanoemox-window-media")

    def answer(self, batch: Sequence[Prepared]) -> list[dict[str, Any]]:
        """One result per window, in order (see `result_of`)."""
        ready = [p for p in batch if p.answerable]
        answers: dict[int, dict[str, Any]] = {}
        if ready:
            features = self.features(ready)
            for b, prepared in enumerate(ready):
                answers[prepared.window.index] = self._answer_one(features.row(b), prepared.text)
            self.last = (ready[-1], features.row(len(ready) - 1))
        if batch:
            self.memory.forget_before(batch[-1].window.start + self.hop)
        return [result_of(p, answers.get(p.window.index)) for p in batch]

    def answer_prepared(self, prepared: Sequence[Prepared]) -> list[dict[str, Any] | None]:
        """The answers of prepared pieces (None where not answerable), encoded together and nothing
        forgotten: the people of one window (`nanoemox.inference.people`) share its pieces."""
        ready = [p for p in prepared if p.answerable]
        features = self.features(ready) if ready else None
        rows = iter(range(len(ready)))
        return [self._answer_one(features.row(next(rows)), p.text) if p.answerable else None for p in prepared]

    def features(self, ready: Sequence[Prepared]) -> MediaFeatures:
        """The encoders' outputs [B, ...] for answerable windows: from shared pieces, or whole windows unshared."""
        started = time.perf_counter()
        if self.share:
            read = self.memory.fill(self.session, ready)
            features = self.memory.features(ready)
        else:
            stacked = [torch.from_numpy(np.stack([p.arrays[k] for p in ready]))
                       for k in ("pixel_values", "face_pixel_values", "audio_values")]
            features = self.session.encode_media(*stacked)
            for p in ready:
                p.forget_arrays()  # encoded: the pixels are not needed again
            frames, clips = sum(len(p.frames) for p in ready), sum(len(p.clips) for p in ready)
            read = {"scene": frames, "face": frames, "speech": clips}
        self.encoder_seconds += time.perf_counter() - started
        for name, count in read.items():
            self.encoded[name] += count
        return features

    def offered(self, task: str) -> list[str] | None:
        """The labels a task is scored over in each window: the emotion task's `labels`, another
        closed-set task's own (MSA: the sentiments); None for a generated task (OV-MER)."""
        return self.labels if task == EMOTION_TASK else get_task(task).default_candidates()

    def _prompts(self, text: str | None) -> list[list[int]]:
        return [self.session.encode_text(task, text, None, self.labels if task == EMOTION_TASK else None)
                for task in self.tasks]

    def _answer_one(self, features: MediaFeatures, text: str | None) -> dict[str, Any]:
        answers = self.predictor.answer_shared(features, self._prompts(text), self.tasks,
                                               [self.offered(task) for task in self.tasks], "score")
        return {task: get_task(task).window_answer(answer) for task, answer in zip(self.tasks, answers)}

    def reply(self) -> dict[str, Any] | None:
        """An empathetic reply (ERG) to the last answered window, from its kept features; None before any answer."""
        if self.last is None:
            return None
        prepared, features = self.last
        prompt = self.session.encode_text(REPLY_TASK, prepared.text, None, None)
        answer = self.predictor.answer_shared(features, [prompt], [REPLY_TASK], [None], "generate")[0]
        return {"index": prepared.window.index, "text": answer["text"], "truncated": answer["truncated"]}

    def stats(self) -> dict[str, Any]:
        """Pieces each encoder read so far, seconds spent encoding, and pieces held now."""
        return {"share": self.share, "speech_clips": self.speech.placement, "encoded": dict(self.encoded),
                "encoder_seconds": round(self.encoder_seconds, 3), "held": len(self.memory)}


def result_of(prepared: Prepared, answers: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON result of one window: times, subtitle, media flags, answers per task or `error`."""
    window = prepared.window
    result: dict[str, Any] = {
        "index": window.index, "start": window.start, "end": window.end,
        "frame_times": [None if t is None else round(t, 3) for t in window.frame_times],
        "faces_found": window.faces_found if prepared.video_present else 0,
        "frames": len(window.frame_times), "video_present": prepared.video_present,
        "audio_present": prepared.audio_present, "text": prepared.text,
    }
    if window.problems:
        result["error"] = "; ".join(window.problems)
    if answers:
        result.update(answers)
    return result


def answer_windows(answerer: WindowAnswerer, prepared: Iterable[Prepared], batch_size: int = 8) -> Iterator[dict[str, Any]]:
    """Results of the windows in order, `batch_size` windows per encoder call."""
    batch: list[Prepared] = []
    for item in prepared:
        batch.append(item)
        if len(batch) >= batch_size:
            yield from answerer.answer(batch)
            batch = []
    if batch:
        yield from answerer.answer(batch)
