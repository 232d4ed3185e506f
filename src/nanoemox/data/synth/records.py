"""Manifest records of a SynthAffect clip: one line per task, all pointing at the same mp4."""

from __future__ import annotations

from nanoemox.data.manifest import Record
from nanoemox.data.synth import text as wording
from nanoemox.data.synth.plan import ClipPlan
from nanoemox.data.synth.vocab import EMOTIONS, INTENTS, ovmer_words, valence
from nanoemox.tasks import TASK_NAMES

DATASET = "SynthAffect"


def media_path(plan: ClipPlan) -> str:
    """Path of the clip's mp4, relative to the corpus directory."""
    return f"media/{plan.clip_id}.mp4"


def _target(plan: ClipPlan, task: str):
    event = wording.EVENTS_BY_KEY[plan.event]
    if task == "msa":
        return valence(plan.emotion, plan.intensity)
    if task == "mer":
        return plan.emotion
    if task == "ovmer":
        return ovmer_words(plan.emotion, plan.intensity)
    if task == "eri":
        return wording.reason(plan.emotion, plan.intensity, plan.cues, plan.remark, plan.conflict)
    if task == "mir":
        return plan.intent
    if task == "erg":
        return wording.empathy_target(event, plan.emotion, plan.variant["reply"])
    raise ValueError(f"unknown task {task!r}; expected one of {TASK_NAMES}")


def clip_records(plan: ClipPlan, tasks: tuple[str, ...] = TASK_NAMES) -> list[Record]:
    """The manifest lines of one clip, one per task in `tasks`."""
    extra = plan.to_extra()
    records = []
    for task in tasks:
        history = None
        if task == "erg":
            event = wording.EVENTS_BY_KEY[plan.event]
            history = wording.dialogue_history(event, plan.variant["history"] % 2 == 1, plan.variant["prompt"])
        candidates = list(EMOTIONS) if task == "mer" else list(INTENTS) if task == "mir" else None
        records.append(Record(
            id=f"{plan.clip_id}_{task}", dataset=DATASET, split=plan.split, task=task,
            media={"video": media_path(plan), "audio": None, "faces": None},
            text=plan.subtitle, history=history, target=_target(plan, task),
            candidates=candidates, extra=dict(extra),
        ))
    return records
