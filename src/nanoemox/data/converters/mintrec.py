"""Converters for the intent datasets MIntRec (20 intents) and MIntRec2.0 (30 + UNK).

Both ship one TSV per split (`train.tsv`, `dev.tsv`, `test.tsv`) and one video clip
per utterance; every row becomes a `mir` record whose candidates are the dataset's
intent labels. Layouts: docs/datasets.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from nanoemox.data.converters.base import AnnotationError, Converter, MediaFinder, read_table
from nanoemox.data.manifest import Record
from nanoemox.tasks import labels as L

SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


def _split_files(root: Path, split: str | None, dataset: str) -> list[tuple[str, Path]]:
    wanted = [split] if split else list(SPLIT_FILES)
    found = [(s, root / SPLIT_FILES[s]) for s in wanted if (root / SPLIT_FILES[s]).is_file()]
    if not found:
        names = ", ".join(SPLIT_FILES[s] for s in wanted)
        raise AnnotationError(root / SPLIT_FILES[wanted[0]], f"no {dataset} split file found",
                              hint=f"expected {names} in {root}; see docs/datasets.md")
    return found


def _padded(value: str, prefix: str) -> str:
    """'5' or 'S05' -> 'S05' style folder names used by the MIntRec video tree."""
    value = value.strip()
    if re.fullmatch(r"\d+", value):
        return f"{prefix}{int(value):02d}"
    return value.upper() if re.fullmatch(rf"{prefix}\d+", value, re.I) else value


def _intent(label: str, known: tuple[str, ...], path: Path, line: int) -> str:
    norm = " ".join(label.replace("_", " ").split()).lower()
    if norm == L.MINTREC2_OOS.lower():
        return L.MINTREC2_OOS
    if norm not in known:
        raise AnnotationError(path, f"unknown intent label {label!r}", line=line,
                              hint="known labels: " + ", ".join(known))
    return norm


def convert_mintrec(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    records = []
    for sample_split, path in _split_files(root, split, "MIntRec"):
        for line, row in read_table(path, ("season", "episode", "clip", "text", "label"), delimiter="\t"):
            season, episode = _padded(row["season"], "S"), _padded(row["episode"], "E")
            clip = row["clip"]
            rid = f"mintrec_{season}_{episode}_{clip}"
            records.append(Record(
                rid, "MIntRec", sample_split, "mir",
                media={"video": media.find(rid, "video", [f"raw_data/{season}/{episode}/{clip}.mp4"]),
                       "audio": media.find(rid, "audio", [f"audio/{season}_{episode}_{clip}.wav"],
                                           required=False),
                       "faces": None},
                text=row["text"] or None,
                target=_intent(row["label"], L.MINTREC, path, line),
                candidates=list(L.MINTREC),
                extra={"name": f"{season}_{episode}_{clip}"},
            ))
    return records


def convert_mintrec2(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    required = ("dialogue_id", "utterance_id", "text", "label")
    records = []
    for sample_split, path in _split_files(root, split, "MIntRec2.0"):
        for line, row in read_table(path, required, delimiter="\t"):
            name = f"dia{row['dialogue_id']}_utt{row['utterance_id']}"
            rid = f"mintrec2_{name}"
            extra = {"name": name}
            for key in ("start_timestamp", "end_timestamp", "source", "speakername"):
                if row.get(key):
                    extra[key] = row[key]
            records.append(Record(
                rid, "MIntRec2.0", sample_split, "mir",
                media={"video": media.find(rid, "video", [f"video/{name}.mp4", f"raw_video/{name}.mp4"]),
                       "audio": media.find(rid, "audio", [f"audio/{name}.wav"], required=False),
                       "faces": None},
                text=row["text"] or None,
                target=_intent(row["label"], L.MINTREC2, path, line),
                # UNK is offered too, so out-of-scope utterances have a right answer.
                candidates=list(L.MINTREC2_WITH_UNK),
                extra=extra,
            ))
    return records


CONVERTERS = [
    Converter("MIntRec", convert_mintrec, description="20-intent multimodal intent recognition"),
    Converter("MIntRec2.0", convert_mintrec2, aliases=("mintrec2", "mintrec20", "mintrecv2"),
              description="30-intent multimodal intent recognition with out-of-scope UNK"),
]
