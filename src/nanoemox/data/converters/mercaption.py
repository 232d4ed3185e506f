"""Converters for the description datasets: MER-Caption+, MERR-Fine and EMER.

MER-Caption+ gives open-vocabulary labels (`ovmer`, track 2 CSV) and descriptions
(`eri`, track 3 CSV) for the same clips; MERR-Fine gives a reasoning caption per
clip (`eri`); EMER is the 100-sample `eri` evaluation set. Layouts: docs/datasets.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nanoemox.data.converters.base import (
    AnnotationError, Converter, MediaFinder, read_json, read_table, require_file, split_list,
    video_candidates,
)
from nanoemox.data.manifest import Record

log = logging.getLogger(__name__)

MERCAPTION_OV = "track2_train_mercaptionplus.csv"
MERCAPTION_REASON = "track3_train_mercaptionplus.csv"
SUBTITLE_FILES = ("subtitle_chieng.csv", "subtitle.csv", "subtitle_eng.csv")
MERR_FILES = ("MERR_fine_grained.json", "merr_fine_grained.json")
EMER_FILES = ("emer.csv", "gt-eng.csv", "EMER.csv")
MERR_EXTRA = ("pseu_emotion", "peak_index", "AU_list", "peak_AU_list", "visual_prior_list",
              "audio_prior_list")


def _media(media: MediaFinder, rid: str, name: str) -> dict[str, str | None]:
    return {"video": media.find(rid, "video", video_candidates("video", name)),
            "audio": media.find(rid, "audio", [f"audio/{name}.wav"], required=False),
            "faces": media.find(rid, "faces", [f"faces/{name}/"], required=False)}


def _subtitles(root: Path) -> dict[str, str]:
    for fname in SUBTITLE_FILES:
        if (root / fname).is_file():
            return {row["name"]: row.get("english") or row.get("chinese") or ""
                    for _, row in read_table(root / fname, ("name",))}
    log.warning("no subtitle CSV (%s) under %s; records get no text", ", ".join(SUBTITLE_FILES), root)
    return {}


def convert_mercaption(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    """MER-Caption+ (training only): one ovmer and one eri record per annotated clip."""
    if split not in (None, "train"):
        return []
    ov_path = require_file(root, (MERCAPTION_OV,), "MER-Caption+ open-set label CSV")
    reason_path = require_file(root, (MERCAPTION_REASON,), "MER-Caption+ description CSV")
    subs = _subtitles(root)
    records = []
    for _, row in read_table(ov_path, ("name", "openset")):
        words = split_list(row["openset"])
        if not words:
            continue  # clips without any open-set label carry nothing to learn
        rid = f"mercaptionplus_{row['name']}_ovmer"
        records.append(Record(rid, "MER-Caption+", "train", "ovmer", _media(media, rid, row["name"]),
                              text=subs.get(row["name"]) or None, target=words,
                              extra={"name": row["name"]}))
    for lineno, row in read_table(reason_path, ("name", "reason")):
        if not row["reason"]:
            log.debug("%s:%d has an empty reason; skipped", reason_path, lineno)
            continue
        rid = f"mercaptionplus_{row['name']}_eri"
        records.append(Record(rid, "MER-Caption+", "train", "eri", _media(media, rid, row["name"]),
                              text=subs.get(row["name"]) or None, target=row["reason"],
                              extra={"name": row["name"]}))
    return records


def convert_merr_fine(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    """MERR-Fine (training only): the reasoning caption of each clip as an eri target."""
    if split not in (None, "train"):
        return []
    path = require_file(root, MERR_FILES, "MERR-Fine annotation JSON")
    data = read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(path, "expected a JSON object keyed by sample name")
    records = []
    for name, item in data.items():
        if not isinstance(item, dict) or not isinstance(item.get("smp_reason_caption"), str):
            raise AnnotationError(path, f"sample {name!r} lacks a string 'smp_reason_caption'")
        if not item["smp_reason_caption"].strip():
            continue
        rid = f"merrfine_{name}"
        records.append(Record(rid, "MERR-Fine", "train", "eri", _media(media, rid, name),
                              text=(item.get("text") or None), target=item["smp_reason_caption"].strip(),
                              extra={"name": name, **{k: item[k] for k in MERR_EXTRA if k in item}}))
    return records


def convert_emer(root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    """EMER (evaluation): reasons as eri targets, the emotion words kept in `extra`."""
    if split not in (None, "test"):
        return []
    path = require_file(root, EMER_FILES, "EMER annotation CSV")
    aliases = {"name": ("names",), "reason": ("reasons", "description")}
    records = []
    for lineno, row in read_table(path, ("name", "reason"), aliases=aliases):
        if not row["reason"]:
            raise AnnotationError(path, f"sample {row['name']!r} has an empty reason", line=lineno)
        rid = f"emer_{row['name']}"
        extra = {"name": row["name"]}
        if row.get("emotions") or row.get("emotion"):
            extra["emotions"] = split_list(row.get("emotions") or row.get("emotion"))
        records.append(Record(rid, "EMER", "test", "eri", _media(media, rid, row["name"]),
                              text=(row.get("subtitles") or row.get("subtitle") or None),
                              target=row["reason"], extra=extra))
    return records


CONVERTERS = [
    Converter("MER-Caption+", convert_mercaption, aliases=("mercaption", "mercaptionplus"),
              description="open-vocabulary labels and descriptions (train)"),
    Converter("MERR-Fine", convert_merr_fine, aliases=("merr", "merrfinegrained"),
              description="fine-grained emotion reasoning captions (train)"),
    Converter("EMER", convert_emer, description="explainable emotion reasoning (test)"),
]
