"""Compose one long video with known emotions per stretch from a corpus's clips.

The MER records of one split name clips and their emotions. A plan drawn with
`numpy.random.default_rng(seed)` lays out "stretches": each has one emotion, never
that of the stretch before, and holds k clips of it (k uniform in `stretch_clips`,
inclusive), drawn from that emotion's clips with no clip twice in a row. Stretches
are added until the video reaches the requested length; the last one is cut to the
fewest whole clips that reach it. An emotion with no clips is never drawn, and one
with a single clip neither when a stretch may hold more than one clip (the clip
would have to follow itself).

Each placed clip is then decoded with PyAV and re-encoded into one continuous mp4
with the corpus's encoder settings (`mux.StreamWriter`), one clip after another and
frame by frame, so never more than one clip's decoded media is in memory. A clip lasts its video frames
at the clips' common frame rate; its audio is cut (or padded with silence) to
exactly that span, so sound and picture stay in step however long the video. Beside
`NAME.mp4` the ground truth goes into three files:

    NAME.srt            one subtitle event per clip that has text, from its start to its end
    NAME.segments.csv   start,end,emotion,clips: one row per stretch (clips: ids joined by spaces)
    NAME.clips.csv      start,end,clip_id,emotion,cue_group,conflict,text: one row per placed clip

Times are seconds with three decimals. Every file is written under a temporary name
in the same folder and renamed into place once all four are complete, so none is
ever seen half-written. `nanoemox timeline` (docs/timeline.md) measures against them.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pysubs2

from nanoemox.data.manifest import SPLITS, load_manifest
from nanoemox.data.synth.mux import StreamWriter
from nanoemox.tasks import EMOTION_TASK

logger = logging.getLogger(__name__)

SEGMENT_COLUMNS = ("start", "end", "emotion", "clips")
CLIP_COLUMNS = ("start", "end", "clip_id", "emotion", "cue_group", "conflict", "text")


@dataclass(frozen=True)
class SourceClip:
    """A clip of the corpus with the facts of its MER record."""

    clip_id: str
    path: Path
    emotion: str
    text: str | None
    cue_group: str | None
    conflict: bool | None


@dataclass(frozen=True)
class ClipFormat:
    """What PyAV reads from a clip's header."""

    frames: int          # video frames
    fps: Fraction
    width: int
    height: int
    sample_rate: int

    @property
    def shared(self) -> tuple[Fraction, int, int, int]:
        """What every clip of one long video must have in common."""
        return self.fps, self.width, self.height, self.sample_rate

    def describe(self) -> str:
        return f"{self.width}x{self.height} at {float(self.fps):g} fps, audio at {self.sample_rate} Hz"


@dataclass(frozen=True)
class Placed:
    """A clip at its place on the long video, counted in video frames."""

    clip: SourceClip
    start_frame: int
    frames: int

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames


@dataclass
class Stretch:
    """Consecutive clips that all show one emotion."""

    emotion: str
    clips: list[Placed]


@dataclass
class LongPlan:
    """The timeline of a long video and the format its clips share."""

    stretches: list[Stretch]
    fps: Fraction
    width: int
    height: int
    sample_rate: int

    @property
    def placed(self) -> list[Placed]:
        return [p for s in self.stretches for p in s.clips]

    @property
    def frames(self) -> int:
        return self.stretches[-1].clips[-1].end_frame

    def seconds(self, frame: int) -> float:
        """Time of a frame boundary in seconds."""
        return float(Fraction(frame) / self.fps)

    def sample(self, frame: int) -> int:
        """Audio sample index at a frame boundary (exact, so clips add up without drift)."""
        return round(Fraction(frame) * self.sample_rate / self.fps)


def side_files(out: str | os.PathLike) -> dict[str, Path]:
    """The ground-truth files written beside the long video `out`: srt, segments and clips."""
    out = Path(out)
    return {"srt": out.with_suffix(".srt"), "segments": out.with_name(f"{out.stem}.segments.csv"),
            "clips": out.with_name(f"{out.stem}.clips.csv")}


def load_clips(corpus: str | os.PathLike, split: str = "test") -> dict[str, list[SourceClip]]:
    """The clips of the MER records of `split`, by emotion, in manifest order.

    Records without a video or without a target are left out, and so is a second
    record of the same emotion naming the same video; the clip files are not opened here.
    """
    root = Path(corpus)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {root}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    manifest = root / f"{split}.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"no {split} manifest in the corpus: {manifest} does not exist")
    pools: dict[str, list[SourceClip]] = defaultdict(list)
    for record in load_manifest(manifest):
        video = record.media_path("video", root)
        if record.task != EMOTION_TASK or video is None or not isinstance(record.target, str):
            continue
        if any(c.path == video for c in pools[record.target]):
            continue
        extra = record.extra
        pools[record.target].append(SourceClip(
            clip_id=str(extra.get("clip_id") or video.stem), path=video, emotion=record.target,
            text=record.text, cue_group=extra.get("cue_group"), conflict=extra.get("conflict")))
    if not pools:
        raise ValueError(f"{manifest} has no MER records with a video and an emotion label "
                         "(task 'mer'); a long video needs clips whose emotion is known")
    return dict(pools)


