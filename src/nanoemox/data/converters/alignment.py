"""Converters for the phase-1 alignment sets: FERV39K, CAER (visual), CREMA-D, M3ED (speech).

All four become `mer` records with the dataset's label set as candidates, as phase 1
trains the modality adapters on `[Recognition]` only. CAER and CREMA-D encode the
label in the folder or file name, so the media tree is the annotation (noted as
folders with file counts); FERV39K and M3ED have annotation files. CREMA-D ships
`AudioWAV/*.wav` and `VideoFlash/*.flv`; M3ED names clips `{speaker}_{utterance}.wav`.
Layouts: docs/datasets.md.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterator

from nanoemox.data.converters.base import AnnotationError, Converter, ConversionContext, read_json, video_candidates
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


def _ferv_file(path: Path, sample_split: str, media: ConversionContext) -> list[Record]:
    records = []
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
    media.note(path, split=sample_split, rows=len(records))
    return records


def convert_ferv39k(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    media.layout = f"FERV39K release: {FERV39K_SETUP}/{{train,test}}_All.csv + {FERV39K_FACES}/"
    files = {"train": "train_All.csv", "test": "test_All.csv"}
    records = []
    for sample_split, fname in files.items():
        if split not in (None, sample_split):
            continue
        path = root / FERV39K_SETUP / fname
        if not path.is_file():
            raise AnnotationError(path, "FERV39K setup file not found", hint="see docs/datasets.md")
        records += _ferv_file(path, sample_split, media)
    return records


# ---- CAER ---------------------------------------------------------------------------
CAER_CLIPS = (".avi", ".mp4")


def _caer_split(root: Path, sdir: Path, sample_split: str, media: ConversionContext) -> list[Record]:
    """Records of one CAER split folder (<split>/<Emotion>/<clip>.avi); notes it with counts."""
    records, per_label = [], {}
    for edir in sorted(d for d in sdir.iterdir() if d.is_dir()):
        label = _basic(edir.name, L.CAER)
        if label is None:
            raise AnnotationError(edir, f"unknown emotion folder {edir.name!r}",
                                  hint="expected one of " + ", ".join(L.CAER))
        clips = sorted(p for p in edir.iterdir() if p.suffix.lower() in CAER_CLIPS)
        per_label[edir.name] = len(clips)
        for clip in clips:
            rel = clip.relative_to(root).as_posix()
            rid = f"caer_{sample_split}_{label}_{clip.stem}"
            records.append(Record(rid, "CAER", sample_split, "mer",
                                  media={"video": media.find(rid, "video", [rel]), "audio": None,
                                         "faces": None},
                                  target=label, candidates=list(L.CAER), extra={"name": clip.stem}))
    media.note(sdir, split=sample_split, files=len(records), per_folder=per_label)
    return records


def convert_caer(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """CAER: <split>/<Emotion>/<clip>.avi; folder names give split and label."""
    media.layout = "CAER release: {train,validation,test}/<Emotion>/<clip>.avi (labels from folders)"
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _SPLIT_DIRS]
    if not split_dirs:
        raise AnnotationError(root, "no CAER split folders (train/validation/test) found",
                              hint="see docs/datasets.md")
    records = []
    for sdir in split_dirs:
        sample_split = _SPLIT_DIRS[sdir.name.lower()]
        if split in (None, sample_split):
            records += _caer_split(root, sdir, sample_split, media)
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
# The release ships VideoFlash/*.flv; VideoMP4/*.mp4 (a conversion) is taken when present.
CREMA_VIDEO = (("VideoMP4", ".mp4"), ("VideoFlash", ".flv"))


def _crema_names(audio_dir: Path) -> tuple[list[tuple[Path, re.Match, str]], list[str]]:
    """(wav, name match, label) for well-named clips, and the names of the others."""
    good, skipped = [], []
    for wav in sorted(audio_dir.glob("*.wav")):
        match = _CREMA_NAME.match(wav.stem)
        label = _basic(match.group(3), L.CREMA_D) if match else None
        if label is None:
            skipped.append(wav.name)
        else:
            good.append((wav, match, label))
    if skipped:
        log.warning("CREMA-D: %d file(s) in %s do not follow ACTOR_SENTENCE_EMOTION_LEVEL.wav "
                    "(e.g. 1001_DFA_ANG_XX.wav) and were skipped: %s", len(skipped), audio_dir,
                    ", ".join(skipped[:10]) + (", ..." if len(skipped) > 10 else ""))
    return good, skipped


def _crema_note_folders(root: Path, matched: int, skipped: list[str], media: ConversionContext) -> None:
    """Note AudioWAV/ (with matched and skipped names) and each video folder with its file count."""
    details = {"skipped": len(skipped), "skipped_examples": skipped[:3]} if skipped else {}
    media.note(root / "AudioWAV", files=matched + len(skipped), matched=matched, **details)
    for folder, ext in CREMA_VIDEO:
        if (root / folder).is_dir():
            media.note(root / folder, files=sum(1 for _ in (root / folder).glob(f"*{ext}")))


def _crema_record(wav: Path, match: re.Match, label: str, media: ConversionContext) -> Record:
    rid = f"cremad_{wav.stem}"
    video = media.find(rid, "video", [f"{folder}/{wav.stem}{ext}" for folder, ext in CREMA_VIDEO],
                       required=False)
    return Record(rid, "CREMA-D", "train", "mer",
                  media={"video": video, "audio": media.find(rid, "audio", [f"AudioWAV/{wav.name}"]),
                         "faces": None},
                  text=CREMA_SENTENCES.get(match.group(2)), target=label,
                  candidates=list(L.CREMA_D),
                  extra={"name": wav.stem, "actor": match.group(1), "level": match.group(4)})


def convert_crema_d(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """CREMA-D: AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav; no official split, all train."""
    media.layout = "CREMA-D release: AudioWAV/*.wav + VideoFlash/*.flv (labels from file names; all train)"
    audio_dir = root / "AudioWAV"
    if not audio_dir.is_dir():
        raise AnnotationError(audio_dir, "CREMA-D AudioWAV folder not found", hint="see docs/datasets.md")
    good, skipped = _crema_names(audio_dir)
    _crema_note_folders(root, len(good), skipped, media)
    if split not in (None, "train"):
        return []
    return [_crema_record(wav, match, label, media) for wav, match, label in good]


# ---- M3ED ---------------------------------------------------------------------------
M3ED_FILES = ("annotation.json", "m3ed_annotation.json")
M3ED_SPLIT_FILES = (("train", "train"), ("dev", "val"), ("test", "test"))


def _utterances(node: Any, series: str | None = None) -> Iterator[tuple[str, str, dict]]:
    """(series, utterance id, utterance) for every dict holding Text and EmoAnnotation."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if isinstance(value, dict) and "Text" in value and "EmoAnnotation" in value:
            yield series or key, str(key), value
        elif isinstance(value, dict):
            yield from _utterances(value, series or str(key))


