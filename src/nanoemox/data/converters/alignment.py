"""Converters for the phase-1 alignment sets: FERV39K, CAER (visual), CREMA-D, M3ED (speech).

All four become `mer` records with the dataset's label set as candidates, as phase 1
trains the modality adapters on `[Recognition]` only. CAER and CREMA-D encode the
label in the folder or file name, so the media tree is the annotation; FERV39K and
M3ED have annotation files. Layouts: docs/datasets.md.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterator

from nanoemox.data.converters.base import AnnotationError, Converter, MediaFinder, read_json, video_candidates
from nanoemox.data.manifest import Record
from nanoemox.tasks import labels as L

log = logging.getLogger(__name__)

# Spellings of the seven basic emotions in folder names and annotations.
_BASIC = {"anger": "anger", "angry": "anger", "ang": "anger", "disgust": "disgust",
          "disgusted": "disgust", "dis": "disgust", "fear": "fear", "fea": "fear",
          "happy": "happy", "happiness": "happy", "hap": "happy", "neutral": "neutral",
          "neu": "neutral", "sad": "sad", "sadness": "sad", "surprise": "surprise",
          "surprised": "surprise"}
_SPLIT_DIRS = {"train": "train", "training": "train", "validation": "dev", "val": "dev",
               "valid": "dev", "dev": "dev", "test": "test"}


def _basic(label: str, allowed: tuple[str, ...]) -> str | None:
    value = _BASIC.get(label.strip().lower())
    return value if value in allowed else None


# ---- FERV39K ----------------------------------------------------------------------
FERV39K_SETUP = "4_setups/All_scenes"
FERV39K_FACES = "2_ClipsforFaceCrop"


def _ferv_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, clip path, label) from a FERV39K setup file: "<clip path> <label>" per line."""
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
            if not fields:
                continue
            if len(fields) < 2:
                raise AnnotationError(path, "expected '<clip path> <label>'", line=lineno)
            yield lineno, fields[0].strip("/"), fields[-1]


def _ferv_label(raw: str, path: Path, line: int) -> str | None:
    if raw.isdigit():
        index = int(raw)
        if index >= len(L.FERV39K):
            raise AnnotationError(path, f"label index {index} is out of range 0-6", line=line,
                                  hint="indices follow the order " + ", ".join(L.FERV39K))
        return L.FERV39K[index]
    label = _basic(raw, L.FERV39K)
    if label is None and line > 1:
        raise AnnotationError(path, f"unknown emotion {raw!r}", line=line)
    return label  # None on line 1 means a header row


