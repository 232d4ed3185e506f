"""Per-person answers: who is in a clip or window, who speaks, and how each person feels.

    people = PeopleAnswerer(WindowAnswerer(predictor, ["mer", "msa"]))
    reader = people.reader(path, window=4.0, hop=2.0)      # a WindowReader with `density` times the frames
    for dense in reader.windows():
        found = people.find(dense)                          # tracks and voices of the window's frames
        result = people.window_result(found)                # the window's result with `people`

    analyze_people(predictor, "clip.mp4", ["mer", "msa"])   # `nanoemox analyze --per-person` for one clip

Finding people (`nanoemox.media.people`): the reader takes `density` frames per model
frame, so that mouths can be followed; faces are searched in the frames the model reads
and linked into tracks, each track followed in between by its nearest search's box; the
speaker is the track whose mouth opens and closes with the voice.

Answering: each person is answered from the frames the model reads (the middle one of each
group of `density`, at the same times a plain window uses) cut to that person: a square
around the person's face box, `crop_scale` times the box width, moved to lie inside the
frame (`person_square`: what a one-person frame of that face shows). Both image branches
read the crop (a model with `face_input="crops"` gets the face box inside it). The speaker
gets the window's voice and words; every other person gets silence and no words, which is
what a masked modality is in training (`nanoemox.train.absent`: the demo trains with
modality dropout, so it reads them as carrying no cue). The audio is encoded once for all
people, and the encoders run once per distinct piece (`FeatureMemory`). With one person or
none found, the answer is the plain window's: the answer without people (to float rounding,
as encoder batches differ: a timeline encodes several windows' pieces in one call).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nanoemox.inference.windows import BLANK, ClipPiece, FramePiece, Prepared, WindowAnswerer, result_of
from nanoemox.media.people import Box, Track, TrackerSettings, Voices, detect_faces, person_square, speaking, track_faces
from nanoemox.media.stream import Window, WindowReader, detect_side
from nanoemox.tasks import DEFAULT_WINDOW_TASKS, get_task

DENSITY = 3  # dense frames per model frame (odd: the model's frame times are among the dense ones)
CROP_SCALE = 1.35  # a person's square, in widths of the face box (a one-person SynthAffect frame: about 1.33)


@dataclass
class Found:
    """A window's people: the dense window, the model's window (every `density`-th frame),
    the tracks over the dense frames and who speaks."""

    dense: Window
    window: Window
    tracks: list[Track]
    voices: Voices
    frame_size: tuple[int, int] | None
    searched: int = 0  # frames the faces were searched in


@dataclass
class PersonFrame(FramePiece):
    """A frame piece cut to one person's square (`region`, x, y, side in the frame); its keys hold the region."""

    region: tuple | None = None

    def scene_key(self) -> tuple:
        return (*super().scene_key(), self.region)

    def face_key(self) -> tuple:
        return (*super().face_key(), self.region)


def reader_detects(cfg) -> bool:
    """Whether a dense reader searches the largest face itself: only where the model's face branch reads
    crops of it (`face_input="crops"`); with whole frames the faces are only counted, and `find`'s own
    search of every face gives the count (one face search per frame instead of two)."""
    return cfg.face_input != "frames"


