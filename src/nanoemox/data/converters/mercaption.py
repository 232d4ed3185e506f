"""Converters for the description datasets: MER-Caption+, MERR-Fine and EMER.

MER-Caption+ gives open-vocabulary labels (`ovmer`, track 2 CSV) and descriptions
(`eri`, track 3 CSV) for the same clips; MERR-Fine gives a reasoning caption per
clip (`eri`); EMER is the `eri` evaluation set: its current release is
`final-EMER-reason.csv` (`name,chinese,english`, 332 rows, the reason in `english`),
its first `gt-eng.csv` (`names,emotions,subtitles,reasons`, 100 rows); when both are
present the current one is read. Layouts: docs/datasets.md.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from nanoemox.data.converters.base import (
    AnnotationError, Converter, ConversionContext, read_json, read_table, require_file, split_list,
    video_candidates,
)
from nanoemox.data.manifest import Record

log = logging.getLogger(__name__)

MERCAPTION_OV = "track2_train_mercaptionplus.csv"
MERCAPTION_REASON = "track3_train_mercaptionplus.csv"
SUBTITLE_FILES = ("subtitle_chieng.csv", "subtitle.csv", "subtitle_eng.csv")
MERR_FILES = ("MERR_fine_grained.json", "merr_fine_grained.json")
EMER_V2 = "final-EMER-reason.csv"
EMER_FILES = (EMER_V2, "emer.csv", "gt-eng.csv", "EMER.csv")
MERR_EXTRA = ("pseu_emotion", "peak_index", "AU_list", "peak_AU_list", "visual_prior_list",
              "audio_prior_list")


def _media(media: ConversionContext, rid: str, name: str) -> dict[str, str | None]:
    return {"video": media.find(rid, "video", video_candidates("video", name)),
            "audio": media.find(rid, "audio", [f"audio/{name}.wav"], required=False),
            "faces": media.find(rid, "faces", [f"faces/{name}/"], required=False)}


def _subtitles(root: Path, media: ConversionContext, warn: bool = True) -> dict[str, str]:
    """Clip name -> subtitle (English if given, else Chinese) from the first subtitle CSV found."""
    for fname in SUBTITLE_FILES:
        if (root / fname).is_file():
            subs = {row["name"]: row.get("english") or row.get("chinese") or ""
                    for _, row in read_table(root / fname, ("name",))}
            media.note(root / fname, rows=len(subs), role="subtitles")
            return subs
    if warn:
        log.warning("no subtitle CSV (%s) under %s; records get no text", ", ".join(SUBTITLE_FILES), root)
    return {}


def _mercaption_ov(path: Path, subs: dict[str, str], media: ConversionContext) -> list[Record]:
    records = []
    for _, row in read_table(path, ("name", "openset")):
        words = split_list(row["openset"])
        if not words:
            continue  # clips without any open-set label carry nothing to learn
        rid = f"mercaptionplus_{row['name']}_ovmer"
        records.append(Record(rid, "MER-Caption+", "train", "ovmer", _media(media, rid, row["name"]),
                              text=subs.get(row["name"]) or None, target=words,
                              extra={"name": row["name"]}))
    media.note(path, rows=len(records), task="ovmer", columns=["name", "openset"])
    return records


def _mercaption_reason(path: Path, subs: dict[str, str], media: ConversionContext) -> list[Record]:
    records, empty = [], 0
    for lineno, row in read_table(path, ("name", "reason")):
        if not row["reason"]:
            empty += 1
            log.debug("%s:%d has an empty reason; skipped", path, lineno)
            continue
        rid = f"mercaptionplus_{row['name']}_eri"
        records.append(Record(rid, "MER-Caption+", "train", "eri", _media(media, rid, row["name"]),
                              text=subs.get(row["name"]) or None, target=row["reason"],
                              extra={"name": row["name"]}))
    media.note(path, rows=len(records), task="eri", columns=["name", "reason"], empty_reasons=empty)
    return records


def convert_mercaption(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """MER-Caption+ (training only): one ovmer and one eri record per annotated clip."""
    media.layout = f"MER-Caption+ release: {MERCAPTION_OV} + {MERCAPTION_REASON} (+ subtitle CSV); train only"
    if split not in (None, "train"):
        return []
    ov_path = require_file(root, (MERCAPTION_OV,), "MER-Caption+ open-set label CSV")
    reason_path = require_file(root, (MERCAPTION_REASON,), "MER-Caption+ description CSV")
    subs = _subtitles(root, media)
    return _mercaption_ov(ov_path, subs, media) + _mercaption_reason(reason_path, subs, media)


def convert_merr_fine(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """MERR-Fine (training only): the reasoning caption of each clip as an eri target."""
    media.layout = f"MERR-Fine release: {MERR_FILES[0]} (one object per clip); train only"
    if split not in (None, "train"):
        return []
    path = require_file(root, MERR_FILES, "MERR-Fine annotation JSON")
    data = read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(path, "expected a JSON object keyed by sample name")
    records, keys = [], set()
    for name, item in data.items():
        if not isinstance(item, dict) or not isinstance(item.get("smp_reason_caption"), str):
            raise AnnotationError(path, f"sample {name!r} lacks a string 'smp_reason_caption'")
        keys.update(item)
        if not item["smp_reason_caption"].strip():
            continue
        rid = f"merrfine_{name}"
        records.append(Record(rid, "MERR-Fine", "train", "eri", _media(media, rid, name),
                              text=(item.get("text") or None), target=item["smp_reason_caption"].strip(),
                              extra={"name": name, **{k: item[k] for k in MERR_EXTRA if k in item}}))
    media.note(path, samples=len(data), rows=len(records), keys=sorted(keys))
    return records


# ---- EMER ---------------------------------------------------------------------------
def _emer_file(root: Path) -> tuple[Path, list[str]]:
    """final-EMER-reason.csv when present (the current release), else the first older file;
    also the names of the other EMER files present, which are not read."""
    path = require_file(root, EMER_FILES, "EMER annotation CSV")
    ignored = [n for n in EMER_FILES if (root / n).is_file() and not (root / n).samefile(path)]
    if ignored:
        log.info("EMER: reading %s; also present and not read: %s", path.name, ", ".join(ignored))
    return path, ignored


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [h.strip().lower() for h in next(csv.reader(fh), [])]


def _is_emer_v2(columns: list[str]) -> bool:
    """True for the current release's columns (name, chinese, english; no reason column)."""
    return "english" in columns and not set(columns) & {"reason", "reasons", "description"}


