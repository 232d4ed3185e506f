"""A timeline of one long video: windows in, answers streamed out, files written.

`Timeline(predictor, video, options)` opens the video (an unreadable file raises one
`MediaError` here) and `results(first)` yields one JSON-ready result per window as it
is answered (the service streams these). `write_timeline` runs it into a folder:

    windows.jsonl   one result per window, appended (and flushed) as windows finish
    timeline.csv    one row per window (`CSV columns` in docs/timeline.md), appended alongside
    segments.json   windows merged into segments of one label (`segments.segment`)
    timeline.png    probabilities, valence and segments over time (`plot.plot_timeline`)
    timeline.json   settings, model, dtype, timing, every window and every segment

`timeline.json` is written first with `"complete": false` and the settings, and again
at the end. With `resume=True` a folder whose settings match continues after the last
complete line of windows.jsonl (a cut last line is dropped) and timeline.csv is
rebuilt from it; other settings are refused. A folder that already holds a timeline is
refused unless `resume` or `overwrite` is given.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from nanoemox.media.stream import WindowReader, detect_side
from nanoemox.results_file import ResultsFile
from nanoemox.tasks import DEFAULT_WINDOW_TASKS, EMOTION_TASK, TIMELINE_TASKS, get_task
from nanoemox.inference.people import DENSITY, PeopleAnswerer, reader_detects
from nanoemox.inference.prefetch import prefetched
from nanoemox.inference.windows import SPEECH_PLACEMENTS, WindowAnswerer, answer_windows, check_tasks
from nanoemox.timeline.plot import plot_timeline
from nanoemox.timeline.segments import DEFAULT_MIN_SEGMENT, DEFAULT_SMOOTH, segment
from nanoemox.timeline.subtitles import Subtitles
from nanoemox.timeline.table import csv_columns, csv_row, csv_rows, csv_text
from nanoemox.utils import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

FILES = ("windows.jsonl", "timeline.csv", "segments.json", "timeline.png", "timeline.json")
FORMAT_VERSION = 1


class TimelineError(ValueError):
    """A timeline folder or setting that cannot be used (resume conflicts, a folder in use)."""


@dataclass
class TimelineOptions:
    """How windows are laid out, what is asked of each, and how segments are formed."""

    window: float = 4.0
    hop: float = 2.0
    tasks: tuple[str, ...] = DEFAULT_WINDOW_TASKS
    labels: list[str] | None = None  # MER labels (default: the 7 basic emotions)
    batch_size: int = 8
    smooth: int = DEFAULT_SMOOTH
    min_segment: float = DEFAULT_MIN_SEGMENT
    detect_faces: bool = True
    share: bool = True  # encoder work shared across overlapping windows (`nanoemox.inference.windows`)
    speech_clips: str = "grid"  # where each window's speech clips start: "grid" or "window" (`SpeechClips`)
    per_person: bool = False  # people found per window, answered per person (`nanoemox.inference.people`)

    def __post_init__(self) -> None:
        if not self.window > 0 or not self.hop > 0:
            raise ValueError(f"window and hop must be positive seconds, got window={self.window}, hop={self.hop}")
        if self.hop > self.window:
            raise ValueError(f"hop ({self.hop} s) longer than the window ({self.window} s) would skip parts of the video")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.smooth < 1 or self.min_segment < 0:
            raise ValueError(f"smooth must be at least 1 window and min_segment at least 0 s, "
                             f"got {self.smooth} and {self.min_segment}")
        if self.speech_clips not in SPEECH_PLACEMENTS:
            raise ValueError(f"speech clips must be placed by one of {', '.join(SPEECH_PLACEMENTS)}, "
                             f"got {self.speech_clips!r}")
        self.tasks = check_tasks(self.tasks)


@dataclass
class Timeline:
    """One video's windows and the model that answers them."""

    predictor: Any
    video: str | os.PathLike
    options: TimelineOptions = field(default_factory=TimelineOptions)
    subtitles: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        media = self.predictor.processor.media
        # No size limit: the processor's max_file_bytes guards clips that are decoded whole,
        # while windows are streamed, so a film of several GB costs no more memory than a clip.
        # Face boxes that become crops are searched for as for clips; ones only counted, faster.
        # Per person: `density` times the frames, so that mouths can be followed (`PeopleAnswerer.reader`).
        o = self.options
        frames = media.num_frames * (DENSITY if o.per_person else 1)
        detects = o.detect_faces and (reader_detects(media) if o.per_person else True)
        self.reader = WindowReader(self.video, o.window, o.hop, frames, media.sample_rate, None,
                                   detect_faces=detects, detect_side=detect_side(media.face_input))
        self.subtitle_lines = Subtitles.load(self.subtitles) if self.subtitles is not None else None
        self.answerer = WindowAnswerer(self.predictor, o.tasks, o.labels, window=o.window, hop=o.hop, share=o.share,
                                       speech_clips=o.speech_clips)
        self.people = PeopleAnswerer(self.answerer, density=DENSITY) if o.per_person else None

    @property
    def labels(self) -> list[str] | None:
        return self.answerer.labels if EMOTION_TASK in self.options.tasks else None

    def header(self) -> dict[str, Any]:
        """What the run is: the video, its windows, tasks, labels (the first line the service streams)."""
        reader = self.reader
        header = {"duration": round(reader.duration, 3), "window_count": len(reader), "window": self.options.window,
                  "hop": self.options.hop, "tasks": list(self.options.tasks), "labels": self.labels,
                  "video_stream": reader.has_video, "audio_stream": reader.has_audio}
        if self.options.per_person:  # boxes are in pixels of these frames
            size = reader.frame_size()
            header.update(per_person=True, frame_size=list(size) if size else None)
        return header

    def results(self, first: int = 0) -> Iterator[dict[str, Any]]:
        """One result per window from window `first` on, in order, as soon as its batch is answered."""
        if self.people is not None:
            # People are found in a background thread (decoding and face detection overlap the model).
            found = prefetched(self.reader.windows(first), self.people.find, ahead=2, name="nanoemox-window-people")
            for item in found:
                yield self.people.window_result(item, self.subtitle_lines)
            return
        prepared = self.answerer.prepared(self.reader.windows(first), self.subtitle_lines, ahead=2 * self.options.batch_size)
        yield from answer_windows(self.answerer, prepared, self.options.batch_size)

    def segments(self, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Segments of the first scored task asked, in the timeline's order: the MER label when MER
        ran, else the sentiment (`segments.segment`); none when only generated tasks ran."""
        task = next((t for t in TIMELINE_TASKS if t in self.options.tasks and get_task(t).scorable), None)
        if task is None:
            return []
        probabilities = [r[task]["probabilities"] if task in r else None for r in results]
        return segment(results, self.answerer.offered(task), probabilities, self.reader.duration, self.options.smooth, self.options.min_segment)


def _identity(timeline: Timeline, model_name: str | None) -> dict[str, Any]:
    """What must match for a resumed run to continue a folder's timeline."""
    path = Path(timeline.video)
    settings = timeline.predictor.settings()
    options = asdict(timeline.options)
    options["tasks"] = list(options["tasks"])
    return {"format": FORMAT_VERSION, "video": str(path.resolve()), "video_bytes": path.stat().st_size,
            "duration": round(timeline.reader.duration, 3), "model": model_name,
            "subtitles": None if timeline.subtitles is None else str(Path(timeline.subtitles).resolve()),
            "labels": timeline.labels, "dtype": settings["dtype"], "decoding": settings["decoding"],
            **{f"max_new_tokens_{task}": settings["max_new_tokens"][task] if task in timeline.options.tasks else None
               for task in TIMELINE_TASKS if not get_task(task).scorable},  # the budgets of generated answers (OV-MER)
            **{k: options[k] for k in ("window", "hop", "tasks", "detect_faces", "speech_clips", "per_person")}}


def _read_done(out: Path, total: int) -> list[dict[str, Any]]:
    """Window results already written; a cut last line is dropped from the file (`ResultsFile`)."""
    try:
        results = ResultsFile(out / "windows.jsonl", what="window").read()
    except ValueError as exc:
        raise TimelineError(f"{exc}; remove the folder or pass --overwrite") from None
    for number, result in enumerate(results):
        if not isinstance(result, dict) or result.get("index") != number:
            raise TimelineError(f"{out / 'windows.jsonl'}: line {number + 1} is not window {number}; remove the folder "
                                "or pass --overwrite")
    if len(results) > total:
        raise TimelineError(f"{out / 'windows.jsonl'} holds {len(results)} windows but the video has {total}")
    return results


def _start_folder(out: Path, identity: dict[str, Any], resume: bool, overwrite: bool, total: int) -> list[dict[str, Any]]:
    used = [name for name in FILES if (out / name).exists()]
    if used and not (resume or overwrite):
        raise TimelineError(f"{out} already holds a timeline ({', '.join(used)}); pass --resume to continue it "
                            "or --overwrite to start again")
    if overwrite and not resume:
        for name in used:
            (out / name).unlink()
        return []
    if not resume or not (out / "windows.jsonl").exists():
        return []
    try:
        before = json.loads((out / "timeline.json").read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TimelineError(f"{out / 'timeline.json'} cannot be read ({exc}); cannot tell what the earlier run was") from None
    changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
    if changed:
        details = "; ".join(f"{k}: {before.get(k)!r} then, {identity.get(k)!r} now" for k in changed)
        raise TimelineError(f"{out} holds a timeline made with other settings ({details}); "
                            "use another --out folder or --overwrite")
    return _read_done(out, total)


def write_timeline(
    timeline: Timeline,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    model_name: str | None = None,
    progress: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Run the timeline into `out` (see the module docstring); returns timeline.json's content.

    `progress(result)` is called after each window is written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TimelineError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    identity = _identity(timeline, model_name)
    total = len(timeline.reader)
    done = _start_folder(out, identity, resume, overwrite, total)
    labels, tasks = timeline.labels, timeline.options.tasks
    per_person = timeline.options.per_person
    columns = csv_columns(tasks, labels, per_person)
    rows = csv_rows if per_person else (lambda result, labels: [csv_row(result, labels)])
    # The CSV always mirrors windows.jsonl: rebuilt from it, then appended alongside it.
    atomic_write_bytes(out / "timeline.csv",
                       csv_text([row for r in done for row in rows(r, labels)], columns, True).encode("utf-8"))
    meta = {"settings": identity, **timeline.header(), "complete": False, "resumed_from_window": len(done)}
    atomic_write_json(meta, out / "timeline.json")
    started = time.perf_counter()
    new = 0
    with ResultsFile(out / "windows.jsonl", what="window").appending() as lines, \
            open(out / "timeline.csv", "a", encoding="utf-8", newline="") as table:
        for result in timeline.results(first=len(done)):
            lines.append(result)
            table.write(csv_text(rows(result, labels), columns, False))
            table.flush()
            new += 1
            if progress is not None:
                progress(result)
    elapsed = time.perf_counter() - started
    results = _read_done(out, total)
    segments = timeline.segments(results)
    atomic_write_json(segments, out / "segments.json")
    title = f"{Path(timeline.video).name}: {len(results)} windows of {timeline.options.window:g} s every {timeline.options.hop:g} s"
    plot_timeline(out / "timeline.png", results, segments, labels, timeline.reader.duration, title)
    covered = sum(r["end"] - r["start"] for r in results[len(done):])
    video_seconds = results[-1]["end"] - results[len(done)]["start"] if new else 0.0
    meta.update({
        "complete": len(results) == total,
        "errors": sum("error" in r for r in results),
        "timing": {"seconds": round(elapsed, 3), "windows": new, "video_seconds": round(video_seconds, 3),
                   "window_seconds": round(covered, 3),
                   "video_seconds_per_second": round(video_seconds / elapsed, 3) if elapsed > 0 and new else None,
                   "device": timeline.predictor.settings()["device"], "batch_size": timeline.options.batch_size},
        "encoders": timeline.answerer.stats(),
        "smoothing": {"smooth": timeline.options.smooth, "min_segment": timeline.options.min_segment},
        "segments": segments, "windows": results,
    })
    atomic_write_json(meta, out / "timeline.json")
    return meta
