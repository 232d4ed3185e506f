"""Building a feature cache: decode every unique media item once, encode in batches, write shards.

Decoding runs in DataLoader worker processes (`workers`), so it overlaps encoding on
the model's device. Each media item is cached once however many records (tasks)
use it. A media file that cannot be read (any `MediaError`) is recorded in the
index with its message and the run goes on. The run is resumable: shards enter
the index only when complete, a re-run skips what is already cached (and retries
what failed), and an interrupted run loses at most the shard it was filling.

A damaged `index.json` (not JSON, cut short, not shaped like an index), or a missing one
beside existing shards, is rebuilt from the intact shards before anything is encoded
(`nanoemox.features.recover`): each shard carries its own keys, identity and checksums,
a shard encoded for other settings stops the run (StaleCacheError), a damaged shard is
set aside and its media encoded again, and the damaged index is kept as
`index.json.damaged-N`. The summary's `recovered` lists what was done.

Under `accelerate launch` with N processes, process r encodes every N-th media item not
yet cached into its own part folder (OUT/.part-R-of-N/, a cache of its own); when all
are done, the main process moves their shards into OUT under its own shard numbering and
merges their entries into OUT's index. Parts of an interrupted run are folded in first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from nanoemox.data.manifest import Record
from nanoemox.features.errors import DamagedIndexError, FeatureCacheError, StaleCacheError
from nanoemox.features.identity import cache_identity, identity_differences, media_key, media_sources
from nanoemox.features.recover import IndexRecovery, rebuild_index
from nanoemox.features.store import (
    DTYPES,
    FEATURE_FIELDS,
    INDEX_NAME,
    SHARD_GLOB,
    dtype_name,
    field_specs,
    file_sha256,
    new_index,
    read_index,
    shard_name,
    write_index,
    write_shard,
)
from nanoemox.media.errors import MediaError
from nanoemox.shards import current_shard

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
PART_PREFIX = ".part-"  # the folder each of several processes builds its share in


def unique_media(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    """key -> {"sources": relative paths, "records": ids}, in first-appearance order."""
    media: dict[str, dict[str, Any]] = {}
    for record in records:
        key = media_key(record)
        entry = media.setdefault(key, {"sources": media_sources(record), "records": []})
        entry["records"].append(record.id)
    return media


class _MediaDataset(Dataset):
    """Decodes one media item per index; a bad file becomes an error item instead of an exception."""

    def __init__(self, items: list[tuple[str, dict[str, str | None]]], root: Path, processor):
        self.items = items
        self.root = root
        self.processor = processor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        key, sources = self.items[i]
        paths = {kind: None if rel is None else self.root / rel for kind, rel in sources.items()}
        try:
            media = self.processor.load_media(**paths)
        except MediaError as exc:
            return {"key": key, "error": str(exc)}
        return {"key": key, **media.tensors()}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the decoded items of a batch; failed ones travel beside them as (key, message)."""
    good = [item for item in items if "error" not in item]
    batch: dict[str, Any] = {
        "keys": [item["key"] for item in good],
        "errors": [(item["key"], item["error"]) for item in items if "error" in item],
    }
    if good:
        for name in good[0]:
            if name != "key":
                batch[name] = torch.stack([item[name] for item in good])
    return batch


class _ShardWriter:
    """Collects encoded rows and writes a shard (then the index) whenever `shard_size` are ready."""

    def __init__(self, folder: Path, index: dict[str, Any], shard_size: int):
        self.folder, self.index, self.shard_size = folder, index, shard_size
        self.keys: list[str] = []
        self.rows: list[dict[str, torch.Tensor]] = []
        self.written: list[str] = []

    def add(self, key: str, row: dict[str, torch.Tensor]) -> None:
        self.keys.append(key)
        self.rows.append(row)
        if len(self.rows) >= self.shard_size:
            self._write()

    def fail(self, key: str, message: str) -> None:
        self.index["errors"][key] = message

    def finish(self) -> None:
        if self.rows:
            self._write()
        else:
            write_index(self.folder, self.index)  # errors and an empty first run are recorded too

    def _write(self) -> None:
        keys, rows = self.keys[: self.shard_size], self.rows[: self.shard_size]
        del self.keys[: self.shard_size], self.rows[: self.shard_size]
        specs = field_specs(rows[0])
        if self.index["fields"] and self.index["fields"] != specs:
            raise FeatureCacheError(f"{self.folder}: new features {specs} do not match the cache's {self.index['fields']}")
        name = _next_shard_name(self.index)
        media = [self.index["media"].get(key) for key in keys]
        self.index["shards"][name] = write_shard(
            self.folder, name, rows, keys=keys, identity=self.index["identity"], media=media)
        self.index["fields"] = specs
        for row_number, key in enumerate(keys):
            self.index["entries"][key] = [name, row_number]
            self.index["errors"].pop(key, None)
        write_index(self.folder, self.index)
        self.written.append(name)
        logger.debug("wrote %s (%d media)", name, len(keys))


def _next_shard_name(index: dict[str, Any]) -> str:
    number = len(index["shards"])
    while shard_name(number) in index["shards"]:
        number += 1
    return shard_name(number)


