"""Converters for the nine MER-UniBench evaluation sets, as AffectGPT distributes and reads them.

MER2023, MER2024, MELD and IEMOCAP become `mer` records (one label), MOSI, MOSEI,
SIMS and SIMSv2 `msa` records (a float valence), OV-MERD+ `ovmer` records (a list
of emotion words). Each set is one folder holding a label file, a subtitle CSV and
media folders whose names differ per set (`SPECS` below; trees in docs/datasets.md):

- label files: `label-6way.npz` (MER2023/2024), `label.npz` (MELD, MOSI, MOSEI, SIMS,
  SIMSv2), `label_4way.npz` (IEMOCAP) with `<split>_corpus` dictionaries of
  name -> {"emo", "val"}; OV-MERD+ has `track2_train_ovmerd.csv` (name, openset).
  MELD and IEMOCAP store `emo` as an index into their own label order, which is
  mapped to words here; IEMOCAP has one corpus (`whole_corpus`) and its test split
  is session 5 (names starting `Ses05`).
- subtitles: `transcription-engchi-polish.csv` (name, chinese, english), MER2024's
  `transcription_merge.csv` (name, chinese), OV-MERD+'s `subtitle_chieng.csv`.
- media: `video/`, `subvideo/`, `subvideo_new/`, `video_new/`, `subvideo-tgt/`;
  `audio/` or `subaudio/`; face stacks `openface_face/<name>.npy`.

Older names (`label.csv`, `subtitle.csv`, `faces/<name>/`) are still accepted. Nothing
converts wrongly in silence: a label outside the set's labels, an index out of range,
an empty test split or a corpus key the set does not know is an `AnnotationError`
naming the file, the key and the values found.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoemox.data.converters.base import (
    AnnotationError, ConversionContext, Converter, read_table, require_file, split_list, video_candidates,
)
from nanoemox.data.manifest import Record
from nanoemox.data.safe_npz import load_npz
from nanoemox.tasks import labels as L

log = logging.getLogger(__name__)

CLOSED_SUBTITLES = ("transcription-engchi-polish.csv", "transcription_merge.csv", "subtitle.csv",
                    "subtitle_eng.csv", "subtitle_chieng.csv")
OV_SUBTITLES = ("subtitle_chieng.csv", "subtitle_eng.csv", "subtitle.csv", "transcription-engchi-polish.csv")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov")
# Short or variant label spellings found in some releases, folded onto the set's words.
_LABEL_FIX = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral",
              "sur": "surprise", "worry": "worried"}
# The label field of each task, in npz values and CSV columns.
LABEL_FIELD = {"mer": "emo", "msa": "val", "ovmer": "openset"}
# npz corpus keys -> manifest split; the set's own test key is added per spec.
_SPLIT_KEYS = {"train_corpus": "train", "trainval_corpus": "train", "val_corpus": "dev",
               "dev_corpus": "dev", "valid_corpus": "dev"}


@dataclass(frozen=True)
class BenchSpec:
    """How one MER-UniBench set is laid out and labelled."""

    name: str
    slug: str
    task: str
    label_files: tuple[str, ...]
    video_dirs: tuple[str, ...]
    audio_dirs: tuple[str, ...]
    labels: tuple[str, ...] = ()               # the words the manifest uses (candidates)
    index_order: tuple[str, ...] = ()          # label order of an index-valued `emo`
    test_key: str = "test_corpus"              # the corpus that is the benchmark's test set
    other_keys: tuple[str, ...] = ()           # corpora of the release the benchmark does not use
    test_prefix: str = ""                      # single-corpus sets: test = names with this prefix
    subtitle_files: tuple[str, ...] = CLOSED_SUBTITLES
    aliases: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()              # folder names AffectGPT uses for the set


SPECS = (
    BenchSpec("MER2023", "mer2023", "mer", ("label-6way.npz", "label.npz", "label.csv"),
              ("video",), ("audio",), L.MER2023, test_key="test1_corpus",
              other_keys=("test2_corpus", "test3_corpus"), folders=("mer2023-dataset-process",)),
    BenchSpec("MER2024", "mer2024", "mer", ("label-6way.npz", "label.npz", "label.csv"),
              ("video",), ("audio",), L.MER2024, test_key="test1_corpus", other_keys=("test2_corpus",),
              subtitle_files=("transcription_merge.csv",) + CLOSED_SUBTITLES,
              folders=("mer2024-dataset-process",)),
    BenchSpec("MELD", "meld", "mer", ("label.npz", "label.csv"), ("subvideo", "video"),
              ("subaudio", "audio"), L.MELD,
              index_order=("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"),
              folders=("meld-process",)),
    BenchSpec("IEMOCAP", "iemocap", "mer", ("label_4way.npz", "label.npz", "label.csv"),
              ("subvideo-tgt", "subvideo", "video"), ("subaudio", "audio"), L.IEMOCAP4,
              index_order=("happy", "sad", "neutral", "angry"), test_key="whole_corpus",
              test_prefix="Ses05", aliases=("iemocapfour", "iemocap4"), folders=("iemocap-process",)),
    BenchSpec("MOSI", "mosi", "msa", ("label.npz", "label.csv"), ("subvideo", "video"),
              ("subaudio", "audio"), aliases=("cmumosi",), folders=("cmumosi-process",)),
    BenchSpec("MOSEI", "mosei", "msa", ("label.npz", "label.csv"), ("subvideo_new", "subvideo", "video"),
              ("subaudio", "audio"), aliases=("cmumosei",), folders=("cmumosei-process",)),
    BenchSpec("SIMS", "sims", "msa", ("label.npz", "label.csv"), ("video",), ("audio",),
              aliases=("chsims",), folders=("sims-process",)),
    BenchSpec("SIMSv2", "simsv2", "msa", ("label.npz", "label.csv"), ("video_new", "video"), ("audio",),
              aliases=("chsimsv2",), folders=("simsv2-process",)),
    BenchSpec("OV-MERD+", "ovmerd", "ovmer",
              ("track2_train_ovmerd.csv", "label.csv", "label-ov.csv", "ovmerd_label.csv"),
              ("video",), ("audio",), subtitle_files=OV_SUBTITLES,
              aliases=("ovmerd", "ovmerdplus"), folders=("ovmerdplus-process", "ovmerd-process")),
)


# ---------------------------------------------------------------- label files
def _release_keys(spec: BenchSpec) -> tuple[str, ...]:
    """The corpus keys of the set's published label file."""
    if spec.test_prefix:
        return (spec.test_key,)
    dev = () if spec.test_key == "test1_corpus" else ("val_corpus",)  # the MER challenges have no dev
    return ("train_corpus", *dev, spec.test_key, *spec.other_keys)


