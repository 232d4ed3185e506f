"""Generate a SynthAffect corpus: plan the clips, render their media in parallel, write manifests.

Output layout under `out_dir`:
    manifest.jsonl               every record
    train.jsonl dev.jsonl test.jsonl   the same records by split (split by clip)
    media/synth_00000.mp4 ...    one mp4 per clip (video + 16 kHz mono AAC audio)
    synthaffect.json             seed, size, generator version, media settings, counts

`people=2` writes two-person clips instead (`people.py`): a speaker and a listener side
by side, for evaluating per-person answers; their records hold only the emotion tasks
and describe both people in `extra`.
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from nanoemox.data.manifest import SPLITS, write_manifest
from nanoemox.data.synth import clip, people as two_people
from nanoemox.data.synth.clip import MediaConfig, clip_prosody, face_peak, render
from nanoemox.data.synth.mux import video_codec
from nanoemox.data.synth.plan import ClipPlan, make_plans
from nanoemox.data.synth.records import clip_records
from nanoemox.tasks import TASK_NAMES

logger = logging.getLogger(__name__)

__all__ = ["GENERATOR_VERSION", "MediaConfig", "SUMMARY_FILE", "clip_prosody", "face_peak", "generate", "render"]

GENERATOR_VERSION = "1.0"
SUMMARY_FILE = "synthaffect.json"
# Renderer of one clip by number of people in it.
RENDERERS: dict[int, Callable[[ClipPlan, str | os.PathLike, MediaConfig], str]] = {
    1: clip.render, 2: two_people.render,
}


def _render_many(plans: list[ClipPlan], out_dir: str, media: MediaConfig, people: int) -> int:
    for plan in plans:
        RENDERERS[people](plan, out_dir, media)
    return len(plans)


def _render_all(plans: list[ClipPlan], out_dir: Path, media: MediaConfig, people: int, workers: int,
                progress: Callable[[int], None] | None) -> None:
    """Render every clip, in `workers` processes when more than one."""
    if workers <= 1:
        for plan in plans:
            RENDERERS[people](plan, out_dir, media)
            if progress:
                progress(1)
        return
    chunk = 8
    batches = [plans[i:i + chunk] for i in range(0, len(plans), chunk)]
    # spawn: workers start clean, whatever threads the caller (e.g. torch) has running
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_render_many, b, str(out_dir), media, people) for b in batches]
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


def _people_counts(extras: list[dict]) -> dict:
    """Counts of a two-person corpus beyond the speaker's plan: speaker side, listener emotion."""
    c = collections.Counter
    listeners = [person for extra in extras for person in extra["people"] if not person["speaking"]]
    return {"speaker_side": dict(sorted(c(extra["people"][extra["speaker"]]["side"] for extra in extras).items())),
            "listener_emotion": dict(sorted(c(person["emotion"] for person in listeners).items()))}


def _check_request(tasks: tuple[str, ...], people: int) -> None:
    if people not in RENDERERS:
        raise ValueError(f"people must be one of {sorted(RENDERERS)}, got {people}")
    allowed = TASK_NAMES if people == 1 else two_people.PEOPLE_TASKS
    unknown = [t for t in tasks if t not in allowed]
    if unknown:
        which = "" if people == 1 else " for two-person clips (their records answer for the speaker's emotion)"
        raise ValueError(f"unknown task(s) {unknown}{which}; expected a subset of {allowed}")


def generate(out_dir: str | os.PathLike, n: int, seed: int = 0, *, media: MediaConfig | None = None,
             tasks: tuple[str, ...] | None = None, split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
             workers: int | None = None, overwrite: bool = False, people: int = 1,
             progress: Callable[[int], None] | None = None) -> dict:
    """Write a SynthAffect corpus of `n` clips to `out_dir`; return its summary.

    `people` is 1 (the training corpus) or 2 (two-person clips for evaluation, see
    `people.py`); `tasks` defaults to every task, or the emotion tasks with two people.
    `progress`, if given, is called with the number of clips finished since the last
    call. `workers` defaults to the number of CPU cores (at most 8). The manifests
    and the decoded media depend only on `seed`, `n`, `media`, `tasks`, `people` and
    the split fractions, not on `workers`.
    """
    tasks = tuple(tasks) if tasks is not None else TASK_NAMES if people == 1 else two_people.PEOPLE_TASKS
    _check_request(tasks, people)
    media = media or MediaConfig()
    out = Path(out_dir)
    _prepare(out, overwrite)
    start = time.perf_counter()
    plans = make_plans(n, seed, split_fractions, two_people.SPEAKER_CUE_GROUPS if people == 2 else None)
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    _render_all(plans, out, media, people, min(workers, max(1, len(plans) // 8)), progress)
    records = [r for p in plans for r in clip_records(p, tasks)]
    counts = _counts(plans, records)
    if people == 2:
        extras = {p.clip_id: two_people.people_extra(p, media) for p in plans}
        for r in records:
            r.extra.update(copy.deepcopy(extras[r.extra["clip_id"]]))
        counts.update(_people_counts(list(extras.values())))
    write_manifest(out / "manifest.jsonl", records)
    for split in SPLITS:
        write_manifest(out / f"{split}.jsonl", [r for r in records if r.split == split])
    summary = {
        "generator": "SynthAffect", "version": GENERATOR_VERSION, "seed": seed, "n": n,
        **({"people": people} if people != 1 else {}),  # a one-person summary stays as it always was
        "tasks": list(tasks), "split_fractions": list(split_fractions),
        "media": {**asdict(media), "video_codec": video_codec(), "audio_codec": "aac"},
        "counts": counts,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - start
    logger.info("SynthAffect: %d clips (%d people each), %d records in %.1f s -> %s",
                n, people, len(records), elapsed, out)
    return {**summary, "seconds": round(elapsed, 2)}
