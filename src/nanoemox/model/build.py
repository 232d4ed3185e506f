"""Building Nano-EmoX: from a config (`build_model`) or from a model folder (`load_model`).

The folder format itself (what a folder holds, writing it, reading its config and
weights) is model/saving.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from nanoemox.config import MODALITIES, NanoEmoXConfig
from nanoemox.model.face import FaceBranch, build_face_encoder
from nanoemox.model.fusion import FusionBranch
from nanoemox.model.language import apply_lora, build_language_model
from nanoemox.model.nanoemox import NanoEmoX
from nanoemox.model.saving import (
    BACKBONE_DIRS,
    CONFIG_NAME,
    WEIGHTS_NAME,
    read_model_config,
    read_weights,
    save_model,
    trainable_state_dict,
)
from nanoemox.model.scene import SceneBranch, build_scene_encoder
from nanoemox.model.speech import SpeechBranch, build_speech_encoder
from nanoemox.tokenizer import add_placeholder_tokens, build_tiny_tokenizer, load_tokenizer

logger = logging.getLogger(__name__)


def _placeholder_ids(config: NanoEmoXConfig, tokenizer: PreTrainedTokenizerBase | None) -> dict[str, int]:
    if tokenizer is not None:
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
    source = config.language.tokenizer or config.language.model
    return load_tokenizer(source, config) if source else build_tiny_tokenizer(config)


# ---------------------------------------------------------------------- loading


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


# The Hugging Face spellings users know, `model.save_pretrained(folder)` and
# `NanoEmoX.from_pretrained(folder)`, are save_model / load_model themselves. They are attached
# here rather than defined in the composer so that model/nanoemox.py never imports the modules
# that build and save it; the package's own code calls save_model / load_model.
NanoEmoX.save_pretrained = save_model
NanoEmoX.from_pretrained = staticmethod(load_model)
