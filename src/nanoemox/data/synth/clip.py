"""One SynthAffect clip's media: the render settings, what the face and voice show, the one-person render.

`MediaConfig` holds frame size, frame rate, length and sample rate; `face_peak` and
`clip_prosody` turn a clip's plan into the expression its face reaches and the prosody
its voice speaks with; `render` draws a one-person clip and writes its mp4. The
two-person clips of `people.py` build on the same pieces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanoemox.data.synth import face, voice
from nanoemox.data.synth.face import POLITE_SMILE
from nanoemox.data.synth.mux import write_clip
from nanoemox.data.synth.plan import ClipPlan
from nanoemox.data.synth.records import media_path
from nanoemox.data.synth.vocab import INTENSITY_SCALE


@dataclass(frozen=True)
class MediaConfig:
    """How clips are rendered."""

    size: int = 160         # frame width = height in pixels (per person)
    fps: int = 8
    duration: float = 4.0   # seconds, video and audio alike
    sample_rate: int = voice.SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.size < 64 or self.size % 2:
            raise ValueError(f"frame size must be an even number >= 64, got {self.size}")
        if self.fps < 1 or self.duration <= 0:
            raise ValueError(f"fps and duration must be positive, got {self.fps} and {self.duration}")

    @property
    def n_frames(self) -> int:
        return int(round(self.fps * self.duration))


def face_peak(plan: ClipPlan) -> face.Expression:
    """Peak expression the face reaches in this clip."""
    if plan.conflict:
        return POLITE_SMILE
    return face.NEUTRAL.toward(face.PEAKS[plan.shown["face"]], INTENSITY_SCALE[plan.intensity])


def clip_prosody(plan: ClipPlan) -> voice.Prosody:
    """Prosody the voice speaks with in this clip."""
    return voice.NEUTRAL.toward(voice.PROFILES[plan.shown["voice"]], INTENSITY_SCALE[plan.intensity])


def write_media(plan: ClipPlan, out_dir: str | os.PathLike, frames: np.ndarray, wave: np.ndarray,
                media: MediaConfig) -> str:
    """Write one clip's mp4 under `out_dir` (frames [F, H, W, 3], wave [S]); return its relative path."""
    rel = media_path(plan)
    target = Path(out_dir) / rel
    tmp = target.with_name(f".{target.name}.part")
    write_clip(tmp, frames, media.fps, wave, media.sample_rate)
    os.replace(tmp, target)  # a half-written clip never carries the final name
    return rel


def render(plan: ClipPlan, out_dir: str | os.PathLike, media: MediaConfig) -> str:
    """Render one one-person clip's mp4 under `out_dir`; return its relative path."""
    rng = np.random.default_rng(plan.media_seed)
    look = face.sample_look(rng, media.size)
    frames = face.render_clip(look, face_peak(plan), media.n_frames, rng)  # [F, S, S, 3]
    wave = voice.synthesize(media.duration, plan.speaker_f0, clip_prosody(plan), rng)
    return write_media(plan, out_dir, frames, wave, media)