def probe_clip(path: Path) -> ClipFormat:
    """Read a clip's frame count, frame rate, size and audio rate with PyAV.

    The frame count comes from the container's index; packets are counted only when it has none.
    """
    if not path.is_file():
        raise FileNotFoundError(f"clip file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                raise ValueError(f"clip {path} needs a video and an audio track")
            video, audio = container.streams.video[0], container.streams.audio[0]
            frames = video.frames or sum(1 for packet in container.demux(video) if packet.size)
            fps = video.average_rate
            fmt = ClipFormat(frames=frames, fps=Fraction(fps) if fps else Fraction(0), width=video.width,
                             height=video.height, sample_rate=audio.rate)
    except (av.error.FFmpegError, OSError) as exc:
        raise ValueError(f"clip {path} cannot be read: {exc}") from exc
    if fmt.frames < 1 or fmt.fps <= 0:
        raise ValueError(f"clip {path} has no video frames or no frame rate")
    return fmt


def _check_options(minutes: float, stretch_clips: tuple[int, int]) -> None:
    try:
        ok = math.isfinite(float(minutes)) and float(minutes) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"minutes must be a positive number, got {minutes!r}")
    ok = (isinstance(stretch_clips, (tuple, list)) and len(stretch_clips) == 2
          and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in stretch_clips)
          and 1 <= stretch_clips[0] <= stretch_clips[1])
    if not ok:
        raise ValueError(f"stretch_clips must be (lowest, highest) whole numbers with 1 <= lowest <= highest, "
                         f"got {stretch_clips!r}")


def plan_long_video(corpus: str | os.PathLike, *, minutes: float = 10.0, split: str = "test", seed: int = 0,
                    stretch_clips: tuple[int, int] = (2, 4)) -> LongPlan:
    """Draw the stretches of a long video (see the module docstring); opens only the clips it places."""
    _check_options(minutes, stretch_clips)
    lo, hi = int(stretch_clips[0]), int(stretch_clips[1])
    pools = load_clips(corpus, split)
    emotions = sorted(e for e, pool in pools.items() if len(pool) >= (2 if hi > 1 else 1))
    if len(emotions) < 2:
        raise ValueError(f"the {split} split of {corpus} has clips of {len(emotions)} usable emotion(s) "
                         f"({', '.join(emotions) or 'none'}); stretches alternate, so at least two emotions need "
                         f"{'two clips' if hi > 1 else 'a clip'} each")
    need = Fraction(round(float(minutes) * 60_000), 1000)  # requested length, to the millisecond
    rng = np.random.default_rng(seed)
    formats: dict[Path, ClipFormat] = {}
    first: ClipFormat | None = None
    stretches: list[Stretch] = []
    frame = 0
    previous: SourceClip | None = None
    while first is None or Fraction(frame) / first.fps < need:
        choices = [e for e in emotions if not stretches or e != stretches[-1].emotion]
        stretch = Stretch(choices[int(rng.integers(len(choices)))], [])
        stretches.append(stretch)
        for _ in range(int(rng.integers(lo, hi + 1))):
            options = [c for c in pools[stretch.emotion] if previous is None or c.path != previous.path]
            if not options:  # only when records of two emotions name the same, single video
                raise ValueError(f"{previous.path} is the only clip of {stretch.emotion!r} and also a clip of "
                                 f"{previous.emotion!r}; it cannot follow itself")
            clip = options[int(rng.integers(len(options)))]
            if clip.path not in formats:
                formats[clip.path] = probe_clip(clip.path)
            fmt = formats[clip.path]
            first = first or fmt
            if fmt.shared != first.shared:
                raise ValueError(f"clip {clip.path} is {fmt.describe()}, but the clips placed before it "
                                 f"are {first.describe()}; all clips of a long video must share size, frame rate "
                                 "and sample rate")
            stretch.clips.append(Placed(clip, frame, fmt.frames))
            frame += fmt.frames
            previous = clip
            if Fraction(frame) / first.fps >= need:
                break
    return LongPlan(stretches, first.fps, first.width, first.height, first.sample_rate)