def _emer_v2(path: Path, root: Path, media: ConversionContext) -> list[Record]:
    """final-EMER-reason.csv: the english column is the reason; subtitles from a subtitle CSV if any."""
    subs = _subtitles(root, media, warn=False)
    records = []
    for lineno, row in read_table(path, ("name", "english"), aliases={"name": ("names",)}):
        if not row["english"]:
            raise AnnotationError(path, f"sample {row['name']!r} has an empty english reason", line=lineno,
                                  hint="fill in the reason or re-download final-EMER-reason.csv")
        rid = f"emer_{row['name']}"
        extra = {"name": row["name"], **({"reason_chinese": row["chinese"]} if row.get("chinese") else {})}
        records.append(Record(rid, "EMER", "test", "eri", _media(media, rid, row["name"]),
                              text=subs.get(row["name"]) or None, target=row["english"], extra=extra))
    return records


def _emer_v1(path: Path, media: ConversionContext) -> list[Record]:
    """gt-eng.csv: reasons as targets, subtitles as text, emotion words kept in `extra`."""
    aliases = {"name": ("names",), "reason": ("reasons", "description")}
    records = []
    for lineno, row in read_table(path, ("name", "reason"), aliases=aliases):
        if not row["reason"]:
            raise AnnotationError(path, f"sample {row['name']!r} has an empty reason", line=lineno,
                                  hint="fill in the reason or re-download the EMER CSV")
        rid = f"emer_{row['name']}"
        extra = {"name": row["name"]}
        if row.get("emotions") or row.get("emotion"):
            extra["emotions"] = split_list(row.get("emotions") or row.get("emotion"))
        records.append(Record(rid, "EMER", "test", "eri", _media(media, rid, row["name"]),
                              text=(row.get("subtitles") or row.get("subtitle") or None),
                              target=row["reason"], extra=extra))
    return records


def convert_emer(root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    """EMER (evaluation): one eri record per clip; test split only."""
    if split not in (None, "test"):
        media.layout = "EMER: evaluation set, test split only"
        return []
    path, ignored = _emer_file(root)
    columns = _header(path)
    if _is_emer_v2(columns):
        media.layout = f"EMER current release: {path.name} (name,chinese,english)"
        records = _emer_v2(path, root, media)
    else:
        media.layout = f"EMER first release: {path.name} (names,emotions,subtitles,reasons)"
        records = _emer_v1(path, media)
    media.note(path, split="test", rows=len(records), columns=columns,
               **({"ignored": ignored} if ignored else {}))
    return records


CONVERTERS = [
    Converter("MER-Caption+", convert_mercaption, aliases=("mercaption", "mercaptionplus"),
              description="open-vocabulary labels and descriptions (train)"),
    Converter("MERR-Fine", convert_merr_fine, aliases=("merr", "merrfinegrained"),
              description="fine-grained emotion reasoning captions (train)"),
    Converter("EMER", convert_emer, description="explainable emotion reasoning (test)"),
]
