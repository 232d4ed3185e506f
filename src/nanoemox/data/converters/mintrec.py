"""Converters for the intent datasets MIntRec (20 intents) and MIntRec2.0 (30 + UNK).

Every TSV row becomes a `mir` record whose candidates are the dataset's intent
labels, with one video clip per utterance. MIntRec ships `{train,dev,test}.tsv`
beside `raw_data/S*/E*/*.mp4`. MIntRec2.0 ships `in-scope/{split}.tsv` plus the
out-of-scope (label `UNK`) rows in `out-of-scope/{split}.tsv` (MIntRec2.0-OOD),
a `total/{split}.tsv` holding both, and clips as `raw_data/dia{D}_utt{U}.mp4`;
flat `{split}.tsv` files (an older layout) are read when neither folder exists.
Each row is read once: in-scope + out-of-scope win over total/, which wins over
the flat files. Layouts: docs/datasets.md.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from nanoemox.data.converters.base import AnnotationError, Converter, ConversionContext, read_table
from nanoemox.data.manifest import SPLITS, Record
from nanoemox.tasks import labels as L

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
MINTREC2_COLUMNS = ("dialogue_id", "utterance_id", "text", "label")
MINTREC2_EXTRA = ("start_timestamp", "end_timestamp", "source", "speakername")
IN_SCOPE, OUT_OF_SCOPE, TOTAL = "in-scope", "out-of-scope", "total"


def _split_files(root: Path, split: str | None, dataset: str, folder: str = "") -> list[tuple[str, Path]]:
    """(split, path) of the `{split}.tsv` files present in root/folder; an error if none is."""
    base = root / folder if folder else root
    wanted = [split] if split else list(SPLITS)
    found = [(s, base / SPLIT_FILES[s]) for s in wanted if (base / SPLIT_FILES[s]).is_file()]
    if not found:
        names = ", ".join(SPLIT_FILES[s] for s in wanted)
        raise AnnotationError(base / SPLIT_FILES[wanted[0]], f"no {dataset} split file found",
                              hint=f"expected {names} in {base}; see docs/datasets.md")
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


# ---- MIntRec ------------------------------------------------------------------------
def _mintrec_rows(path: Path, sample_split: str, media: ConversionContext) -> list[Record]:
    records = []
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


def convert_mintrec(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    media.layout = "MIntRec release: {train,dev,test}.tsv + raw_data/S*/E*/<clip>.mp4"
    records = []
    for sample_split, path in _split_files(root, split, "MIntRec"):
        rows = _mintrec_rows(path, sample_split, media)
        media.note(path, split=sample_split, rows=len(rows))
        records += rows
    return records


# ---- MIntRec2.0 ---------------------------------------------------------------------
def _mintrec2_record(row: dict[str, str], sample_split: str, path: Path, line: int,
                     media: ConversionContext) -> Record:
    name = f"dia{row['dialogue_id']}_utt{row['utterance_id']}"
    rid = f"mintrec2_{name}"
    extra = {"name": name, **{k: row[k] for k in MINTREC2_EXTRA if row.get(k)}}
    clips = [f"raw_data/{name}.mp4", f"video/{name}.mp4", f"raw_video/{name}.mp4"]
    return Record(
        rid, "MIntRec2.0", sample_split, "mir",
        media={"video": media.find(rid, "video", clips),
               "audio": media.find(rid, "audio", [f"audio/{name}.wav"], required=False),
               "faces": None},
        text=row["text"] or None,
        target=_intent(row["label"], L.MINTREC2, path, line),
        # UNK is offered too, so out-of-scope utterances have a right answer.
        candidates=list(L.MINTREC2_WITH_UNK),
        extra=extra,
    )


def _mintrec2_read(path: Path, sample_split: str, media: ConversionContext, **details) -> list[Record]:
    """Records of one MIntRec2.0 TSV; notes the file with its row and UNK counts."""
    records = [_mintrec2_record(row, sample_split, path, line, media)
               for line, row in read_table(path, MINTREC2_COLUMNS, delimiter="\t")]
    unk = sum(r.target == L.MINTREC2_OOS for r in records)
    media.note(path, split=sample_split, rows=len(records), unk=unk, **details)
    return records


def _mintrec2_release(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """in-scope/{split}.tsv plus out-of-scope/{split}.tsv (the UNK rows) for each split."""
    oos_dir = root / OUT_OF_SCOPE
    records = []
    for sample_split, path in _split_files(root, split, "MIntRec2.0 in-scope", IN_SCOPE):
        oos = oos_dir / SPLIT_FILES[sample_split]
        warning = {}
        if not oos.is_file():
            problem = f"{oos.relative_to(root).as_posix()} not found: out-of-scope (UNK) rows are missing"
            log.warning("MIntRec2.0 %s: %s; to score UNK, put MIntRec2.0-OOD's %s at %s",
                        sample_split, problem, SPLIT_FILES[sample_split], oos)
            warning = {"warning": problem}
        records += _mintrec2_read(path, sample_split, media, part=IN_SCOPE, **warning)
        if oos.is_file():
            records += _mintrec2_read(oos, sample_split, media, part=OUT_OF_SCOPE)
    return records


def convert_mintrec2(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """MIntRec2.0: in-scope/ + out-of-scope/, else total/, else flat {split}.tsv files."""
    if (root / IN_SCOPE).is_dir():
        media.layout = "MIntRec2.0 release: in-scope/ + out-of-scope/ TSVs, clips in raw_data/"
        if not (root / OUT_OF_SCOPE).is_dir():
            media.layout += " (out-of-scope/ absent: no UNK rows)"
        return _mintrec2_release(root, split, media)
    if (root / TOTAL).is_dir():
        media.layout = "MIntRec2.0 release: total/ TSVs (in-scope + out-of-scope), clips in raw_data/"
        files, part = _split_files(root, split, "MIntRec2.0 total", TOTAL), TOTAL
    else:
        media.layout = "MIntRec2.0 flat layout: {train,dev,test}.tsv at the root"
        files, part = _split_files(root, split, "MIntRec2.0"), "flat"
    records = []
    for sample_split, path in files:
        records += _mintrec2_read(path, sample_split, media, part=part)
    return records


CONVERTERS = [
    Converter("MIntRec", convert_mintrec, description="20-intent multimodal intent recognition"),
    Converter("MIntRec2.0", convert_mintrec2, aliases=("mintrec2", "mintrec20", "mintrecv2"),
              description="30-intent multimodal intent recognition with out-of-scope UNK"),
]
