"""Rebuilding a damaged `index.json` from the shards of a cache folder.

`nanoemox cache-features` (`build_cache`) calls `rebuild_index` when the folder's index
cannot be read (not JSON, cut short, not shaped like an index) or is missing while shards
are there. Readers (`FeatureCache.open`) never repair; they stop with `DamagedIndexError`.

What it does, in order:

1. Every `shard-*.safetensors` file is checked on its own, without the index: its header
   is parsed by safetensors (JSON, no pickle), its record (`SHARD_RECORD_KEY`: keys of its
   rows, their media paths, the identity it was encoded with, the SHA-256 of each tensor)
   must be present and well-formed, it must hold exactly the feature and flag tensors with
   one row per key, and every tensor is read in full and checked against its SHA-256.
   A shard failing any check (truncated, altered, not a shard, written before shards
   carried a record) is dropped, with the reason.
2. Identity: the index held the cache's identity (encoder weights, encoder config, media
   settings), but so does each shard's record. Every intact shard's identity is compared
   with the current model and processor's; any difference stops the run with
   StaleCacheError naming that shard, before anything is changed, so features of two
   models never mix. A stored dtype other than the run's is refused the same way.
3. The new index lists the intact shards (size and SHA-256 of the file as it is now),
   their entries (a key found in two shards keeps its first) and media paths, and the
   run's identity, dtype and shard size. Per-media errors are not recovered: failed media
   are retried on every run anyway.
4. The damaged index is kept beside it as `index.json.damaged-N` (a hard link or copy,
   the first N free), dropped shards are renamed `shard-XXXXX.safetensors.damaged-N`
   (nothing is deleted), and the new index replaces `index.json` atomically. The caller
   then encodes only the media the index does not hold: those of dropped shards, and
   anything never cached.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from nanoemox.features.errors import FeatureCacheError, StaleCacheError
from nanoemox.features.identity import identity_differences
from nanoemox.features.store import (
    FEATURE_FIELDS,
    FLAG_FIELDS,
    FORMAT_VERSION,
    INDEX_NAME,
    SHARD_GLOB,
    SHARD_RECORD_KEY,
    dtype_name,
    file_sha256,
    new_index,
    tensor_sha256,
    write_index,
)

logger = logging.getLogger(__name__)

DAMAGED_SUFFIX = ".damaged-"


class ShardUnusable(Exception):
    """Why a shard cannot be taken into a rebuilt index (the message is the reason)."""


@dataclass
class IndexRecovery:
    """What `rebuild_index` did: the problem, what it kept, what it dropped and why."""

    index: str  # path of index.json
    problem: str  # why the old index was not used
    kept_as: str | None = None  # where the damaged index now is (None: there was none)
    shards: list[str] = field(default_factory=list)  # intact shards, now in the index
    entries: int = 0  # media recovered from them
    dropped: dict[str, str] = field(default_factory=dict)  # shard -> reason
    moved: dict[str, str] = field(default_factory=dict)  # dropped shard -> its new name
    duplicates: int = 0  # rows whose key an earlier shard already held

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "problem": self.problem, "kept_as": self.kept_as, "shards": list(self.shards),
            "entries": self.entries, "dropped": dict(self.dropped), "moved": dict(self.moved),
            "duplicates": self.duplicates,
        }

    def lines(self) -> list[str]:
        """A readable account, one line per fact."""
        lines = [(f"{self.index}: {self.problem}; rebuilt the index from {len(self.shards)} intact shard(s) "
                  f"holding {self.entries} media")]
        if self.kept_as:
            lines.append(f"  the damaged index is kept as {self.kept_as}")
        for name, reason in self.dropped.items():
            aside = f" (renamed {self.moved[name]})" if name in self.moved else ""
            lines.append(f"  dropped {name}{aside}: {reason}; its media are encoded again")
        if self.duplicates:
            lines.append(f"  {self.duplicates} row(s) repeated a media key of an earlier shard and were left out")
        return lines


def read_shard_record(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A shard's record and per-row field specs, after checking the whole file; ShardUnusable if not usable.

    Only safetensors parses the file (a JSON header and raw tensor bytes, never pickle).
    A shard of a newer format is refused (FeatureCacheError), not dropped.
    """
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            text = metadata.get(SHARD_RECORD_KEY)
            if text is None:
                raise ShardUnusable("it holds no record of its media keys (written by an older nanoemox)")
            try:
                record = json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                raise ShardUnusable("its record is not valid JSON") from None
            version = record.get("format_version") if isinstance(record, dict) else None
            if isinstance(version, int) and version > FORMAT_VERSION:  # not damage: leave it to that version
                raise FeatureCacheError(f"{path}: shard format {version} is newer than this version of nanoemox reads")
            problem = _record_problem(record)
            if problem:
                raise ShardUnusable(f"its record is malformed ({problem})")
            names = set(fh.keys())
            expected = set(FEATURE_FIELDS + FLAG_FIELDS)
            if names != expected:
                raise ShardUnusable(f"it holds tensors {sorted(names)}, expected {sorted(expected)}")
            rows = len(record["keys"])
            specs: dict[str, dict[str, Any]] = {}
            for name in FEATURE_FIELDS + FLAG_FIELDS:
                tensor = fh.get_tensor(name)
                if tensor.dim() == 0 or tensor.shape[0] != rows:
                    raise ShardUnusable(f"{name} has shape {list(tensor.shape)}, not {rows} rows")
                if tensor_sha256(tensor) != record["sha256"].get(name):
                    raise ShardUnusable(f"{name} fails the checksum in the shard's record (altered bytes)")
                specs[name] = {"shape": list(tensor.shape[1:]), "dtype": str(tensor.dtype).removeprefix("torch.")}
    except SafetensorError as exc:
        raise ShardUnusable(f"not a readable safetensors file, truncated or damaged ({exc})") from None
    except OSError as exc:
        raise ShardUnusable(f"cannot be read ({exc.strerror or exc})") from None
    return record, specs


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not an object"
    if record.get("format_version") != FORMAT_VERSION:
        return f"format_version {record.get('format_version')!r}"
    keys, media = record.get("keys"), record.get("media")
    if not (isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys)):
        return "keys is not a list of strings"
    if not (isinstance(media, list) and len(media) == len(keys)):
        return "media is not one item per key"
    if not isinstance(record.get("identity"), dict):
        return "no identity"
    if not isinstance(record.get("sha256"), dict):
        return "no checksums"
    return None


