"""Shared machinery of the dataset converters: results, media checks, annotation readers.

A converter reads one dataset in its native layout under a root folder and returns
manifest `Record`s whose media paths are relative to that root. Media that should
exist but does not is collected in `ConversionResult.missing` (never an exception),
so annotations can be converted before every clip has arrived. Malformed annotation
files raise `AnnotationError`, which names the file, the line and the fix; so does a
conversion that yields no record at all, since an empty manifest is never what a
user wants. While converting, each converter notes which layout it recognised and
which annotation files (and keys) it read (`ConversionContext.note`), so
`nanoemox data check` can say what it found without writing anything.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from nanoemox.data.manifest import SPLITS, Record, write_manifest

log = logging.getLogger(__name__)


class AnnotationError(ValueError):
    """An annotation file is missing or malformed; the message says where and what to do."""

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None, hint: str = ""):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}" + (f" ({hint})" if hint else ""))


@dataclass
class ConversionResult:
    """Records of one converted dataset plus the media files that were not found."""

    dataset: str
    root: Path
    records: list[Record] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    layout: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    media_found: dict[str, int] = field(default_factory=dict)
    media_expected: dict[str, dict[str, Any]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Number of records per "split/task"."""
        return dict(sorted(Counter(f"{r.split}/{r.task}" for r in self.records).items()))

    def summary(self) -> dict[str, Any]:
        missing_ids = {m["id"] for m in self.missing}
        return {
            "dataset": self.dataset,
            "root": str(Path(self.root).resolve()),
            "records": len(self.records),
            "counts": self.counts(),
            "missing_files": len(self.missing),
            "records_with_missing_media": len(missing_ids),
        }

    def without_missing(self) -> "ConversionResult":
        """A copy keeping only records whose media were all found."""
        bad = {m["id"] for m in self.missing}
        kept = [r for r in self.records if r.id not in bad]
        return ConversionResult(self.dataset, self.root, kept, list(self.missing), self.layout,
                                list(self.sources), dict(self.media_found), dict(self.media_expected))

    def write(self, out_path: str | os.PathLike, report_path: str | os.PathLike | None = None) -> int:
        """Write the manifest (and, if asked, a JSON report); return the record count."""
        n = write_manifest(out_path, self.records)
        if report_path is not None:
            report = {**self.summary(), "manifest": str(Path(out_path).resolve()), "missing": self.missing}
            Path(report_path).parent.mkdir(parents=True, exist_ok=True)
            Path(report_path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
        return n


class ConversionContext:
    """Resolves media paths under a root, remembers the missing ones, and notes what was read.

    `find` looks media up; `note` records an annotation file read (with details
    such as the keys found); `layout` is a one-line name of the layout recognised.
    """

    def __init__(self, root: Path):
        self.root = root
        self.missing: list[dict[str, str]] = []
        self.found: Counter[str] = Counter()
        # per kind, the candidates of its first lookup and whether the kind is required
        self.expected: dict[str, dict[str, Any]] = {}
        self.sources: list[dict[str, Any]] = []
        self.layout = ""

    def note(self, path: str | os.PathLike, **details: Any) -> None:
        """Record that annotation file `path` was read; `details` (keys, rows, ...) go with it."""
        path = Path(path)
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = str(path)
        self.sources.append({"file": rel, **details})

    def find(self, sample_id: str, kind: str, candidates: Sequence[str], required: bool = True) -> str | None:
        """First candidate (relative, posix) that exists under the root.

        When none exists: a required medium is reported missing and its first
        candidate is returned (so the record says where the file is expected); an
        optional one gives None. Candidates ending in "/" must be folders.
        """
        self.expected.setdefault(kind, {"like": list(candidates), "required": required, "lookups": 0})
        self.expected[kind]["lookups"] += 1
        for rel in candidates:
            path = self.root / rel
            if (path.is_dir() if rel.endswith("/") else path.is_file()):
                self.found[kind] += 1
                return rel
        if required and candidates:
            self.missing.append({"id": sample_id, "path": candidates[0], "kind": kind})
            return candidates[0]
        return None



def video_candidates(folder: str, stem: str, exts: Sequence[str] = (".mp4", ".avi", ".mkv", ".mov")) -> list[str]:
    return [f"{folder}/{stem}{ext}" for ext in exts]


def require_file(root: Path, names: Sequence[str], what: str) -> Path:
    """The first of `names` that exists under root, else an AnnotationError listing them."""
    for name in names:
        if (root / name).is_file():
            return root / name
    raise AnnotationError(root / names[0], f"{what} not found",
                          hint="expected one of: " + ", ".join(names) + "; see docs/datasets.md")


def read_table(path: Path, required: Sequence[str], delimiter: str = ",",
               aliases: dict[str, Sequence[str]] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) of a CSV/TSV file with a header.

    Column names are matched case-insensitively; `aliases` maps a wanted column to
    other accepted header spellings. Rows come back keyed by the wanted names (plus
    every other column under its lower-cased header).
    """
    aliases = aliases or {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise AnnotationError(path, "file is empty; expected a header line", line=1) from None
        index: dict[str, int] = {h: i for i, h in enumerate(header)}
        for want in required:
            for spelling in (want, *aliases.get(want, ())):
                if spelling.lower() in index:
                    index[want] = index[spelling.lower()]
                    break
            else:
                raise AnnotationError(path, f"missing column {want!r}; header is {header}", line=1,
                                      hint="check the delimiter and the file version; see docs/datasets.md")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise AnnotationError(path, f"expected {len(header)} fields, found {len(row)}",
                                      line=reader.line_num, hint="a quote or delimiter is probably broken")
            yield reader.line_num, {k: row[i].strip() for k, i in index.items()}


def read_json(path: Path) -> Any:
    """Parse a JSON file; syntax errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None


def split_list(value: Any) -> list[str]:
    """A list of words from "['a', 'b']", "a, b", "a;b" or an actual list; lower-cased."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        text = str(value).strip().strip("[]")
        items = text.replace(";", ",").replace("\uff0c", ",").split(",")
    out = [i.strip().strip("'\"").strip().lower() for i in items]
    return list(dict.fromkeys(w for w in out if w and w != "nan"))


@dataclass(frozen=True)
class Converter:
    """One dataset's converter: `func(root, split, media) -> records`."""

    name: str
    func: Callable[[Path, str | None, ConversionContext], list[Record]]
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __call__(self, root: str | os.PathLike, split: str | None = None) -> ConversionResult:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name}: dataset root {root} is not a folder")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        media = ConversionContext(root)
        records = self.func(root, split, media)
        ids = Counter(r.id for r in records)
        dup = [i for i, n in ids.items() if n > 1]
        if dup:
            raise AnnotationError(root, f"{len(dup)} duplicate sample id(s), e.g. {dup[:3]}",
                                  hint="the annotation lists a sample twice")
        if not records:
            read = "; ".join(_describe(s) for s in media.sources) or "no annotation file"
            raise AnnotationError(root, f"{self.name}: no records converted"
                                  + (f" for split {split!r}" if split else "") + f" (read: {read})",
                                  hint="check that --root is the dataset folder and the split exists; "
                                       "`nanoemox data check` shows what was found; see docs/datasets.md")
        log.info("%s: %d records, %d missing media file(s)", self.name, len(records), len(media.missing))
        return ConversionResult(self.name, root, records, media.missing, media.layout, media.sources,
                                dict(media.found), media.expected)


def _describe(source: dict[str, Any]) -> str:
    details = ", ".join(f"{k}={v}" for k, v in source.items() if k != "file")
    return source["file"] + (f" ({details})" if details else "")
