"""The on-disk feature store: `index.json` plus safetensors shards, read lazily (memory-mapped).

Layout of a cache folder:

    index.json               identity, feature shapes and dtypes, key -> (shard, row),
                             per-shard SHA-256 and size, per-key errors, per-key media paths
    shard-00000.safetensors  up to `shard_size` media: one tensor per field, rows stacked
    shard-00001.safetensors  ...

Per media item (F frames, C audio clips, L fusion tap layers, D_* encoder widths) a
shard row holds scene_cls [F, D_v], scene_taps [L, F, D_v], speech_clips [C, D_a],
speech_taps [L, C, D_a], face_frames [F, D_f] and the flags audio_present [],
video_present [], faces_found [F]. Shards are written whole (temp file + rename) and
enter the index only once complete, so a crash never leaves a half shard behind.

Each shard also describes itself, in one safetensors metadata entry (`SHARD_RECORD_KEY`,
canonical JSON): the media keys of its rows in order, their media paths, the cache
identity it was encoded with, and the SHA-256 of every tensor's bytes. The index is
the fast way in; the shard records are what `nanoemox.features.recover` rebuilds a
damaged index from (shards written before they carried a record cannot be recovered
that way, and are encoded again).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save

from nanoemox import __version__
from nanoemox.features.errors import CorruptCacheError, DamagedIndexError, FeatureCacheError, StaleCacheError
from nanoemox.features.identity import encoder_identity, identity_differences, media_identity
from nanoemox.model.nanoemox import MediaFeatures
from nanoemox.utils import atomic_write_bytes

INDEX_NAME = "index.json"
FORMAT_VERSION = 1
SHARD_GLOB = "shard-*.safetensors"
# The one safetensors metadata entry of a shard: its self-description (see the module docstring).
SHARD_RECORD_KEY = "nanoemox.feature_shard"
INDEX_FIELDS = ("format_version", "identity", "dtype", "fields", "shards", "entries", "errors", "media")
FEATURE_FIELDS = ("scene_cls", "scene_taps", "speech_clips", "speech_taps", "face_frames")
FLAG_FIELDS = ("audio_present", "video_present", "faces_found")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_READ_BLOCK = 1 << 22


def dtype_name(dtype: torch.dtype) -> str:
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"features can be stored as {sorted(DTYPES)}, not {dtype}")


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- index


def new_index(identity: dict[str, Any], dtype: torch.dtype, shard_size: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "nanoemox_version": __version__,
        "identity": identity,
        "dtype": dtype_name(dtype),
        "shard_size": int(shard_size),
        "fields": {},  # name -> {"shape": per-media shape, "dtype": ...}, set by the first shard
        "shards": {},  # name -> {"sha256", "bytes", "rows"}
        "entries": {},  # media key -> [shard name, row]
        "errors": {},  # media key -> message of the MediaError that stopped it
        "media": {},  # media key -> relative media paths, for people reading the index
    }


def read_index(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's index, or None when there is none yet.

    Raises DamagedIndexError (naming the file, advising a re-run of `cache-features`) when
    the file is not JSON (garbage, cut short) or not shaped like an index: a missing or
    mistyped section, an entry that is not [shard, row] within a listed shard. A file the
    system cannot read (permissions, I/O) raises CorruptCacheError, and a cache of a newer
    format FeatureCacheError: neither counts as damage, so neither is ever rebuilt.
    """
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        return None
    try:
        text = path.read_bytes()
    except OSError as exc:  # not damage (permissions, I/O): no repair is attempted
        raise CorruptCacheError(str(path), f"cannot be read ({exc.strerror or exc})",
                                advice="check the file and its permissions") from None
    try:
        index = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DamagedIndexError(str(path), f"unreadable index ({problem})") from None
    version = index.get("format_version") if isinstance(index, dict) else None
    if _is_int(version) and version > FORMAT_VERSION:
        raise FeatureCacheError(f"{path}: cache format {version} is newer than this version of nanoemox reads")
    problem = index_problem(index)
    if problem is not None:
        raise DamagedIndexError(str(path), f"not a feature-cache index ({problem})")
    return index


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def index_problem(index: Any) -> str | None:
    """What makes `index` (parsed JSON) unusable as a feature-cache index, or None."""
    if not isinstance(index, dict):
        return f"the file holds {_json_type(index)}, not an object"
    missing = [k for k in INDEX_FIELDS if k not in index]
    if missing:
        return f"missing {missing}"
    if not _is_int(index["format_version"]):
        return f"format_version is {_json_type(index['format_version'])}"
    for name in ("identity", "fields", "shards", "entries", "errors", "media"):
        if not isinstance(index[name], dict):
            return f"{name!r} is {_json_type(index[name])}, not an object"
    if index["dtype"] not in DTYPES:
        return f"unknown dtype {index['dtype']!r}"
    for name, info in index["shards"].items():
        if not (isinstance(info, dict) and isinstance(info.get("sha256"), str)
                and _is_int(info.get("bytes")) and _is_int(info.get("rows"))):
            return f"the record of shard {name!r} is not {{sha256, bytes, rows}}"
    for key, where in index["entries"].items():
        if not (isinstance(where, list) and len(where) == 2 and isinstance(where[0], str) and _is_int(where[1])):
            return f"entry {key!r} is not [shard, row]"
        info = index["shards"].get(where[0])
        if info is None:
            return f"entry {key!r} points to shard {where[0]!r}, which the index does not list"
        if not 0 <= where[1] < info["rows"]:
            return f"entry {key!r} points to row {where[1]} of {where[0]}, which has {info['rows']} rows"
    return None


