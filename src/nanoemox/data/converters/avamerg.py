"""Converter for AvaMERG, restructured turn by turn as the paper does.

Each conversation turn becomes two records: an `erg` sample (earlier text turns as
`history`, the speaker's current utterance as `text` with its clip as the media
query, and the chain of empathy plus the response as the target) and an `mer`
sample (the speaker's emotion in that turn). Free-form emotion words are folded onto
the 32 fine-grained labels (`labels.normalise_avamerg_emotion`); the raw word stays
in `extra["speaker_emotion_raw"]`. The speaker's k-th turn is utterance
2k of the dialogue, so its clip is `video/dia{conversation}utt{2k}_{speakerID}.mp4`
(`...utt{k}_...`, named after the turn id, is accepted as a variant).
For the test split only the last turn of each conversation is kept, which is the
sample the reference evaluation scores. Layout: docs/datasets.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nanoemox.data.converters.base import AnnotationError, Converter, ConversionContext, read_json
from nanoemox.data.manifest import Record
from nanoemox.tasks.labels import normalise_avamerg_emotion

log = logging.getLogger(__name__)

SPLIT_FILES = {
    "train": ("train.json",),
    "dev": ("dev.json", "val.json", "valid.json"),
    "test": ("test.json", "v_test_v5_0.json"),
}
COE_KEYS = ("event_scenario", "speaker_emotion", "emotion_cause", "goal_to_response")


def _files(root: Path, split: str | None) -> list[tuple[str, Path]]:
    found = []
    for s in ([split] if split else list(SPLIT_FILES)):
        path = next((root / n for n in SPLIT_FILES[s] if (root / n).is_file()), None)
        if path is not None:
            found.append((s, path))
    if not found:
        wanted = [n for s in ([split] if split else SPLIT_FILES) for n in SPLIT_FILES[s]]
        raise AnnotationError(root / wanted[0], "no AvaMERG annotation file found",
                              hint="expected one of " + ", ".join(wanted) + "; see docs/datasets.md")
    return found


def _role(role: Any, index: int) -> str:
    text = str(role or "").strip().lower()
    if text.startswith("speak") or text in ("user", "seeker"):
        return "speaker"
    if text.startswith("listen") or text in ("assistant", "supporter", "system"):
        return "listener"
    return "speaker" if index % 2 == 0 else "listener"  # dialogues alternate, speaker first


def _turn_records(conv: dict, turn: dict, split: str, media: ConversionContext, where: str) -> list[Record]:
    conv_id, speaker = str(conv["conversation_id"]), str(conv["speaker_profile"]["ID"])
    try:
        k = int(turn["turn_id"])
    except (KeyError, TypeError, ValueError):
        raise AnnotationError(where, f"a turn of conversation {conv_id} has no integer turn_id") from None
    name = f"dia{conv_id}utt{2 * k}_{speaker}"
    coe = turn.get("chain_of_empathy") or {}
    lacking = [key for key in COE_KEYS if not isinstance(coe.get(key), str)]
    if lacking or not isinstance(turn.get("response"), str):
        raise AnnotationError(where, f"turn {k} of conversation {conv_id} lacks "
                              + ", ".join(lacking + ([] if isinstance(turn.get("response"), str) else ["response"])))
    dialogue = turn.get("dialogue_history") or []
    history = [{"role": _role(u.get("role"), i), "text": str(u.get("utterance", ""))}
               for i, u in enumerate(dialogue[:-1])]
    query = str(dialogue[-1].get("utterance", "")) if dialogue else ""
    rid = f"avamerg_{name}"
    # Releases name the clip after the dialogue utterance (2k); some copies after the turn id (k).
    alt = f"dia{conv_id}utt{k}_{speaker}"
    paths = {"video": media.find(rid, "video", [f"video/{name}.mp4", f"video/{alt}.mp4"]),
             "audio": media.find(rid, "audio", [f"audio/{name}.wav", f"audio/{alt}.wav"]),
             "faces": None}
    extra = {"name": name, "conversation_id": conv_id, "turn_id": k, "topic": conv.get("topic"),
             "speaker_emotion_raw": coe["speaker_emotion"], "context": turn.get("context")}
    # The emotion is folded onto the 32 fine labels in both records, so the model
    # learns to name exactly the labels that scoring compares against.
    emotion = normalise_avamerg_emotion(coe["speaker_emotion"]) or coe["speaker_emotion"].strip()
    target = {key: coe[key].strip() for key in COE_KEYS}
    target["speaker_emotion"] = emotion
    target["reply"] = turn["response"].strip()
    return [
        Record(f"{rid}_erg", "AvaMERG", split, "erg", dict(paths), text=query or None,
               history=history, target=target, extra=dict(extra)),
        Record(f"{rid}_mer", "AvaMERG", split, "mer", dict(paths), text=query or None,
               history=history or None, target=emotion, extra=dict(extra)),
    ]


def convert_avamerg(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    records = []
    media.layout = "AvaMERG: one JSON list of conversations per split"
    for sample_split, path in _files(root, split):
        data = read_json(path)
        if not isinstance(data, list):
            raise AnnotationError(path, "expected a JSON list of conversations")
        media.note(path, split=sample_split, conversations=len(data))
        for ci, conv in enumerate(data):
            where = f"{path} (conversation #{ci})"
            try:
                turns = conv["turns"]
                conv["conversation_id"], conv["speaker_profile"]["ID"]
            except (KeyError, TypeError):
                raise AnnotationError(where, "conversation needs conversation_id, speaker_profile.ID "
                                      "and turns") from None
            if sample_split == "test" and turns:
                turns = turns[-1:]
            for turn in turns:
                records += _turn_records(conv, turn, sample_split, media, where)
    return records


CONVERTERS = [
    Converter("AvaMERG", convert_avamerg,
              description="empathetic response generation, turn by turn (+ MER per turn)"),
]
