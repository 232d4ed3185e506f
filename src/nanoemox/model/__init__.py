"""The Nano-EmoX model: one file per branch (scene, speech, face, fusion), the language part,
and a thin composer (`NanoEmoX`) that wires them."""

from nanoemox.model.build import build_model, build_tokenizer, load_model
from nanoemox.model.face import FaceEncoder
from nanoemox.model.groups import GROUPS, parameter_groups, set_trainable
from nanoemox.model.nanoemox import MediaFeatures, NanoEmoX
from nanoemox.model.saving import save_model

__all__ = [
    "GROUPS",
    "FaceEncoder",
    "MediaFeatures",
    "NanoEmoX",
    "build_model",
    "build_tokenizer",
    "load_model",
    "parameter_groups",
    "save_model",
    "set_trainable",
]
