"""Two-person SynthAffect clips: a speaker and a silent listener side by side.

For evaluating answers about one person of several (not for training). A frame is two
one-person frames of `size` joined left to right, each drawn by the face renderer with
its own `Look`, so each half looks like a training frame. One person, on a side drawn
per clip, speaks: it is planned exactly like a one-person clip with a single cue group
(face, voice or text), and its mouth opens with the loudness of its voice. The other
listens: its face shows an emotion of its own (never the speaker's), it is silent, and
its mouth moves only with its expression. The audio is the speaker's voice.

Everything random about a clip comes from one generator seeded by the plan's
`media_seed`, drawn in a fixed order: the scene (speaker side, listener emotion and
intensity, the left and right looks), the left and right expression tracks, the voice.
`stage` repeats the first part, so the manifest's ground truth is computed from the
same draws as the pixels without rendering them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from nanoemox.data.synth import face, voice
from nanoemox.data.synth.clip import MediaConfig, clip_prosody, face_peak, write_media
from nanoemox.data.synth.plan import ClipPlan
from nanoemox.data.synth.vocab import CUE_GROUPS, EMOTIONS, INTENSITIES, INTENSITY_SCALE, MODALITIES
from nanoemox.tasks import TIMELINE_TASKS

SIDES = ("left", "right")
# Tasks of a two-person clip's records: those whose answer is the speaker's emotion (the
# registry's per-stretch emotion tasks); reasons, intents and replies describe one-person clips.
PEOPLE_TASKS: tuple[str, ...] = TIMELINE_TASKS
# The speaker's emotion lives in exactly one modality, so a per-person answer has one place to look.
SPEAKER_CUE_GROUPS: dict[str, float] = {m: CUE_GROUPS[m] for m in MODALITIES}
# Mouth opening added at the clip's loudest moment: clearly visible at 8 fps, small beside
# the expression peaks (surprise opens to 1.3), so the emotion stays readable.
MOUTH_GAIN = 0.35
# Loudness (RMS) below which the voice counts as silent: above the room noise (0.004).
SILENT_RMS = 0.01


@dataclass(frozen=True)
class Person:
    """One person of a two-person clip."""

    side: str
    look: face.Look
    peak: face.Expression   # peak expression of its face
    face_emotion: str       # what its face shows
    emotion: str            # what it feels: the plan's emotion (speaker) or its face's (listener)
    intensity: str
    speaking: bool


@dataclass(frozen=True)
class Scene:
    """The two people of a clip, left to right, and which one speaks."""

    people: tuple[Person, Person]
    speaker: int


def stage(plan: ClipPlan, media: MediaConfig, rng: np.random.Generator) -> Scene:
    """Draw the clip's scene from `rng` (the first draws of the clip's generator)."""
    if plan.conflict or len(plan.cues) != 1:
        raise ValueError(f"{plan.clip_id}: two-person clips need a single-cue plan, got cue group {plan.cue_group!r}")
    speaker = int(rng.integers(len(SIDES)))
    others = [e for e in EMOTIONS if e != plan.emotion]
    listener_emotion = others[int(rng.integers(len(others)))]
    listener_intensity = INTENSITIES[int(rng.integers(len(INTENSITIES)))]
    looks = [face.sample_look(rng, media.size) for _ in SIDES]
    listener_peak = face.NEUTRAL.toward(face.PEAKS[listener_emotion], INTENSITY_SCALE[listener_intensity])
    people = tuple(
        Person(side, look, face_peak(plan), plan.shown["face"], plan.emotion, plan.intensity, True) if i == speaker
        else Person(side, look, listener_peak, listener_emotion, listener_emotion, listener_intensity, False)
        for i, (side, look) in enumerate(zip(SIDES, looks))
    )
    return Scene(people=people, speaker=speaker)


def mouth_opening(wave: np.ndarray, n_frames: int, fps: float, sample_rate: int,
                  gain: float = MOUTH_GAIN) -> np.ndarray:
    """Mouth opening [F] added to the speaker's face: `gain` x the voice's loudness while each frame is
    on screen, relative to the clip's loudest frame; 0 where the voice is silent."""
    edges = np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64)
    pieces = [wave[a:b] for a, b in zip(edges[:-1], edges[1:])]  # the samples heard while each frame shows
    rms = np.array([np.sqrt(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0 for x in pieces])
    loud = np.clip(rms - SILENT_RMS, 0.0, None)
    if loud.max() <= 0:
        return np.zeros(n_frames)
    return gain * loud / loud.max()


def render_frames(plan: ClipPlan, media: MediaConfig,
                  mouth_gain: float = MOUTH_GAIN) -> tuple[Scene, np.ndarray, np.ndarray]:
    """The clip's scene, frames [F, S, 2S, 3] uint8 and the speaker's voice [samples] float32.

    `mouth_gain=0` draws the same clip with the speaker's mouth not moving with the voice
    (every random draw is the same).
    """
    rng = np.random.default_rng(plan.media_seed)
    scene = stage(plan, media, rng)
    n = media.n_frames
    tracks = [face.expression_track(person.peak, n, rng) for person in scene.people]
    wave = voice.synthesize(media.duration, plan.speaker_f0, clip_prosody(plan), rng)
    opening = mouth_opening(wave, n, media.fps, media.sample_rate, mouth_gain)
    tracks[scene.speaker] = [replace(e, mouth_open=e.mouth_open + float(o))
                             for e, o in zip(tracks[scene.speaker], opening)]
    times = np.linspace(0.0, 1.0, n)
    frames = np.stack([
        np.concatenate([face.render_frame(person.look, track[i], float(times[i]))  # [S, S, 3] each
                        for person, track in zip(scene.people, tracks)], axis=1)   # [S, 2S, 3]
        for i in range(n)
    ])
    return scene, frames, wave


def render(plan: ClipPlan, out_dir: str | os.PathLike, media: MediaConfig) -> str:
    """Render one two-person clip's mp4 under `out_dir`; return its relative path."""
    _, frames, wave = render_frames(plan, media)
    return write_media(plan, out_dir, frames, wave, media)


def face_box(person: Person, index: int, media: MediaConfig) -> list[int]:
    """[x, y, w, h] of the person's head in the full two-person frame at the clip's middle frame,
    clipped to the person's half."""
    n = media.n_frames
    t = (n // 2) / (n - 1) if n > 1 else 0.0  # the middle frame's normalised time, as render_frames uses
    x0, y0, x1, y1 = face.head_box(person.look, t)
    left = index * media.size
    x0, x1 = (int(round(min(max(v, 0.0), media.size))) + left for v in (x0, x1))
    y0, y1 = (int(round(min(max(v, 0.0), media.size))) for v in (y0, y1))
    return [x0, y0, x1 - x0, y1 - y0]


def people_extra(plan: ClipPlan, media: MediaConfig) -> dict:
    """The `extra` fields that describe a two-person clip's people (see docs/synthaffect.md)."""
    scene = stage(plan, media, np.random.default_rng(plan.media_seed))
    people = []
    for i, person in enumerate(scene.people):
        speaking = {"cue_group": plan.cue_group, "voice_emotion": plan.shown["voice"],
                    "words_emotion": plan.shown["text"]}
        listening = {"cue_group": "face", "voice_emotion": None, "words_emotion": None}
        people.append({"person": i, "side": person.side, "box": face_box(person, i, media),
                       "face_emotion": person.face_emotion, "speaking": person.speaking,
                       **(speaking if person.speaking else listening),
                       "emotion": person.emotion, "intensity": person.intensity})
    return {"people": people, "speaker": scene.speaker, "people_count": len(people)}
