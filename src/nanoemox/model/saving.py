"""The model folder format: writing a folder (`save_model`, `write_model_files`) and reading its parts.

A model folder holds:

    config.json          the NanoEmoXConfig, the placeholder token ids and a format version
    model.safetensors    the trainable weights (adapters, Q-Formers, face temporal, fusion, LoRA)
    tokenizer/           the tokenizer with the placeholders (written with the processor)
    scene_encoder/ speech_encoder/ face_encoder/ language/
                         backbones, only in a self-contained folder; otherwise config.json
                         refers to them by hub id or path

`save_model` writes the backbones a folder needs, then everything else with
`write_model_files`; the trainer writes a checkpoint's model files with `write_model_files`
too, so a training checkpoint (train/checkpoint.py) is also a model folder.

Backbone references in config.json that start with "./" are relative to the folder.
A backbone without any reference (random weights, e.g. the tiny preset) is always
written into the folder, because nothing else could rebuild it.

Rebuilding a model from a folder needs the builders, so `load_model` lives beside
`build_model` in model/build.py; this module never imports them.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase

from nanoemox import __version__
from nanoemox.config import NanoEmoXConfig
from nanoemox.model.groups import SAVED_GROUPS, group_of
from nanoemox.model.language import base_state_dict
from nanoemox.model.nanoemox import NanoEmoX
from nanoemox.utils import atomic_directory, atomic_save_safetensors, atomic_write_json

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TOKENIZER_DIR = "tokenizer"
BACKBONE_DIRS = {"scene": "scene_encoder", "speech": "speech_encoder", "face": "face_encoder", "language": "language"}


# ---------------------------------------------------------------------- saving


def trainable_state_dict(model: NanoEmoX) -> dict[str, torch.Tensor]:
    """The weights a model folder stores in model.safetensors (groups `SAVED_GROUPS`)."""
    return {k: v for k, v in model.state_dict().items() if _is_saved(k)}


def _is_saved(key: str) -> bool:
    try:
        return group_of(key) in SAVED_GROUPS
    except ValueError:  # buffers outside any parameter group (none today) are not saved
        return False


def _save_backbones(model: NanoEmoX, folder: Path, config: NanoEmoXConfig, self_contained: bool) -> None:
    branches = {"scene": config.scene, "speech": config.speech, "face": config.face}
    for name, branch_cfg in branches.items():
        if self_contained or not branch_cfg.encoder:
            getattr(model, name).encoder.save_pretrained(folder / BACKBONE_DIRS[name])
            branch_cfg.encoder = "./" + BACKBONE_DIRS[name]
    if self_contained or not config.language.model:
        lm_dir = folder / BACKBONE_DIRS["language"]
        model.language.save_pretrained(lm_dir, state_dict=base_state_dict(model.language))
        config.language.model = "./" + BACKBONE_DIRS["language"]
        if config.language.tokenizer and not config.language.tokenizer.startswith("./"):
            config.language.tokenizer = None


def save_model(
    model: NanoEmoX,
    folder: str | os.PathLike,
    *,
    self_contained: bool = False,
    tokenizer: PreTrainedTokenizerBase | None = None,
    processor=None,
) -> Path:
    """Write a model folder atomically (built in a temp folder, then renamed into place).

    The backbones go in first: all of them with `self_contained`, else those config.json could
    not refer to otherwise; then `write_model_files` with the model's saved weights.
    `processor` (a NanoEmoXProcessor) is written with its tokenizer; else `tokenizer` alone.
    """
    folder = Path(folder)
    config = copy.deepcopy(model.config)  # _save_backbones points the written backbones' references into the folder
    with atomic_directory(folder) as tmp:
        _save_backbones(model, tmp, config, self_contained)
        write_model_files(tmp, config, model.placeholder_ids, trainable_state_dict(model), processor=processor,
                          tokenizer=tokenizer)
    return folder


def write_model_files(
    folder: Path,
    config: NanoEmoXConfig,
    placeholder_ids: dict[str, int],
    weights: dict[str, torch.Tensor],
    *,
    processor=None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> None:
    """Write a model folder's files, backbones aside, into the existing folder `folder`.

    In this order: `processor` (a NanoEmoXProcessor, with its tokenizer) or else `tokenizer` alone
    into tokenizer/; `weights` (a `trainable_state_dict`, whole tensors) as model.safetensors;
    config.json (`write_model_config`: `config` must already refer to every backbone). Each file
    is written atomically, the folder as a whole is not: callers write into a temp folder.
    """
    if processor is not None:
        processor.save_pretrained(folder)
    elif tokenizer is not None:
        tokenizer.save_pretrained(folder / TOKENIZER_DIR)
    atomic_save_safetensors(weights, folder / WEIGHTS_NAME, metadata={"format": "pt"})
    write_model_config(folder, config, placeholder_ids)


def write_model_config(folder: Path, config: NanoEmoXConfig, placeholder_ids: dict[str, int]) -> None:
    """A model folder's config.json; every backbone must already be referred to (a hub id or a path)."""
    unreferred = [name for name, ref in (("scene", config.scene.encoder), ("speech", config.speech.encoder),
                                         ("face", config.face.encoder), ("language", config.language.model)) if not ref]
    if unreferred:
        raise ValueError(f"cannot write {folder / CONFIG_NAME}: no reference to the {', '.join(unreferred)} backbone(s)")
    meta = {"format_version": FORMAT_VERSION, "nanoemox_version": __version__, "placeholder_ids": placeholder_ids}
    atomic_write_json({**meta, "config": config.to_dict()}, folder / CONFIG_NAME)


# ---------------------------------------------------------------------- reading


def _resolve(ref: str | None, folder: Path) -> str | None:
    """A "./" reference inside a model folder as an absolute path (others: hub names, absolute paths)."""
    if ref and ref.startswith("./"):
        # Absolute, so that a model loaded from a relative folder and saved elsewhere (a
        # training phase's hand-over) never records a path that only works from one cwd.
        return str(folder.expanduser().resolve() / ref[2:])
    return ref


def read_model_config(folder: str | os.PathLike) -> tuple[NanoEmoXConfig, dict[str, int]]:
    """The config of a model folder with backbone references resolved, and its placeholder ids."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a Nano-EmoX model folder: {CONFIG_NAME} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        config = NanoEmoXConfig.from_dict(data["config"])
        ids = {m: int(i) for m, i in data["placeholder_ids"].items()}
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise ValueError(f"{path}: not a valid Nano-EmoX config ({problem}); copy the folder again or "
                         "re-create it with `nanoemox init-model` / training") from None
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: folder format {data['format_version']} is newer than this version supports")
    config.scene.encoder = _resolve(config.scene.encoder, folder)
    config.speech.encoder = _resolve(config.speech.encoder, folder)
    config.face.encoder = _resolve(config.face.encoder, folder)
    config.language.model = _resolve(config.language.model, folder)
    config.language.tokenizer = _resolve(config.language.tokenizer, folder)
    return config, ids


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a damaged or truncated file is a ValueError naming it."""
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot be read as safetensors ({str(exc).strip()[:200]}); the file is damaged "
                         "or truncated: copy it again, or use an intact checkpoint") from None
