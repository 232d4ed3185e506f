"""Stand-in backbones for the CPU demo: built once (`nanoemox standins build`), shipped like a checkpoint.

The paper preset starts from pretrained CLIP, HuBERT, FaceXFormer and Qwen2.5-Instruct
weights. The CPU demo has none of them, so this package pre-trains small stand-ins of
the four backbones from scratch (`nanoemox.standins.build`) and the package ships the
result under `nanoemox/resources/standins/` (16-bit safetensors, a tokenizer and a
`manifest.json` saying what each stand-in read, for how long, its held-out checks and
the hash of every file). `nanoemox demo` loads them by default, the way the paper
preset loads its hub checkpoints.

A stand-in folder holds `scene_encoder/`, `speech_encoder/`, `face_encoder/`, `language/`
(a plain Qwen2 folder), `tokenizer/`, `stand_in_heads.safetensors` (the encoders' linear heads,
for the demo's diagnostics) and `manifest.json`.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from nanoemox.config import NanoEmoXConfig, tiny
from nanoemox.model.saving import BACKBONE_DIRS

MANIFEST = "manifest.json"
HEADS = "stand_in_heads.safetensors"
TOKENIZER_DIR = "tokenizer"
# The language stand-in's architecture: the tiny preset's LM (64-d, 2 layers) could not
# be steered by a soft prompt (phase 1's oracle reading test: 0.77); 128-d with 4 layers
# reads it exactly (docs/training.md#the-stand-in-backbones).
LANGUAGE = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2)


def packaged() -> Path:
    """The stand-ins shipped with the package."""
    return Path(str(resources.files("nanoemox.resources").joinpath("standins")))


def standin_config(folder: str | Path | None = None) -> NanoEmoXConfig:
    """The tiny preset with the language stand-in's architecture; with `folder`, its backbones' weights.

    Without a folder the backbones are random (what the build starts from).
    """
    config = tiny()
    config.language.model_config.update(LANGUAGE)
    if folder is not None:
        folder = Path(folder).expanduser().resolve()
        check_folder(folder)
        config.scene.encoder = str(folder / BACKBONE_DIRS["scene"])
        config.speech.encoder = str(folder / BACKBONE_DIRS["speech"])
        config.face.encoder = str(folder / BACKBONE_DIRS["face"])
        config.language.model = str(folder / BACKBONE_DIRS["language"])
        config.language.tokenizer = str(folder / TOKENIZER_DIR)
        manifest = read_manifest(folder)
        config.language.model_config["vocab_size"] = int(manifest["language"]["vocab_size"])
    return config


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no stand-in backbones ({MANIFEST} is missing); build them with "
                                "`nanoemox standins build --out DIR`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); rebuild the stand-ins") from None


WORK_DIR = "work"  # a build's own stages (`nanoemox.standins.build`), not part of the stand-ins


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a stand-in folder (the manifest and a build's work folder aside), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST and p.relative_to(folder).parts[0] != WORK_DIR}


def check_folder(folder: Path) -> None:
    """Every file the manifest lists is there with its hash, and nothing else is: else a ValueError."""
    manifest = read_manifest(folder)
    listed, found = manifest.get("files", {}), file_hashes(folder)
    wrong = sorted(k for k in listed if found.get(k) != listed[k])
    extra = sorted(set(found) - set(listed))
    if wrong or extra:
        raise ValueError(f"{folder}: the stand-in files do not match {MANIFEST} (changed or missing: {wrong[:5]}; "
                         f"not listed: {extra[:5]}); rebuild with `nanoemox standins build`")