def _copy_clip(writer: StreamWriter, placed: Placed, plan: LongPlan) -> None:
    """Decode one clip and append its frames and its audio, cut or padded to the clip's span."""
    path = placed.clip.path
    want = plan.sample(placed.end_frame) - plan.sample(placed.start_frame)
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=plan.sample_rate)
    frames = samples = 0

    def take(audio_frames) -> None:
        nonlocal samples
        for piece in audio_frames:
            wave = piece.to_ndarray()[0, : max(0, want - samples)]  # [S] mono
            writer.add_audio(wave)
            samples += len(wave)

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams.video[0], container.streams.audio[0]):
                if isinstance(frame, av.VideoFrame):
                    if frames < placed.frames:
                        writer.add_frame(frame)
                    frames += 1
                else:
                    take(resampler.resample(frame))
            take(resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise ValueError(f"clip {path} cannot be decoded: {exc}") from exc
    if frames != placed.frames:
        raise ValueError(f"clip {path} decodes to {frames} video frames, but its header says {placed.frames}")
    if samples < want:
        writer.add_audio(np.zeros(want - samples, dtype=np.float32))


def _write_video(plan: LongPlan, path: Path, progress: Callable[[int], None] | None) -> None:
    with StreamWriter(path, plan.fps, plan.width, plan.height, plan.sample_rate) as writer:
        for placed in plan.placed:
            _copy_clip(writer, placed, plan)
            if progress:
                progress(1)


def _write_srt(plan: LongPlan, path: Path) -> None:
    subs = pysubs2.SSAFile()
    for p in plan.placed:
        if p.clip.text:
            event = pysubs2.SSAEvent(start=round(plan.seconds(p.start_frame) * 1000),
                                     end=round(plan.seconds(p.end_frame) * 1000))
            event.plaintext = p.clip.text  # escapes line breaks the SSA way
            subs.append(event)
    subs.save(str(path), format_="srt")


def _time(plan: LongPlan, frame: int) -> str:
    return f"{plan.seconds(frame):.3f}"


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)


def _segment_rows(plan: LongPlan) -> list[list]:
    return [[_time(plan, s.clips[0].start_frame), _time(plan, s.clips[-1].end_frame), s.emotion,
             " ".join(p.clip.clip_id for p in s.clips)] for s in plan.stretches]


def _clip_rows(plan: LongPlan) -> list[list]:
    def flag(value: bool | None) -> str:
        return "" if value is None else str(bool(value)).lower()

    return [[_time(plan, p.start_frame), _time(plan, p.end_frame), p.clip.clip_id, p.clip.emotion,
             p.clip.cue_group or "", flag(p.clip.conflict), p.clip.text or ""] for p in plan.placed]


def _temp_beside(path: Path) -> Path:
    """A temporary name in the same folder, unique to this process (so os.replace is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def compose_long_video(corpus: str | os.PathLike, out: str | os.PathLike, *, minutes: float = 10.0,
                       split: str = "test", seed: int = 0, stretch_clips: tuple[int, int] = (2, 4),
                       progress: Callable[[int], None] | None = None) -> dict:
    """Write the long video `out` (.mp4) and its three ground-truth files; return a summary.

    `corpus` is a SynthAffect-style folder (`<split>.jsonl` + media); `minutes` is the
    least length; `progress`, if given, is called with the number of clips written
    since the last call. Existing files at `out` and beside it are replaced. The
    summary holds the paths, the length in seconds, the numbers of clips and
    stretches, the settings and the seconds shown of each emotion.
    """
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"the long video must be an .mp4 file, got {out}")
    plan = plan_long_video(corpus, minutes=minutes, split=split, seed=seed, stretch_clips=stretch_clips)
    out.parent.mkdir(parents=True, exist_ok=True)
    targets = {"video": out, **side_files(out)}
    temps = {key: _temp_beside(path) for key, path in targets.items()}
    try:
        _write_video(plan, temps["video"], progress)
        _write_srt(plan, temps["srt"])
        _write_csv(temps["segments"], SEGMENT_COLUMNS, _segment_rows(plan))
        _write_csv(temps["clips"], CLIP_COLUMNS, _clip_rows(plan))
        for key, path in targets.items():
            os.replace(temps[key], path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    per_emotion: dict[str, int] = defaultdict(int)
    for p in plan.placed:
        per_emotion[p.clip.emotion] += p.frames
    placed = plan.placed
    logger.info("long video: %d clips in %d stretches, %.1f s -> %s", len(placed), len(plan.stretches),
                plan.seconds(plan.frames), out)
    return {
        "out": str(out), "duration": round(plan.seconds(plan.frames), 3), "clips": len(placed),
        "stretches": len(plan.stretches), "seed": seed, "split": split, "corpus": str(corpus),
        "minutes": minutes, "stretch_clips": [int(k) for k in stretch_clips],
        "files": {key: str(path) for key, path in side_files(out).items()},
        "emotion_seconds": {e: round(plan.seconds(n), 3) for e, n in sorted(per_emotion.items())},
    }