def write_index(folder: str | os.PathLike, index: dict[str, Any]) -> None:
    atomic_write_bytes(Path(folder) / INDEX_NAME, (json.dumps(index, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


# ---------------------------------------------------------------------- shards


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes as safetensors stores them (any dtype, bool and bfloat16 included)."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return hashlib.sha256(memoryview(flat.view(torch.uint8).numpy())).hexdigest()


def write_shard(
    folder: Path,
    name: str,
    rows: Sequence[dict[str, torch.Tensor]],
    *,
    keys: Sequence[str],
    identity: dict[str, Any],
    media: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Stack per-media rows into one shard file; return its index record (checksum, size, rows).

    The shard's own record (`SHARD_RECORD_KEY`) names `keys` (one per row, in order), their
    `media` paths, the `identity` the rows were encoded with, and each tensor's SHA-256.
    """
    if len(keys) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(keys)} keys")
    tensors = {field: torch.stack([row[field] for row in rows]).contiguous() for field in rows[0]}
    record = {
        "format_version": FORMAT_VERSION,
        "keys": list(keys),
        "media": list(media) if media is not None else [None] * len(keys),
        "identity": identity,
        "sha256": {field: tensor_sha256(t) for field, t in tensors.items()},
    }
    # One metadata entry only: safetensors writes its metadata in hash-map order, so with two
    # entries the same shard would come out as different bytes from run to run. The record is
    # canonical JSON (sorted keys), so equal shards are equal bytes.
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data = save(tensors, metadata={SHARD_RECORD_KEY: text})
    atomic_write_bytes(folder / name, data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": len(rows)}


def field_specs(row: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    return {name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for name, t in row.items()}


# ---------------------------------------------------------------------- reading


class FeatureCache:
    """Read access to a cache folder: `key in cache`, `cache.get(key)`, `cache.error(key)`, `len(cache)`.

    Shards are opened lazily with `safetensors.safe_open` (memory-mapped) and only the
    requested row is read. The object pickles without its open files, so it can be
    handed to DataLoader workers, which reopen what they read.
    """

    def __init__(self, folder: str | os.PathLike, index: dict[str, Any], *, verify: bool | str = True):
        if verify not in (True, False, "lazy"):
            raise ValueError(f"verify must be True, False or 'lazy', got {verify!r}")
        self.folder = Path(folder)
        self.index = index
        self.verify = verify
        self._handles: dict[str, Any] = {}
        if verify is True:
            for name in index["shards"]:
                self._check_shard(name)

    @classmethod
    def open(cls, folder: str | os.PathLike, model=None, processor=None, verify: bool | str = True) -> "FeatureCache":
        """Open a cache; refuse it (StaleCacheError) if it was built for another model or processor.

        `verify`: True checks every shard's checksum now, "lazy" checks each shard on its
        first read, False trusts the files (fastest).
        """
        folder = Path(folder)
        index = read_index(folder)
        if index is None:
            if any(folder.glob(SHARD_GLOB)):
                raise DamagedIndexError(str(folder / INDEX_NAME), "missing, but the folder holds shards")
            raise FileNotFoundError(f"{folder / INDEX_NAME} not found: build the cache first with `nanoemox cache-features`")
        expected: dict[str, Any] = {}
        if model is not None:
            expected.update(encoder_identity(model))
        if processor is not None:
            expected.update(media_identity(processor))
        differences = identity_differences(index["identity"], expected)
        if differences:
            raise StaleCacheError(str(folder / INDEX_NAME), differences)
        return cls(folder, index, verify=verify)

    def check_identity(self, expected: dict[str, Any]) -> None:
        """Raise StaleCacheError if any part of `expected` (from `cache_identity` or part of it) differs."""
        differences = identity_differences(self.index["identity"], expected)
        if differences:
            raise StaleCacheError(str(self.folder / INDEX_NAME), differences)

    # ------------------------------------------------------------------ queries

    @property
    def identity(self) -> dict[str, Any]:
        return self.index["identity"]

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.index["dtype"]]

    def __contains__(self, key: object) -> bool:
        return key in self.index["entries"]

    def __len__(self) -> int:
        return len(self.index["entries"])

    def keys(self) -> list[str]:
        return list(self.index["entries"])

    def error(self, key: str) -> str | None:
        """Why this media item could not be cached, or None."""
        return self.index["errors"].get(key)

    @property
    def errors(self) -> dict[str, str]:
        return dict(self.index["errors"])

    def get(self, key: str) -> dict[str, torch.Tensor]:
        """Unbatched features and flags of one media item (see the module docstring for shapes)."""
        try:
            shard, row = self.index["entries"][key]
        except KeyError:
            reason = self.error(key)
            detail = (
                f"it failed when the cache was built: {reason}"
                if reason
                else "run `nanoemox cache-features` on the manifest"
            )
            raise KeyError(f"media key {key!r} is not in the feature cache {self.folder}; {detail}") from None
        handle = self._handle(shard)
        return {name: handle.get_slice(name)[row] for name in FEATURE_FIELDS + FLAG_FIELDS}

    # ------------------------------------------------------------------ shards

    def _check_shard(self, name: str) -> None:
        path = self.folder / name
        info = self.index["shards"][name]
        if not path.is_file():
            raise CorruptCacheError(str(path), "shard listed in the index is missing")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise CorruptCacheError(str(path), f"shard is {size} bytes, the index says {info['bytes']} (truncated or replaced)")
        found = file_sha256(path)
        if found != info["sha256"]:
            raise CorruptCacheError(str(path), f"checksum mismatch (index sha256 {info['sha256'][:16]}..., file {found[:16]}...)")

    def _handle(self, name: str):
        handle = self._handles.get(name)
        if handle is None:
            if name not in self.index["shards"]:
                raise CorruptCacheError(str(self.folder / INDEX_NAME), f"entry points to unknown shard {name!r}")
            if self.verify == "lazy":
                self._check_shard(name)
            path = self.folder / name
            if not path.is_file():
                raise CorruptCacheError(str(path), "shard listed in the index is missing")
            handle = self._handles[name] = safe_open(str(path), framework="pt")
        return handle

    def close(self) -> None:
        self._handles.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.folder)!r}, {len(self)} media, {len(self.index['errors'])} failed, {self.index['dtype']})"


def stack_features(items: Iterable[dict[str, torch.Tensor]], dtype: torch.dtype | None = None) -> MediaFeatures:
    """Batch `FeatureCache.get` results into MediaFeatures (tap layers first: [L, B, ...]).

    `dtype` casts the features (e.g. float16 storage back to the model's float32).
    """
    items = list(items)
    if not items:
        raise ValueError("stack_features needs at least one item")

    def stacked(name: str, dim: int) -> torch.Tensor:
        out = torch.stack([item[name] for item in items], dim=dim)
        return out if dtype is None else out.to(dtype)

    return MediaFeatures(
        scene_cls=stacked("scene_cls", 0),  # [B, F, D_v]
        scene_taps=stacked("scene_taps", 1),  # [L, B, F, D_v]
        speech_clips=stacked("speech_clips", 0),  # [B, C, D_a]
        speech_taps=stacked("speech_taps", 1),  # [L, B, C, D_a]
        face_frames=stacked("face_frames", 0),  # [B, F, D_f]
    )