def _drop_damaged_shards(folder: Path, index: dict[str, Any]) -> None:
    """Forget shards that were deleted, cut short or changed (size or SHA-256), so their media are encoded again."""
    for name, info in list(index["shards"].items()):
        path = folder / name
        if path.is_file() and path.stat().st_size == info["bytes"] and file_sha256(path) == info["sha256"]:
            continue
        logger.warning("%s is missing or damaged (size or checksum); its media will be encoded again", path)
        path.unlink(missing_ok=True)
        del index["shards"][name]
        for key in [k for k, (shard, _) in index["entries"].items() if shard == name]:
            del index["entries"][key]


def _read_or_rebuild(
    folder: Path, identity: dict[str, Any], dtype: torch.dtype, shard_size: int, recovered: list[IndexRecovery]
) -> dict[str, Any] | None:
    """The folder's index; rebuilt from its shards if damaged, or missing beside shards
    (the account appended to `recovered`); None if the folder holds no cache yet."""
    try:
        index = read_index(folder)
    except DamagedIndexError as exc:
        problem = exc.problem
    else:
        if index is not None or not any(folder.glob(SHARD_GLOB)):
            return index
        problem = "missing, but the folder holds shards"
    index, report = rebuild_index(folder, identity, dtype, shard_size, problem)
    recovered.append(report)
    return index


def _open_for_writing(
    folder: Path, identity: dict[str, Any], dtype: torch.dtype, shard_size: int, recovered: list[IndexRecovery]
) -> dict[str, Any]:
    """A fresh index, or the existing (or rebuilt) one after checking it was built the same way."""
    index = _read_or_rebuild(folder, identity, dtype, shard_size, recovered)
    if index is None:
        return new_index(identity, dtype, shard_size)
    differences = identity_differences(index["identity"], identity)
    if differences:
        raise StaleCacheError(str(folder / INDEX_NAME), differences)
    if index["dtype"] != dtype_name(dtype):
        raise FeatureCacheError(
            f"{folder / INDEX_NAME}: the cache stores {index['dtype']} features, this run asks for "
            f"{dtype_name(dtype)}; use the same dtype to resume, or another folder"
        )
    _drop_damaged_shards(folder, index)
    return index


@contextlib.contextmanager
def _writer_lock(folder: Path) -> Iterator[None]:
    """One writer per cache folder at a time (an OS lock, released even if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, one writer at a time is then up to the user
        yield
        return
    with open(folder / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FeatureCacheError(f"{folder}: another `cache-features` run is writing to this cache") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_temp_files(folder: Path) -> None:
    """Leftovers of writes that a killed run never finished (never part of the index)."""
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _encode_rows(model, batch: dict[str, Any], device: torch.device, dtype: torch.dtype) -> list[dict[str, torch.Tensor]]:
    """Encode one batch exactly as the live training path does, then split it into per-media rows."""
    with torch.no_grad():
        feats = model.encode_media(
            batch["pixel_values"].to(device),
            batch["face_pixel_values"].to(device),
            batch["audio_values"].to(device),
        ).as_dict()
    # Tap layers lead in MediaFeatures ([L, B, ...]); rows are per media item, so batch goes first.
    feats["scene_taps"] = feats["scene_taps"].transpose(0, 1)  # [B, L, F, D_v]
    feats["speech_taps"] = feats["speech_taps"].transpose(0, 1)  # [B, L, C, D_a]
    feats = {name: feats[name].to("cpu", dtype) for name in FEATURE_FIELDS}
    _check_finite(feats, batch["keys"], dtype)
    flags = {name: batch[name] for name in ("audio_present", "video_present", "faces_found")}
    return [{name: t[i].clone() for name, t in {**feats, **flags}.items()} for i in range(len(batch["keys"]))]


def _check_finite(feats: dict[str, torch.Tensor], keys: list[str], dtype: torch.dtype) -> None:
    """Never store NaN or inf silently (float16 overflows above 65504)."""
    for name, values in feats.items():
        bad = ~torch.isfinite(values.flatten(1)).all(1)  # [B]
        if bool(bad.any()):
            which = [k for k, b in zip(keys, bad.tolist()) if b]
            raise FeatureCacheError(
                f"{name} features of media {which[:5]} are not finite when stored as {dtype_name(dtype)}; "
                "store float32 (--dtype float32) or check the encoder weights"
            )


def build_cache(
    records: Sequence[Record],
    root: str | os.PathLike,
    model,
    processor,
    out_dir: str | os.PathLike,
    *,
    shard_size: int = 256,
    batch_size: int = 8,
    workers: int = 0,
    dtype: torch.dtype = torch.float32,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Cache the encoder features of every unique media item of `records` into `out_dir`.

    `progress(done, total)` is called after every batch (media handled in this run so
    far, media to handle). Returns a summary: counts of records and unique media,
    `cached` (new), `skipped` (already present), `failed` {key: message},
    `failed_records` {key: record ids}, `shards` written, `seconds`, and `recovered`: one
    `IndexRecovery.as_dict()` per damaged index rebuilt from its shards (usually none).
    """
    if shard_size < 1 or batch_size < 1 or workers < 0:
        raise ValueError(f"need shard_size >= 1, batch_size >= 1, workers >= 0; got {shard_size}, {batch_size}, {workers}")
    start = time.monotonic()
    folder = Path(out_dir).expanduser().resolve()  # the summary names it
    folder.mkdir(parents=True, exist_ok=True)
    media = unique_media(records)
    identity = cache_identity(model, processor)
    shard = current_shard()  # one of several processes under `accelerate launch`
    recovered: list[IndexRecovery] = []
    if shard.main:  # what an interrupted run of several processes left
        with _writer_lock(folder):
            _fold_parts(folder, _open_for_writing(folder, identity, dtype, shard_size, recovered), shard_size, recovered)
    shard.wait()
    target = folder
    if shard.world > 1:  # this process's share of the media not yet cached, into its own part folder
        cached = (read_index(folder) or {"entries": {}})["entries"]
        mine = set(shard.mine([key for key in media if key not in cached]))
        media = {key: entry for key, entry in media.items() if key in mine}
        target = folder / f"{PART_PREFIX}{shard.rank}-of-{shard.world}"
        target.mkdir(exist_ok=True)
    with _writer_lock(target):
        _remove_temp_files(target)
        index = _open_for_writing(target, identity, dtype, shard_size, recovered)
        todo = [(key, entry["sources"]) for key, entry in media.items() if key not in index["entries"]]
        for key, entry in media.items():
            index["media"][key] = entry["sources"]
        writer = _ShardWriter(target, index, shard_size)
        failed = _run(model, processor, Path(root), todo, writer, batch_size, workers, dtype, progress)
        writer.finish()
    shard.wait()
    if shard.world > 1 and shard.main:
        with _writer_lock(folder):
            index = _open_for_writing(folder, identity, dtype, shard_size, recovered)
            index = _fold_parts(folder, index, shard_size, recovered)
    return {
        "out_dir": str(folder),
        "records": len(records),
        "media": len(media),
        "cached": len(todo) - len(failed),
        "skipped": len(media) - len(todo),
        "failed": failed,
        "failed_records": {key: media[key]["records"] for key in failed},
        "shards": writer.written,
        "processes": shard.world,
        "total_cached": len(index["entries"]),
        "recovered": [report.as_dict() for report in recovered],
        "seconds": round(time.monotonic() - start, 3),
    }


