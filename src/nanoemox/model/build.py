"""Building Nano-EmoX from a config, and the model folder format.

A model folder holds:

    config.json          the NanoEmoXConfig, the placeholder token ids and a format version
    model.safetensors    the trainable weights (adapters, Q-Formers, face temporal, fusion, LoRA)
    tokenizer/           the tokenizer with the placeholders (written with the processor)
    scene_encoder/ speech_encoder/ face_encoder/ language/
                         backbones, only in a self-contained folder; otherwise config.json
                         refers to them by hub id or path

Backbone references in config.json that start with "./" are relative to the folder.
A backbone without any reference (random weights, e.g. the tiny preset) is always
written into the folder, because nothing else could rebuild it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase

from nanoemox import __version__
from nanoemox.config import MODALITIES, NanoEmoXConfig
from nanoemox.model.face import FaceBranch, build_face_encoder
from nanoemox.model.fusion import FusionBranch
from nanoemox.model.groups import SAVED_GROUPS, group_of
from nanoemox.model.language import apply_lora, base_state_dict, build_language_model
from nanoemox.model.nanoemox import NanoEmoX
from nanoemox.model.scene import SceneBranch, build_scene_encoder
from nanoemox.model.speech import SpeechBranch, build_speech_encoder
from nanoemox.utils import atomic_directory, atomic_save_safetensors, atomic_write_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TOKENIZER_DIR = "tokenizer"
BACKBONE_DIRS = {"scene": "scene_encoder", "speech": "speech_encoder", "face": "face_encoder", "language": "language"}


def _placeholder_ids(config: NanoEmoXConfig, tokenizer: PreTrainedTokenizerBase | None) -> dict[str, int]:
    if tokenizer is not None:
        from nanoemox.tokenizer import add_placeholder_tokens

        return add_placeholder_tokens(tokenizer, config)
    # No tokenizer (a meta-device build for counting): reserve the last ids of the vocabulary.
    vocab = int(config.language.model_config.get("vocab_size", 151936))
    return {m: vocab - len(MODALITIES) + i for i, m in enumerate(MODALITIES)}


# What each backbone's weights are and where a config names them.
BACKBONE_WEIGHTS = {
    "scene": "the CLIP ViT-L/14 vision weights (scene.encoder)",
    "speech": "the HuBERT-Large weights (speech.encoder)",
    "face": "the FaceXFormer checkpoint (model.face_checkpoint in a training config, face.encoder in a model config)",
    "language": "the Qwen2.5-1.5B-Instruct weights (language.model)",
}


def random_backbones_of(config: NanoEmoXConfig, *, pretrained: bool = True) -> list[str]:
    """The backbones `build_model` leaves random: no weight reference, or `pretrained=False`.

    Backbones the config already records as random stay in the list.
    """
    references = {"scene": config.scene.encoder, "speech": config.speech.encoder, "face": config.face.encoder,
                  "language": config.language.model}
    random = set(config.random_backbones) | {b for b, ref in references.items() if not (pretrained and ref)}
    return [b for b in BACKBONE_DIRS if b in random]


class RandomBackbonesError(ValueError):
    """A non-tiny model would run with a frozen backbone that was never trained."""


def check_backbones(config: NanoEmoXConfig, *, allow: bool = False, purpose: str = "training") -> list[str]:
    """The model's random backbones; RandomBackbonesError for a non-tiny preset unless `allow`.

    The tiny preset is random by design (a CPU stand-in), so it always passes. A frozen
    random encoder never learns, so a paper-scale run with one would quietly produce a
    weaker model; it is refused unless explicitly allowed, and then logged.
    """
    random = list(config.random_backbones)
    if not random or config.preset == "tiny":
        return random
    missing = "; ".join(f"{b}: {BACKBONE_WEIGHTS[b]}" for b in random)
    if not allow:
        raise RandomBackbonesError(
            f"refusing {purpose}: the {config.preset} model has random weights in its frozen backbone(s) "
            f"{', '.join(random)}. Missing: {missing}. Give the weights, or pass --allow-random-backbones "
            "(training configs: model.allow_random_backbones: true) to go on knowingly")
    logger.warning("%s with random backbone(s) %s, as allowed; missing: %s", purpose, ", ".join(random), missing)
    return random


def build_model(
    config: NanoEmoXConfig,
    *,
    pretrained: bool = True,
    tokenizer: PreTrainedTokenizerBase | None = None,
    placeholder_ids: dict[str, int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> NanoEmoX:
    """Build every branch and the composer.

    `pretrained` loads each backbone that has a reference (hub id or path) with
    `from_pretrained`; backbones without one, or all with `pretrained=False`, are random.
    """
    ids = placeholder_ids or _placeholder_ids(config, tokenizer)
    vocab_size = len(tokenizer) if tokenizer is not None else None
    config.random_backbones = random_backbones_of(config, pretrained=pretrained)
    language = build_language_model(config.language, pretrained=pretrained, vocab_size=vocab_size, dtype=dtype)
    apply_lora(language, config.lora)
    lm_width = language.config.hidden_size
    scene = SceneBranch(
        config.scene,
        build_scene_encoder(config.scene, pretrained=pretrained, dtype=dtype),
        lm_width=lm_width,
        tap_layers=config.fusion.visual_layers,
    )
    speech = SpeechBranch(
        config.speech,
        build_speech_encoder(config.speech, pretrained=pretrained, dtype=dtype),
        lm_width=lm_width,
        tap_layers=config.fusion.speech_layers,
    )
    face = FaceBranch(config.face, build_face_encoder(config.face, pretrained=pretrained, dtype=dtype), lm_width=lm_width)
    fusion = FusionBranch(config.fusion, speech_width=speech.width, visual_width=scene.width, lm_width=lm_width)
    model = NanoEmoX(config, scene=scene, speech=speech, face=face, fusion=fusion, language=language, placeholder_ids=ids)
    # Everything built here but the backbones is float32 by construction; keep one dtype.
    return model.to(dtype)


def build_tokenizer(config: NanoEmoXConfig) -> PreTrainedTokenizerBase:
    """The configured tokenizer (hub id / folder) with placeholders, or a fresh tiny one."""
    from nanoemox.tokenizer import build_tiny_tokenizer, load_tokenizer

    source = config.language.tokenizer or config.language.model
    return load_tokenizer(source, config) if source else build_tiny_tokenizer(config)


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
    """Write a model folder atomically (built in a temp folder, then renamed into place)."""
    folder = Path(folder)
    config = copy.deepcopy(model.config)
    with atomic_directory(folder) as tmp:
        _save_backbones(model, tmp, config, self_contained)
        if processor is not None:
            processor.save_pretrained(tmp)
        elif tokenizer is not None:
            tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
        atomic_save_safetensors(trainable_state_dict(model), tmp / WEIGHTS_NAME, metadata={"format": "pt"})
        meta = {"format_version": FORMAT_VERSION, "nanoemox_version": __version__, "placeholder_ids": model.placeholder_ids}
        atomic_write_json({**meta, "config": config.to_dict()}, tmp / CONFIG_NAME)
    return folder


# ---------------------------------------------------------------------- loading


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
    from safetensors import SafetensorError

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot be read as safetensors ({str(exc).strip()[:200]}); the file is damaged "
                         "or truncated: copy it again, or use an intact checkpoint") from None


def load_model(folder: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device=None) -> NanoEmoX:
    """Rebuild a model from a folder written by `save_model`; every stored weight must fit exactly."""
    folder = Path(folder)
    config, ids = read_model_config(folder)
    model = build_model(config, pretrained=True, placeholder_ids=ids, dtype=dtype)
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} is missing: the folder holds no trained weights")
    weights = read_weights(weights_path)
    own = trainable_state_dict(model)
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{weights_path} does not fit the model built from {folder / CONFIG_NAME}: "
            f"missing {missing[:8]} ({len(missing)}), unexpected {unexpected[:8]} ({len(unexpected)})"
        )
    wrong = [f"{k} {tuple(weights[k].shape)} (model: {tuple(own[k].shape)})" for k in own
             if weights[k].shape != own[k].shape]
    if wrong:
        raise ValueError(f"{weights_path}: {len(wrong)} tensor(s) of the wrong shape for the model built from "
                         f"{folder / CONFIG_NAME}, e.g. {', '.join(wrong[:3])}")
    model.load_state_dict(weights, strict=False)
    model.eval()
    return model.to(device) if device is not None else model