def _aside(path: Path) -> Path:
    """The first free `NAME.damaged-N` beside `path`."""
    number = 1
    while True:
        candidate = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{number}")
        if not os.path.lexists(candidate):
            return candidate
        number += 1


def _keep_aside(path: Path) -> Path:
    """Keep the file under a `.damaged-N` name while `path` itself stays (for an atomic replace)."""
    target = _aside(path)
    try:
        os.link(path, target)
    except OSError:  # no hard links here: copy
        shutil.copy2(path, target)
    return target


def rebuild_index(
    folder: str | os.PathLike,
    identity: dict[str, Any],
    dtype: torch.dtype,
    shard_size: int,
    problem: str,
) -> tuple[dict[str, Any], IndexRecovery]:
    """Rebuild `folder`'s index from its intact shards (see the module docstring) and write it.

    `identity` and `dtype` are the current run's; a shard made with others stops the rebuild
    (StaleCacheError / FeatureCacheError) before any file is changed. `problem` says why the
    old index was not used. Returns the new index and an account of what was done.
    """
    folder = Path(folder)
    index_path = folder / INDEX_NAME
    report = IndexRecovery(index=str(index_path), problem=problem)
    intact: list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]] = []
    for path in sorted(p for p in folder.glob(SHARD_GLOB) if p.is_file()):
        try:
            record, specs = read_shard_record(path)
        except ShardUnusable as exc:
            report.dropped[path.name] = str(exc)
            continue
        differences = identity_differences(record["identity"], identity)
        if differences:
            raise StaleCacheError(str(path), differences)
        stored = specs[FEATURE_FIELDS[0]]["dtype"]
        if stored != dtype_name(dtype):
            raise FeatureCacheError(
                f"{path}: the cache stores {stored} features, this run asks for {dtype_name(dtype)}; "
                "use the same dtype to resume, or another folder"
            )
        if intact and specs != intact[0][2]:
            report.dropped[path.name] = f"its feature shapes {specs} differ from those of {intact[0][0]}"
            continue
        intact.append((path.name, record, specs))

    index = new_index(identity, dtype, shard_size)
    for name, record, specs in intact:
        path = folder / name
        index["shards"][name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size, "rows": len(record["keys"])}
        index["fields"] = specs
        for row, (key, sources) in enumerate(zip(record["keys"], record["media"])):
            if key in index["entries"]:
                report.duplicates += 1
                continue
            index["entries"][key] = [name, row]
            if sources is not None:
                index["media"][key] = sources
    report.shards = [name for name, _, _ in intact]
    report.entries = len(index["entries"])

    if index_path.is_file():
        report.kept_as = str(_keep_aside(index_path))
    for name in report.dropped:
        target = _aside(folder / name)
        os.replace(folder / name, target)
        report.moved[name] = target.name
    write_index(folder, index)
    for line in report.lines():
        logger.warning("%s", line.strip())
    return index, report