def convert_ferv39k(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    files = {"train": "train_All.csv", "test": "test_All.csv"}
    records = []
    for sample_split, fname in files.items():
        if split not in (None, sample_split):
            continue
        path = root / FERV39K_SETUP / fname
        if not path.is_file():
            raise AnnotationError(path, "FERV39K setup file not found", hint="see docs/datasets.md")
        for lineno, clip, raw in _ferv_rows(path):
            label = _ferv_label(raw, path, lineno)
            if label is None:
                continue
            rid = "ferv39k_" + clip.replace("/", "_")
            records.append(Record(
                rid, "FERV39K", sample_split, "mer",
                media={"video": media.find(rid, "video", video_candidates("video", clip), required=False),
                       "audio": None,
                       "faces": media.find(rid, "faces", [f"{FERV39K_FACES}/{clip}/"])},
                target=label, candidates=list(L.FERV39K), extra={"name": clip},
            ))
    return records


# ---- CAER ---------------------------------------------------------------------------
def convert_caer(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    """CAER: <split>/<Emotion>/<clip>.avi; folder names give split and label."""
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _SPLIT_DIRS]
    if not split_dirs:
        raise AnnotationError(root, "no CAER split folders (train/validation/test) found",
                              hint="see docs/datasets.md")
    records = []
    for sdir in split_dirs:
        sample_split = _SPLIT_DIRS[sdir.name.lower()]
        if split not in (None, sample_split):
            continue
        for edir in sorted(d for d in sdir.iterdir() if d.is_dir()):
            label = _basic(edir.name, L.CAER)
            if label is None:
                raise AnnotationError(edir, f"unknown emotion folder {edir.name!r}",
                                      hint="expected one of " + ", ".join(L.CAER))
            for clip in sorted(p for p in edir.iterdir() if p.suffix.lower() in (".avi", ".mp4")):
                rel = clip.relative_to(root).as_posix()
                rid = f"caer_{sample_split}_{label}_{clip.stem}"
                records.append(Record(rid, "CAER", sample_split, "mer",
                                      media={"video": media.find(rid, "video", [rel]), "audio": None,
                                             "faces": None},
                                      target=label, candidates=list(L.CAER), extra={"name": clip.stem}))
    return records


# ---- CREMA-D ------------------------------------------------------------------------
CREMA_SENTENCES = {
    "IEO": "It's eleven o'clock.", "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.", "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.", "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.", "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.", "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.", "WSI": "We'll stop in a couple of minutes.",
}
_CREMA_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def convert_crema_d(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    """CREMA-D: AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav; no official split, all train."""
    audio_dir = root / "AudioWAV"
    if not audio_dir.is_dir():
        raise AnnotationError(audio_dir, "CREMA-D AudioWAV folder not found", hint="see docs/datasets.md")
    if split not in (None, "train"):
        return []
    records = []
    for wav in sorted(audio_dir.glob("*.wav")):
        match = _CREMA_NAME.match(wav.stem)
        label = _basic(match.group(3), L.CREMA_D) if match else None
        if label is None:
            log.warning("CREMA-D: %s does not follow ACTOR_SENTENCE_EMOTION_LEVEL; skipped", wav.name)
            continue
        rid = f"cremad_{wav.stem}"
        video = media.find(rid, "video", [f"VideoMP4/{wav.stem}.mp4", f"VideoFlash/{wav.stem}.flv"],
                           required=False)
        records.append(Record(rid, "CREMA-D", "train", "mer",
                              media={"video": video, "audio": f"AudioWAV/{wav.name}", "faces": None},
                              text=CREMA_SENTENCES.get(match.group(2)), target=label,
                              candidates=list(L.CREMA_D),
                              extra={"name": wav.stem, "actor": match.group(1), "level": match.group(4)}))
    return records


# ---- M3ED ---------------------------------------------------------------------------
M3ED_FILES = ("annotation.json", "m3ed_annotation.json")


def _utterances(node: Any, series: str | None = None) -> Iterator[tuple[str, str, dict]]:
    """(series, utterance id, utterance) for every dict holding Text and EmoAnnotation."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if isinstance(value, dict) and "Text" in value and "EmoAnnotation" in value:
            yield series or key, str(key), value
        elif isinstance(value, dict):
            yield from _utterances(value, series or str(key))


def _m3ed_splits(root: Path) -> dict[str, str]:
    """Series name -> split from splitInfo/movie_list_<split>.txt (empty when absent)."""
    out = {}
    for split, fname in (("train", "train"), ("dev", "val"), ("test", "test")):
        path = root / "splitInfo" / f"movie_list_{fname}.txt"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").split():
                out[line.strip()] = split
    return out


def convert_m3ed(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    path = next((root / n for n in M3ED_FILES if (root / n).is_file()), root / M3ED_FILES[0])
    if not path.is_file():
        raise AnnotationError(path, "M3ED annotation JSON not found", hint="see docs/datasets.md")
    splits = _m3ed_splits(root)
    records = []
    for series, utt_id, utt in _utterances(read_json(path)):
        emo = utt["EmoAnnotation"]
        raw = emo.get("final_main_emo") if isinstance(emo, dict) else emo
        label = _basic(str(raw or ""), L.M3ED)
        if label is None:
            raise AnnotationError(path, f"utterance {utt_id!r} has unknown emotion {raw!r}",
                                  hint="expected final_main_emo in " + ", ".join(L.M3ED))
        sample_split = splits.get(series, "train")
        if split not in (None, sample_split):
            continue
        rid = f"m3ed_{utt_id}"
        records.append(Record(rid, "M3ED", sample_split, "mer",
                              media={"video": media.find(rid, "video", [f"video/{utt_id}.mp4"], required=False),
                                     "audio": media.find(rid, "audio", [f"audio/{utt_id}.wav"]),
                                     "faces": None},
                              text=str(utt.get("Text") or "") or None, target=label,
                              candidates=list(L.M3ED), extra={"name": utt_id, "series": series}))
    return records


CONVERTERS = [
    Converter("FERV39K", convert_ferv39k, description="in-the-wild facial expression clips (7 emotions)"),
    Converter("CAER", convert_caer, description="context-aware emotion clips (7 emotions)"),
    Converter("CREMA-D", convert_crema_d, description="acted emotional speech (6 emotions)"),
    Converter("M3ED", convert_m3ed, description="Chinese TV dialogue emotions (7 emotions)"),
]