def _npz_corpora(path: Path, spec: BenchSpec, media: ConversionContext) -> dict[str, dict]:
    """The archive's corpora by key, each a dict name -> {"emo", "val"}; unknown keys are errors."""
    try:
        # The label files store Python dicts inside object arrays; a restricted
        # unpickler builds plain data only and refuses anything else.
        data = load_npz(path)
    except Exception as exc:  # damaged archive, or objects that are not plain data
        raise AnnotationError(path, f"cannot read npz archive: {exc}") from None
    release = _release_keys(spec)
    # Single-corpus sets know only their corpus; the others also accept spellings of train/dev.
    known = set(release) | (set() if spec.test_prefix else set(_SPLIT_KEYS))
    unknown = sorted(set(data) - known)
    if unknown:
        raise AnnotationError(path, f"unknown corpus key(s) {unknown}; keys found: {sorted(data)}",
                              hint=f"{spec.name}'s label file holds " + ", ".join(release) + "; is this the "
                                   f"{spec.name} label file? see docs/datasets.md")
    corpora = {}
    for key in data:
        corpus = data[key].tolist() if hasattr(data[key], "tolist") else data[key]
        if not isinstance(corpus, dict):
            raise AnnotationError(path, f"corpus {key!r} is not a dict of name -> labels")
        corpora[key] = corpus
    media.note(path, keys={k: len(v) for k, v in corpora.items()})
    return corpora


def _npz_rows(path: Path, spec: BenchSpec, media: ConversionContext) -> list[tuple[str, str, str, dict]]:
    """(name, split, corpus key, value) for every sample the benchmark uses."""
    corpora = _npz_corpora(path, spec, media)
    if spec.test_key not in corpora:
        raise AnnotationError(path, f"the benchmark's test corpus {spec.test_key!r} is missing; "
                              f"keys found: {sorted(corpora)}", hint="see docs/datasets.md")
    rows = []
    for key, corpus in corpora.items():
        if key in spec.other_keys:
            log.info("%s: corpus %r of %s is not part of the benchmark; skipped", spec.name, key, path)
            continue
        for name, value in corpus.items():
            name = str(name)
            if spec.test_prefix:  # one corpus for everything: the prefix picks the test split
                split = "test" if name.startswith(spec.test_prefix) else "train"
            else:
                split = "test" if key == spec.test_key else _SPLIT_KEYS[key]
            rows.append((name, split, key, value if isinstance(value, dict) else {"emo": value}))
    return rows


def _csv_rows(path: Path, spec: BenchSpec, media: ConversionContext) -> list[tuple[str, str, str, dict]]:
    column = LABEL_FIELD[spec.task]
    aliases = {"emo": ("label", "discrete", "emotion"), "val": ("valence", "label", "score"),
               "openset": ("label", "labels", "ov_label"), "name": ("names", "video_id")}
    rows = []
    for lineno, row in read_table(path, ("name", column), aliases=aliases):
        split = row.get("split") or "test"
        if split not in ("train", "dev", "test"):
            raise AnnotationError(path, f"unknown split {split!r}", line=lineno, hint="use train, dev or test")
        rows.append((row["name"], split, f"line {lineno}", {column: row[column], "_line": lineno}))
    media.note(path, rows=len(rows), column=column)
    return rows