def _m3ed_splits(root: Path, media: ConversionContext) -> dict[str, str]:
    """Series name -> split from splitInfo/movie_list_<split>.txt (empty when absent)."""
    out = {}
    for split, fname in M3ED_SPLIT_FILES:
        path = root / "splitInfo" / f"movie_list_{fname}.txt"
        if path.is_file():
            names = path.read_text(encoding="utf-8").split()
            out.update((name.strip(), split) for name in names)
            media.note(path, split=split, series=len(names))
    if not out:
        log.warning("M3ED: no splitInfo/movie_list_{train,val,test}.txt under %s; every utterance "
                    "goes to train", root)
    return out


def _m3ed_media(rid: str, utt_id: str, speaker: str, media: ConversionContext) -> dict[str, str | None]:
    """Clips are named {speaker}_{utterance id} (A_anjia_1_1.wav); bare {utterance id} also works."""
    stems = ([f"{speaker}_{utt_id}"] if speaker else []) + [utt_id]
    return {"video": media.find(rid, "video", [f"video/{s}.mp4" for s in stems], required=False),
            "audio": media.find(rid, "audio", [f"audio/{s}.wav" for s in stems]),
            "faces": None}


def _m3ed_label(utt_id: str, utt: dict, path: Path) -> str:
    emo = utt["EmoAnnotation"]
    raw = emo.get("final_main_emo") if isinstance(emo, dict) else emo
    label = _basic(str(raw or ""), L.M3ED)
    if label is None:
        raise AnnotationError(path, f"utterance {utt_id!r} has unknown emotion {raw!r}",
                              hint="expected final_main_emo in " + ", ".join(L.M3ED))
    return label


def convert_m3ed(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    media.layout = "M3ED release: annotation.json + splitInfo/movie_list_*.txt + audio/{speaker}_{utt}.wav"
    path = next((root / n for n in M3ED_FILES if (root / n).is_file()), root / M3ED_FILES[0])
    if not path.is_file():
        raise AnnotationError(path, "M3ED annotation JSON not found", hint="see docs/datasets.md")
    splits = _m3ed_splits(root, media)
    records, total, series_seen = [], 0, set()
    for series, utt_id, utt in _utterances(read_json(path)):
        label = _m3ed_label(utt_id, utt, path)
        total += 1
        series_seen.add(series)
        sample_split = splits.get(series, "train")
        if split not in (None, sample_split):
            continue
        rid, speaker = f"m3ed_{utt_id}", str(utt.get("Speaker") or "").strip()
        extra = {"name": utt_id, "series": series, **({"speaker": speaker} if speaker else {})}
        records.append(Record(rid, "M3ED", sample_split, "mer", _m3ed_media(rid, utt_id, speaker, media),
                              text=str(utt.get("Text") or "") or None, target=label,
                              candidates=list(L.M3ED), extra=extra))
    media.note(path, utterances=total, series=len(series_seen))
    return records


CONVERTERS = [
    Converter("FERV39K", convert_ferv39k, description="in-the-wild facial expression clips (7 emotions)"),
    Converter("CAER", convert_caer, description="context-aware emotion clips (7 emotions)"),
    Converter("CREMA-D", convert_crema_d, description="acted emotional speech (6 emotions)"),
    Converter("M3ED", convert_m3ed, description="Chinese TV dialogue emotions (7 emotions)"),
]
