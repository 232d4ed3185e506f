"""Training checkpoints: everything needed to continue a phase bit-for-bit, without pickle.

A checkpoint folder `step_00000100/` holds

    model.safetensors      trainable weights
    config.json tokenizer/ answer_budgets.json
                           the rest of a model folder; with model.safetensors, written by
                           the trainer (`model_files`: model/saving.py's `write_model_files`)
    optimizer.safetensors  the optimizer's tensors, flattened as state.<param>.<name>
    rng.safetensors        torch CPU (and CUDA) generator states; those of process r > 0
                           of a multi-process run prefixed `rank<r>.`
    state.json             step, data position, scheduler and optimizer hyper-parameters,
                           Python and NumPy RNG states (one per process), the phase name,
                           the loss history

So a checkpoint is also a model folder: `nanoemox analyze --model
.../checkpoints/step_00000100` loads it in one process.

Tensors are always whole, also from an FSDP run (train/sharding.py gathers them first).

It is written to a temp folder and renamed, so a crash mid-write leaves the previous
checkpoint intact; only the newest `keep_last` are kept. `state.json`, written last,
records the size and SHA-256 of each tensor file, so a resume can verify the newest
checkpoint (`verify_checkpoint`) and fall back to the newest intact one
(`latest_intact_checkpoint`) when a disk or a copy damaged it; temp folders left by
a kill during a write are removed when a run resumes (`remove_stale_temp`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nanoemox.features.store import file_sha256
from nanoemox.model.saving import read_weights
from nanoemox.utils import atomic_directory, atomic_save_safetensors, atomic_write_json

STEP_DIR = re.compile(r"^step_(\d{8})$")
TENSOR_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")
TEMP_DIR = re.compile(r"^\.step_\d{8}\..*\.(tmp|old-\d+)$|^\.step_\d{8}\.old-\d+$")

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""




def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = meta["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))


def save_checkpoint(
    folder: Path,
    *,
    step: int,
    model_files: Callable[[Path], None],
    optimizer_state: dict[str, Any],
    scheduler,
    extra: dict[str, Any],
    keep_last: int,
    rng: tuple[dict[str, torch.Tensor], list[dict[str, Any]]],
) -> Path:
    """Write `folder/step_<step>` atomically and prune older checkpoints.

    `model_files(tmp)` writes the model's files into the temp folder, model.safetensors
    among them (the trainer: model/saving.py's `write_model_files` and the answer budgets);
    `optimizer_state` is a one-process optimizer's state_dict (whole tensors); `rng` the RNG
    states of every process (tensors, one meta per process; alone: `rng_state()`'s).
    """
    target = folder / f"step_{step:08d}"
    opt_tensors, opt_meta = _flatten_optimizer(optimizer_state)
    rng_tensors, rng_metas = rng
    with atomic_directory(target) as tmp:
        model_files(tmp)
        atomic_save_safetensors(opt_tensors, tmp / "optimizer.safetensors")
        atomic_save_safetensors(rng_tensors, tmp / "rng.safetensors")
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)} for name in TENSOR_FILES}
        state = {"step": step, "optimizer": opt_meta, "scheduler": scheduler.state_dict(), "rng": rng_metas[0],
                 "files": files, **extra}
        if len(rng_metas) > 1:
            state["rng_ranks"] = rng_metas
        atomic_write_json(state, tmp / "state.json")
    for old in list_checkpoints(folder)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp folders of an interrupted write are ignored)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _read_state(path: Path) -> dict[str, Any]:
    state_path = path / "state.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise ValueError("no integer 'step'")
        return state
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{state_path}: unreadable checkpoint state ({exc})") from None


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return read_weights(path)
    except ValueError as exc:  # the reader names the file and says it is damaged or truncated
        raise CheckpointError(str(exc)) from None


def verify_checkpoint(path: Path) -> None:
    """CheckpointError naming the first damaged file: state.json, a size or checksum, or a file that will not load."""
    state = _read_state(path)
    recorded = state.get("files") or {}
    for name in TENSOR_FILES:
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        expect = recorded.get(name)
        if expect:
            if file.stat().st_size != expect.get("bytes"):
                raise CheckpointError(f"{file}: {file.stat().st_size} bytes, {expect.get('bytes')} when written")
            if file_sha256(file) != expect.get("sha256"):
                raise CheckpointError(f"{file}: checksum differs from the one recorded when it was written")
        _load_tensors(file)


def latest_intact_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that verifies; each damaged newer one is logged as a warning and skipped."""
    for path in reversed(list_checkpoints(folder)):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError as exc:
            log.warning("skipping damaged checkpoint %s: %s; trying the one before", path.name, exc)
    return None


def remove_stale_temp(folder: Path) -> list[Path]:
    """Delete temp folders a killed checkpoint write left behind; returns them."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_dir() and TEMP_DIR.match(p.name)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by an interrupted checkpoint write", path)
    return stale


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; tensors come back on the CPU. CheckpointError names a damaged file."""
    state = _read_state(path)
    state["model_weights"] = _load_tensors(path / "model.safetensors")
    state["optimizer_state"] = _unflatten_optimizer(_load_tensors(path / "optimizer.safetensors"), state.pop("optimizer"))
    state["rng_tensors"] = _load_tensors(path / "rng.safetensors")
    state.pop("files", None)
    return state