# ---------------------------------------------------------------- targets
def _emotion(spec: BenchSpec, raw: Any) -> str | None:
    """The set's label word for a raw `emo` value (word or index); None if outside the set."""
    if isinstance(raw, numbers.Integral) or (isinstance(raw, float) and raw.is_integer()):
        index = int(raw)
    elif isinstance(raw, str) and raw.strip().isdigit():
        index = int(raw.strip())
    else:
        word = _LABEL_FIX.get(str(raw).strip().lower(), str(raw).strip().lower())
        return word if word in spec.labels else None
    if not spec.index_order:
        return None  # a set that stores words has no index order to look up
    return spec.index_order[index] if 0 <= index < len(spec.index_order) else None


def _valence(raw: Any) -> float | None:
    try:
        val = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(val) or math.isinf(val) else val


def _show(raw: Any) -> str:
    """A label value as a person reads it: 7 for np.int64(7), 'joyful' for a string."""
    return repr(raw.item() if hasattr(raw, "item") else raw)


def _targets(spec: BenchSpec, path: Path, rows: list[tuple[str, str, str, dict]]) -> list[Any]:
    """One target per row; every value outside the set's labels is reported in one error."""
    targets, bad = [], Counter()
    for name, _, key, value in rows:
        if spec.task == "mer":
            target = _emotion(spec, value.get("emo"))
        elif spec.task == "msa":
            target = _valence(value.get("val"))
        else:
            target = split_list(value.get("openset")) or None
        if target is None:
            bad[(key, _show(value.get(LABEL_FIELD[spec.task])))] += 1
        targets.append(target)
    if bad:
        found = ", ".join(f"{v} x{n} in {k}" for (k, v), n in bad.most_common(8))
        expected = {"mer": ("words " + ", ".join(spec.labels)
                            + (f" or indices 0-{len(spec.index_order) - 1} into "
                               + ", ".join(spec.index_order) if spec.index_order else "")),
                    "msa": "a finite number", "ovmer": "a non-empty list of words"}[spec.task]
        raise AnnotationError(path, f"{sum(bad.values())} label(s) outside {spec.name}'s label set: {found}",
                              hint=f"expected {expected}; is this the {spec.name} label file?")
    return targets


# ---------------------------------------------------------------- subtitles and media
def _subtitles(root: Path, spec: BenchSpec, media: ConversionContext) -> dict[str, str]:
    path = require_file(root, spec.subtitle_files, "subtitle CSV")
    subs = {}
    columns: set[str] = set()
    for _, row in read_table(path, ("name",), aliases={"name": ("names",)}):
        columns.update(row)
        text = row.get("english") or row.get("chinese") or row.get("subtitle") or ""
        subs[row["name"]] = "" if text.lower() == "nan" else text
    media.note(path, rows=len(subs), columns=sorted(columns))
    return subs


def _media(spec: BenchSpec, media: ConversionContext, rid: str, name: str) -> dict[str, str | None]:
    videos = [c for d in spec.video_dirs for c in video_candidates(d, name, VIDEO_EXTS)]
    return {"video": media.find(rid, "video", videos),
            "audio": media.find(rid, "audio", [f"{d}/{name}.wav" for d in spec.audio_dirs], required=False),
            "faces": media.find(rid, "faces", [f"openface_face/{name}.npy", f"faces/{name}/"], required=False)}


def convert_bench(spec: BenchSpec, root: Path, split: str | None, media: ConversionContext) -> list[Record]:
    label_path = require_file(root, spec.label_files, f"{spec.name} label file")
    media.layout = f"MER-UniBench {spec.name} ({label_path.name})"
    reader = _npz_rows if label_path.suffix == ".npz" else _csv_rows
    rows = reader(label_path, spec, media)
    if label_path.suffix == ".npz" and not any(s == "test" for _, s, _, _ in rows):
        rule = f"names starting {spec.test_prefix!r}" if spec.test_prefix else f"corpus {spec.test_key!r}"
        raise AnnotationError(label_path, f"the benchmark's test split ({rule}) is empty",
                              hint="the label file may be from another set or release; see docs/datasets.md")
    targets = _targets(spec, label_path, rows)
    subtitles = _subtitles(root, spec, media)
    records = []
    for (name, sample_split, _, _), target in zip(rows, targets):
        if split is not None and sample_split != split:
            continue
        rid = f"{spec.slug}_{name}"
        records.append(Record(
            id=rid, dataset=spec.name, split=sample_split, task=spec.task,
            media=_media(spec, media, rid, name), text=subtitles.get(name) or None, target=target,
            candidates=list(spec.labels) or None, extra={"name": name},
        ))
    without = sum(r.text is None for r in records)
    if without:
        log.info("%s: %d of %d samples have no subtitle", spec.name, without, len(records))
    return records


def _make(spec: BenchSpec) -> Converter:
    return Converter(spec.name, lambda root, split, media: convert_bench(spec, root, split, media),
                     aliases=spec.aliases + spec.folders, description=f"MER-UniBench {spec.task} set")


CONVERTERS = [_make(spec) for spec in SPECS]