def _fold_parts(folder: Path, index: dict[str, Any], shard_size: int, recovered: list[IndexRecovery]) -> dict[str, Any]:
    """Move the shards of the part folders that several processes wrote into `folder`'s index
    (renamed to follow its own), with their entries, errors and media; remove the parts.
    A part's damaged index is rebuilt from its shards first, as the folder's own would be."""
    parts = sorted(p for p in folder.glob(f"{PART_PREFIX}*") if p.is_dir())
    for part in parts:
        with _writer_lock(part):
            _remove_temp_files(part)
            other = _read_or_rebuild(part, index["identity"], DTYPES[index["dtype"]], shard_size, recovered)
            if other is not None:
                differences = identity_differences(other["identity"], index["identity"])
                if differences or other["dtype"] != index["dtype"]:
                    raise StaleCacheError(
                        str(part / INDEX_NAME), differences or [f"stored dtype {other['dtype']}, this run {index['dtype']}"])
                _drop_damaged_shards(part, other)
                for name, info in other["shards"].items():
                    new_name = _next_shard_name(index)
                    os.replace(part / name, folder / new_name)
                    index["shards"][new_name] = info
                    for key, (shard, row) in other["entries"].items():
                        if shard == name:
                            index["entries"][key] = [new_name, row]
                            index["errors"].pop(key, None)
                if other["fields"]:
                    index["fields"] = index["fields"] or other["fields"]
                for key, message in other["errors"].items():
                    if key not in index["entries"]:
                        index["errors"][key] = message
                index["media"].update(other["media"])
            write_index(folder, index)  # the shards are in before the part is removed
        shutil.rmtree(part)
    if not parts and read_index(folder) is None:
        write_index(folder, index)
    return index


def _run(model, processor, root, todo, writer: _ShardWriter, batch_size, workers, dtype, progress) -> dict[str, str]:
    """The decode -> encode -> write loop; returns {key: message} of the media that failed."""
    device = next(model.parameters()).device
    loader = DataLoader(
        _MediaDataset(todo, root, processor),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",  # faster host-to-GPU copies of the decoded batches
    )
    failed: dict[str, str] = {}
    done = 0
    with _eval_mode(model):
        for batch in loader:
            for key, message in batch["errors"]:
                logger.warning("media %s failed: %s", key, message)
                failed[key] = message
                writer.fail(key, message)
            if batch["keys"]:
                for key, row in zip(batch["keys"], _encode_rows(model, batch, device, dtype)):
                    writer.add(key, row)
            done += len(batch["keys"]) + len(batch["errors"])
            if progress is not None:
                progress(done, len(todo))
    return failed