def model_window(dense: Window, density: int) -> Window:
    """The plain window inside a dense one: every `density`-th frame, starting at the middle of the first group."""
    if dense.frames is None or density == 1:
        return dense
    pick = slice(density // 2, None, density)
    return replace(dense, frames=dense.frames[pick], frame_times=dense.frame_times[pick], faces=dense.faces[pick],
                   targets=dense.targets[pick])


@dataclass
class PeopleAnswerer:
    """Finds and answers the people of windows with one `WindowAnswerer` (see the module docstring)."""

    answerer: WindowAnswerer
    density: int = DENSITY
    crop_scale: float = CROP_SCALE
    tracker: TrackerSettings = field(default_factory=TrackerSettings)

    def __post_init__(self) -> None:
        if self.density < 1 or self.density % 2 == 0:
            raise ValueError(f"density must be an odd number >= 1, got {self.density}")

    @property
    def config(self):
        return self.answerer.config

    def reader(self, path, window: float, hop: float) -> WindowReader:
        """A reader of `density` times the model's frames per window (`reader_detects`: its own face search)."""
        cfg = self.config
        return WindowReader(path, window, hop, cfg.num_frames * self.density, cfg.sample_rate, cfg.max_file_bytes,
                            detect_faces=reader_detects(cfg), detect_side=detect_side(cfg.face_input))

    def find(self, dense: Window) -> Found:
        """The tracks and the speaker of a dense window's frames."""
        window = model_window(dense, self.density)
        if dense.frames is None or dense.problems:
            return Found(dense, window, [], Voices(None), None)
        present = [(f, t) for f, t in zip(dense.frames, dense.frame_times) if f is not None]
        frames, times = [f for f, _ in present], [float(t) for _, t in present]
        # Faces are searched in the frames the model reads (the middle of each group of `density`),
        # tracked there and followed in between by the nearest search's box (chosen on dev: as many
        # people and speakers found as searching every frame, a third of the cost).
        searched = [k for k in range(len(frames)) if k % self.density == self.density // 2] or [0]
        detections = {k: detect_faces(frames[k]) for k in searched}
        found = track_faces([detections[k] for k in searched], [times[k] for k in searched], self.tracker)
        tracks = [Track(t.id, times, [t.box_at(time) for time in times], [False] * len(times)) for t in found]
        for track, sparse in zip(tracks, found):
            for k, hit in zip(searched, sparse.detected):
                track.detected[k] = hit
        voices = speaking(tracks, frames, times, dense.waveform, self.config.sample_rate, origin=dense.start)
        size = (int(frames[0].shape[1]), int(frames[0].shape[0])) if frames else None
        if not reader_detects(self.config):  # faces only counted: the largest of this search, per searched frame
            order = iter(range(len(frames)))
            dense.faces = [(detections.get(next(order)) or [None])[0] if f is not None else None for f in dense.frames]
            window = model_window(dense, self.density)
        return Found(dense, window, tracks, voices, size, len(searched))

    def prepared(self, found: Found, subtitles=None) -> tuple[Prepared, list[Prepared]]:
        """The plain window, and one prepared window per person when there are several (else none)."""
        plain = self.answerer.prepare(found.window, subtitles)
        if len(found.tracks) <= 1 or not plain.answerable:
            return plain, []
        silence = [ClipPiece((BLANK, 0, "silence"), np.zeros(self.config.clip_samples, np.float32))
                   for _ in range(self.config.num_clips)]
        out = []
        for track in found.tracks:
            speaks = track.id == found.voices.speaker
            out.append(Prepared(plain.window, plain.text if speaks else None, plain.video_present,
                                plain.audio_present and speaks, self.config, frames=self.person_frames(plain, track),
                                clips=plain.clips if speaks else silence))
        return plain, out

    def person_frames(self, plain: Prepared, track: Track) -> list[PersonFrame]:
        """The plain window's frames cut to one person's square."""
        pieces = []
        for piece in plain.frames:
            if piece.rgb is None:
                pieces.append(PersonFrame(piece.target, piece.time, None, None))
                continue
            height, width = piece.rgb.shape[:2]
            face = track.box_at(piece.time if piece.time is not None else piece.target)
            x0, y0, side, _ = person_square(face, width, height, self.crop_scale)
            crop = piece.rgb[y0:y0 + side, x0:x0 + side]
            inner = None
            if self.config.face_input != "frames":
                inner = (face[0] - x0, face[1] - y0, face[2], face[3])
            pieces.append(PersonFrame(piece.target, piece.time, crop, inner, region=(x0, y0, side)))
        return pieces

    def answer(self, found: Found, subtitles=None) -> list[dict[str, Any]]:
        """One JSON-ready entry per person (`entry`); with one person or none, from the plain window's answer."""
        plain, people = self.prepared(found, subtitles)
        answers = self.answerer.answer_prepared(people or [plain])
        return [entry(found, track, answers[track.id] if people else answers[0]) for track in found.tracks]

    def window_result(self, found: Found, subtitles=None) -> dict[str, Any]:
        """A window's result (`windows.result_of`) with `people`: one entry per person (`entry`).

        One person or none: the window's plain answers, which the person's entry repeats.
        Several: the answers are per person only (the window's own are left out: whose would
        they be?). The window's pieces are forgotten up to the next window's start afterwards.
        """
        plain, people = self.prepared(found, subtitles)
        answers = self.answerer.answer_prepared(people or [plain])
        result = result_of(plain, None if people else answers[0])
        result["people"] = [entry(found, t, answers[t.id] if people else answers[0]) for t in found.tracks]
        self.answerer.memory.forget_before(found.window.start + self.answerer.hop)
        return result


def entry(found: Found, track: Track, answers: dict[str, Any] | None) -> dict[str, Any]:
    """A person's JSON in a window: id, mean box over the window, whether it speaks, its speaking share, its answers."""
    return {"id": track.id, "box": _box(track.mean_box()), "speaking": track.id == found.voices.speaker,
            "speaking_share": found.voices.shares.get(track.id, 0.0), **(answers or {})}


def _box(box: Box) -> list[int]:
    return [int(v) for v in box]


def describe(found: Found) -> dict[str, Any]:
    """The JSON of a clip's people: frame size, speaker and per track its boxes over time."""
    return {
        "frame_size": list(found.frame_size) if found.frame_size else None,
        "speaker": found.voices.speaker,
        "voiced": found.voices.voiced,
        "tracks": [{"id": t.id, "boxes": [[round(time, 3), *map(int, box)] for time, box in zip(t.times, t.boxes)],
                    "detected": round(sum(t.detected) / max(1, found.searched), 3), "speaking": t.id == found.voices.speaker,
                    "speaking_share": found.voices.shares.get(t.id, 0.0),
                    "speaking_score": found.voices.scores.get(t.id, 0.0)} for t in found.tracks],
    }


# ---------------------------------------------------------------------- one clip

WHOLE = 1e9  # a window longer than any clip: the clip is read as one window


@dataclass(frozen=True)
class Said:
    """What is said over a whole clip, as a window asks subtitles for it."""

    text: str | None

    def between(self, start: float, end: float) -> str | None:
        return self.text


def person_tasks(tasks: Sequence[str]) -> list[str]:
    """The tasks answered per person: those a window can be asked (the registry's timeline tasks)."""
    return [t for t in tasks if get_task(t).timeline]


def analyze_people(predictor, path, tasks: Sequence[str], *, clip_id: str | None = None, subtitle: str | None = None,
                   candidates: Sequence[str] | None = None, intents: Sequence[str] | None = None,
                   density: int = DENSITY, crop_scale: float = CROP_SCALE) -> dict[str, Any]:
    """`nanoemox analyze --per-person` for one clip: the plain result (`analyze`, scored) plus `people`.

    One person or none: every task is answered for the clip as without people, and the
    person's answers are the clip's. Several people: the per-person tasks (`person_tasks`)
    are answered per person instead of for the clip; the other tasks for the clip.
    """
    from nanoemox.inference.clips import analyze, clip_records

    per_person = person_tasks(tasks)
    people = PeopleAnswerer(WindowAnswerer(predictor, per_person or DEFAULT_WINDOW_TASKS, candidates), density=density,
                            crop_scale=crop_scale)
    found = people.find(next(people.reader(path, WHOLE, WHOLE).windows()))
    several = len(found.tracks) > 1
    clip_tasks = [t for t in tasks if not (several and t in per_person)]
    if clip_tasks:
        records = clip_records(path, clip_tasks, clip_id=clip_id, subtitle=subtitle, candidates=candidates,
                               intents=intents)
        result = next(analyze(predictor, [records], decode="score"))
    else:  # every task asked is answered per person: the clip's result holds what the model saw
        window = found.window
        result = {"id": clip_id or Path(path).stem, "input": str(path),
                  "audio_present": window.waveform is not None and window.audio_samples > 0,
                  "video_present": window.frames is not None, "faces_found": window.faces_found,
                  "frames": len(window.frame_times)}
    described = describe(found)
    if several:
        entries = {e["id"]: e for e in people.answer(found, Said(subtitle))}
        for track in described["tracks"]:
            entry = entries[track["id"]]
            track["answers"] = {t: entry[t] for t in per_person if t in entry}
    elif found.tracks:
        plain = result.get("answers", {})
        described["tracks"][0]["answers"] = {t: _window_form(t, plain[t]) for t in per_person if t in plain}
    result["people"] = {**described, "per_person_tasks": per_person}
    return result


def _window_form(task: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A clip answer of `analyze` in the form a window's answer takes (`Task.window_answer`)."""
    answer = {"text": entry["text"], "truncated": bool(entry.get("truncated", False))}
    if "probabilities" in entry:
        answer["scores"] = entry["probabilities"]
    return get_task(task).window_answer(answer)
