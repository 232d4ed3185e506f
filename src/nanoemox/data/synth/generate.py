"""Generate a SynthAffect corpus: plan the clips, render their media in parallel, write manifests.

Output layout under `out_dir`:
    manifest.jsonl               every record
    train.jsonl dev.jsonl test.jsonl   the same records by split (split by clip)
    media/synth_00000.mp4 ...    one mp4 per clip (video + 16 kHz mono AAC audio)
    synthaffect.json             seed, size, generator version, media settings, counts
"""

from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nanoemox.data.manifest import SPLITS, TASKS, write_manifest
from nanoemox.data.synth import face, voice
from nanoemox.data.synth.face import POLITE_SMILE
from nanoemox.data.synth.mux import video_codec, write_clip
from nanoemox.data.synth.plan import ClipPlan, make_plans
from nanoemox.data.synth.records import clip_records, media_path
from nanoemox.data.synth.vocab import INTENSITY_SCALE

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
SUMMARY_FILE = "synthaffect.json"


@dataclass(frozen=True)
class MediaConfig:
    """How clips are rendered."""

    size: int = 160         # frame width = height in pixels
    fps: int = 8
    duration: float = 4.0   # seconds, video and audio alike
    sample_rate: int = voice.SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.size < 64 or self.size % 2:
            raise ValueError(f"frame size must be an even number >= 64, got {self.size}")
        if self.fps < 1 or self.duration <= 0:
            raise ValueError(f"fps and duration must be positive, got {self.fps} and {self.duration}")


def face_peak(plan: ClipPlan) -> face.Expression:
    """Peak expression the face reaches in this clip."""
    if plan.conflict:
        return POLITE_SMILE
    return face.NEUTRAL.toward(face.PEAKS[plan.shown["face"]], INTENSITY_SCALE[plan.intensity])


def clip_prosody(plan: ClipPlan) -> voice.Prosody:
    """Prosody the voice speaks with in this clip."""
    return voice.NEUTRAL.toward(voice.PROFILES[plan.shown["voice"]], INTENSITY_SCALE[plan.intensity])


def render(plan: ClipPlan, out_dir: str | os.PathLike, media: MediaConfig) -> str:
    """Render one clip's mp4 under `out_dir`; return its relative path."""
    rng = np.random.default_rng(plan.media_seed)
    n_frames = int(round(media.fps * media.duration))
    look = face.sample_look(rng, media.size)
    frames = face.render_clip(look, face_peak(plan), n_frames, rng)  # [F, S, S, 3]
    wave = voice.synthesize(media.duration, plan.speaker_f0, clip_prosody(plan), rng)
    rel = media_path(plan)
    target = Path(out_dir) / rel
    tmp = target.with_name(f".{target.name}.part")
    write_clip(tmp, frames, media.fps, wave, media.sample_rate)
    os.replace(tmp, target)  # a half-written clip never carries the final name
    return rel


def _render_many(plans: list[ClipPlan], out_dir: str, media: MediaConfig) -> int:
    for plan in plans:
        render(plan, out_dir, media)
    return len(plans)


def _render_all(plans: list[ClipPlan], out_dir: Path, media: MediaConfig, workers: int,
                progress: Callable[[int], None] | None) -> None:
    """Render every clip, in `workers` processes when more than one."""
    if workers <= 1:
        for plan in plans:
            render(plan, out_dir, media)
            if progress:
                progress(1)
        return
    chunk = 8
    batches = [plans[i:i + chunk] for i in range(0, len(plans), chunk)]
    # spawn: workers start clean, whatever threads the caller (e.g. torch) has running
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_render_many, b, str(out_dir), media) for b in batches]
        for fut in as_completed(futures):
            done = fut.result()
            if progress:
                progress(done)


def _counts(plans: list[ClipPlan], records) -> dict:
    c = collections.Counter
    return {
        "clips": len(plans),
        "records": len(records),
        "split": dict(sorted(c(p.split for p in plans).items())),
        "task": dict(sorted(c(r.task for r in records).items())),
        "emotion": dict(sorted(c(p.emotion for p in plans).items())),
        "intensity": dict(sorted(c(p.intensity for p in plans).items())),
        "cue_group": dict(sorted(c(p.cue_group for p in plans).items())),
        "intent": dict(sorted(c(p.intent for p in plans).items())),
        "single_cue_by_split": {s: dict(sorted(c(p.cue_group for p in plans if p.split == s
                                                  and p.cue_group in ("face", "voice", "text")).items()))
                                for s in SPLITS},
    }


def _prepare(out_dir: Path, overwrite: bool) -> None:
    manifest = out_dir / "manifest.jsonl"
    if manifest.exists() and not overwrite:
        raise FileExistsError(f"{manifest} already exists; choose another directory or pass overwrite=True "
                              "(--overwrite on the command line)")
    (out_dir / "media").mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in (out_dir / "media").glob("synth_*.mp4"):
            old.unlink()


def generate(out_dir: str | os.PathLike, n: int, seed: int = 0, *, media: MediaConfig | None = None,
             tasks: tuple[str, ...] = TASKS, split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
             workers: int | None = None, overwrite: bool = False,
             progress: Callable[[int], None] | None = None) -> dict:
    """Write a SynthAffect corpus of `n` clips to `out_dir`; return its summary.

    `progress`, if given, is called with the number of clips finished since the last
    call. `workers` defaults to the number of CPU cores (at most 8). The manifests
    and the decoded media depend only on `seed`, `n`, `media`, `tasks` and the split
    fractions, not on `workers`.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected a subset of {TASKS}")
    media = media or MediaConfig()
    out = Path(out_dir)
    _prepare(out, overwrite)
    start = time.perf_counter()
    plans = make_plans(n, seed, split_fractions)
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    _render_all(plans, out, media, min(workers, max(1, len(plans) // 8)), progress)
    records = [r for p in plans for r in clip_records(p, tuple(tasks))]
    write_manifest(out / "manifest.jsonl", records)
    for split in SPLITS:
        write_manifest(out / f"{split}.jsonl", [r for r in records if r.split == split])
    summary = {
        "generator": "SynthAffect", "version": GENERATOR_VERSION, "seed": seed, "n": n,
        "tasks": list(tasks), "split_fractions": list(split_fractions),
        "media": {**asdict(media), "video_codec": video_codec(), "audio_codec": "aac"},
        "counts": _counts(plans, records),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - start
    logger.info("SynthAffect: %d clips, %d records in %.1f s -> %s", n, len(records), elapsed, out)
    return {**summary, "seconds": round(elapsed, 2)}
