"""Converters for the nine MER-UniBench evaluation sets, in their MER-UniBench layout.

MER2023, MER2024, MELD and IEMOCAP become `mer` records (a one-hot label), MOSI,
MOSEI, SIMS and SIMSv2 `msa` records (a float valence), OV-MERD+ `ovmer` records (a
list of emotion words). Each dataset folder holds a label file (`label.npz` with
`<split>_corpus` dictionaries name -> {"emo", "val"}, or a `label.csv`), a subtitle
CSV (name, english[, chinese]) and `video/<name>.mp4|.avi`; `audio/<name>.wav` and
`faces/<name>/` are picked up when present. Exact trees: docs/datasets.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoemox.data.converters.base import (
    AnnotationError, Converter, MediaFinder, read_table, require_file, split_list, video_candidates,
)
from nanoemox.data.manifest import Record
from nanoemox.tasks import labels as L

log = logging.getLogger(__name__)

LABEL_FILES = ("label.npz", "label-6way.npz", "label.csv")
OV_LABEL_FILES = ("label.csv", "label-ov.csv", "ovmerd_label.csv")
SUBTITLE_FILES = ("subtitle.csv", "subtitle_eng.csv", "subtitle_chieng.csv")
# IEMOCAP and a few releases keep short or variant label spellings.
_LABEL_FIX = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad",
              "sur": "surprise", "fru": "frustrated", "worry": "worried"}


@dataclass(frozen=True)
class BenchSpec:
    name: str
    slug: str
    task: str
    labels: tuple[str, ...] = ()
    test_key: str = "test_corpus"     # which npz corpus is the benchmark's test set
    aliases: tuple[str, ...] = ()


SPECS = (
    BenchSpec("MER2023", "mer2023", "mer", L.MER2023, test_key="test1_corpus"),
    BenchSpec("MER2024", "mer2024", "mer", L.MER2024),
    BenchSpec("MELD", "meld", "mer", L.MELD),
    BenchSpec("IEMOCAP", "iemocap", "mer", L.IEMOCAP4, aliases=("iemocapfour", "iemocap4")),
    BenchSpec("MOSI", "mosi", "msa", aliases=("cmumosi",)),
    BenchSpec("MOSEI", "mosei", "msa", aliases=("cmumosei",)),
    BenchSpec("SIMS", "sims", "msa", aliases=("chsims",)),
    BenchSpec("SIMSv2", "simsv2", "msa", aliases=("chsimsv2",)),
    BenchSpec("OV-MERD+", "ovmerd", "ovmer", aliases=("ovmerd", "ovmerdplus")),
)


def _npz_split(key: str, test_key: str) -> str | None:
    """Manifest split of one npz corpus key; None for corpora the benchmark does not use."""
    if key == test_key:
        return "test"
    if key in ("train_corpus", "trainval_corpus"):
        return "train"
    if key in ("val_corpus", "dev_corpus", "valid_corpus"):
        return "dev"
    return None


def _load_npz(path: Path, spec: BenchSpec) -> list[tuple[str, str, dict]]:
    from nanoemox.data.safe_npz import load_npz

    try:
        # The MER-UniBench label files store Python dicts inside object arrays; they are
        # read by a restricted unpickler that builds plain data only.
        data = load_npz(path)
    except Exception as exc:  # damaged archive, or objects that are not plain data
        raise AnnotationError(path, f"cannot read npz archive: {exc}") from None
    test_key = spec.test_key
    tests = [k for k in data if k.startswith("test")]
    if test_key not in data and len(tests) == 1:
        test_key = tests[0]  # a release that names its only test corpus differently
    rows = []
    for key in data:
        split = _npz_split(key, test_key)
        if split is None:
            log.info("%s: skipping corpus %r of %s (not part of the benchmark)", spec.name, key, path)
            continue
        corpus = data[key].tolist()
        if not isinstance(corpus, dict):
            raise AnnotationError(path, f"corpus {key!r} is not a dict of name -> labels")
        rows += [(str(name), split, dict(value) if isinstance(value, dict) else {"emo": value})
                 for name, value in corpus.items()]
    return rows


def _load_csv(path: Path, spec: BenchSpec) -> list[tuple[str, str, dict]]:
    column = {"mer": "emo", "msa": "val", "ovmer": "openset"}[spec.task]
    aliases = {"emo": ("label", "discrete", "emotion"), "val": ("valence", "label", "score"),
               "openset": ("label", "labels", "ov_label"), "name": ("names", "video_id")}
    rows = []
    for lineno, row in read_table(path, ("name", column), aliases=aliases):
        split = row.get("split") or "test"
        if split not in ("train", "dev", "test"):
            raise AnnotationError(path, f"unknown split {split!r}", line=lineno, hint="use train, dev or test")
        rows.append((row["name"], split, {column: row[column], "_line": lineno}))
    return rows


def _target(spec: BenchSpec, path: Path, name: str, value: dict) -> Any:
    line = value.get("_line")
    if spec.task == "mer":
        emo = str(value.get("emo", "")).strip().lower()
        if not emo:
            raise AnnotationError(path, f"sample {name!r} has no emotion label", line=line)
        return _LABEL_FIX.get(emo, emo)
    if spec.task == "msa":
        try:
            val = float(value.get("val"))
        except (TypeError, ValueError):
            raise AnnotationError(path, f"sample {name!r}: valence {value.get('val')!r} is not a number",
                                  line=line) from None
        if math.isnan(val):
            raise AnnotationError(path, f"sample {name!r}: valence is NaN", line=line)
        return val
    return split_list(value.get("openset"))


def _subtitles(root: Path) -> dict[str, str]:
    path = require_file(root, SUBTITLE_FILES, "subtitle CSV")
    subs = {}
    for _, row in read_table(path, ("name",), aliases={"name": ("names",)}):
        text = row.get("english") or row.get("chinese") or row.get("subtitle") or ""
        subs[row["name"]] = "" if text.lower() == "nan" else text
    return subs


def convert_bench(spec: BenchSpec, root: Path, split: str | None, media: MediaFinder) -> list[Record]:
    label_path = require_file(root, OV_LABEL_FILES if spec.task == "ovmer" else LABEL_FILES, "label file")
    rows = _load_npz(label_path, spec) if label_path.suffix == ".npz" else _load_csv(label_path, spec)
    subtitles = _subtitles(root)
    records = []
    for name, sample_split, value in rows:
        if split is not None and sample_split != split:
            continue
        rid = f"{spec.slug}_{name}"
        if name not in subtitles:
            log.debug("%s: no subtitle for %s", spec.name, name)
        records.append(Record(
            id=rid, dataset=spec.name, split=sample_split, task=spec.task,
            media={"video": media.find(rid, "video", video_candidates("video", name)),
                   "audio": media.find(rid, "audio", [f"audio/{name}.wav"], required=False),
                   "faces": media.find(rid, "faces", [f"faces/{name}/"], required=False)},
            text=subtitles.get(name) or None,
            target=_target(spec, label_path, name, value),
            candidates=list(spec.labels) or None,
            extra={"name": name},
        ))
    return records


def _make(spec: BenchSpec) -> Converter:
    return Converter(spec.name, lambda root, split, media: convert_bench(spec, root, split, media),
                     aliases=spec.aliases, description=f"MER-UniBench {spec.task} set")


CONVERTERS = [_make(spec) for spec in SPECS]
