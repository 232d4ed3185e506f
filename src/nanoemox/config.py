"""Nested dataclass configuration of Nano-EmoX and its two presets.

`paper()` carries every number of DESIGN section 2 (CLIP ViT-L/14, HuBERT-Large,
Swin-B FaceXFormer encoder, Qwen2.5-1.5B, 32/32/4/1 modality tokens, fusion taps
visual 12/16/22 and speech 16/18/22). `tiny()` keeps the same structure with small
widths so that a training step runs on a CPU in well under a second.

Each branch names its pretrained backbone (`encoder`: a hub id or a local folder;
None builds it randomly from `encoder_config`). The embedded `encoder_config` holds the
backbone's architecture, so a model can be built on the meta device without any
download (`nanoemox info`), and random models can be created for tests.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Modality order of the prompt (DESIGN section 2): fusion, speech, face, scene.
MODALITIES = ("fusion", "speech", "face", "scene")
PLACEHOLDERS = {
    "fusion": "<|emo_fusion|>",
    "speech": "<|emo_speech|>",
    "face": "<|emo_face|>",
    "scene": "<|emo_scene|>",
}


@dataclass
class QFormerConfig:
    """A BLIP-2 style Q-Former (transformers `Blip2QFormerModel`) with cross-attention in every layer."""

    hidden_size: int = 768
    num_layers: int = 2
    num_heads: int = 12
    intermediate_size: int = 3072
    dropout: float = 0.1


@dataclass
class SceneConfig:
    """Scene branch: frozen CLIP vision tower -> frame CLS vectors -> Q-Former -> adapter."""

    encoder: str | None = "openai/clip-vit-large-patch14"
    encoder_config: dict[str, Any] = field(default_factory=dict)
    num_frames: int = 8
    num_tokens: int = 32
    feature_layer: int = -2  # CLS vector of hidden_states[-2]
    qformer: QFormerConfig = field(default_factory=QFormerConfig)


@dataclass
class SpeechConfig:
    """Speech branch: frozen HuBERT on 8 two-second clips -> Q-Former -> adapter."""

    encoder: str | None = "TencentGameMate/chinese-hubert-large"
    encoder_config: dict[str, Any] = field(default_factory=dict)
    sample_rate: int = 16000
    num_clips: int = 8
    clip_seconds: float = 2.0
    num_tokens: int = 32
    pool_last_layers: int = 4  # mean of the last 4 hidden layers, then over time
    qformer: QFormerConfig = field(default_factory=QFormerConfig)


@dataclass
class FaceConfig:
    """Face branch: frozen FaceXFormer encoder (Swin) -> 256-d per frame -> 4 temporal queries -> MLP."""

    # A FaceXFormer checkpoint file, a folder written by `FaceEncoder.save_pretrained`, or None (random).
    encoder: str | None = None
    encoder_config: dict[str, Any] = field(default_factory=dict)  # transformers SwinConfig kwargs
    feature_dim: int = 256
    num_tokens: int = 4
    num_heads: int = 4
    mlp_hidden: int = 768


@dataclass
class FusionConfig:
    """Hierarchical expert fusion: one expert per (speech layer, visual layer) pair, low to high."""

    speech_layers: tuple[int, ...] = (16, 18, 22)
    visual_layers: tuple[int, ...] = (12, 16, 22)
    width: int = 512
    num_heads: int = 8
    num_tokens: int = 1

    @property
    def num_experts(self) -> int:
        return len(self.speech_layers)


@dataclass
class LanguageConfig:
    """The language model (Qwen2) and its tokenizer."""

    model: str | None = "Qwen/Qwen2.5-1.5B-Instruct"
    model_config: dict[str, Any] = field(default_factory=dict)  # transformers Qwen2Config kwargs
    tokenizer: str | None = None  # defaults to `model`
    max_length: int = 1024


@dataclass
class LoRAConfig:
    r: int = 32
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class NanoEmoXConfig:
    preset: str = "paper"
    scene: SceneConfig = field(default_factory=SceneConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    placeholders: dict[str, str] = field(default_factory=lambda: dict(PLACEHOLDERS))
    # Backbones ("scene", "speech", "face", "language") whose weights were random when the
    # model was first built; recorded at build time and kept in every saved folder, since
    # a random backbone saved into a folder looks like any other on reload.
    random_backbones: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.fusion.speech_layers) != len(self.fusion.visual_layers):
            raise ValueError(
                "fusion.speech_layers and fusion.visual_layers must pair up one to one, got "
                f"{self.fusion.speech_layers} and {self.fusion.visual_layers}"
            )
        if set(self.placeholders) != set(MODALITIES):
            raise ValueError(f"placeholders must name exactly {MODALITIES}")

    def token_counts(self) -> dict[str, int]:
        """Modality tokens per sample, in prompt order (fusion, speech, face, scene)."""
        return {
            "fusion": self.fusion.num_tokens,
            "speech": self.speech.num_tokens,
            "face": self.face.num_tokens,
            "scene": self.scene.num_tokens,
        }

    @property
    def num_frames(self) -> int:
        return self.scene.num_frames

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NanoEmoXConfig":
        return _from_dict(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "NanoEmoXConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether `value` (from JSON) fits a field's type hint; nested dataclasses are checked by _from_dict."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return not inner or all(_type_ok(v, inner[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict) and (not args or all(_type_ok(v, args[1]) for v in value.values()))
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    return True  # anything else is not constrained here


def _from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Rebuild a (nested) dataclass from `asdict` output, turning lists back into tuples.

    Every field is checked against its type hint; a wrong one is a ValueError naming
    the field (e.g. `scene.num_frames: expected int, got '8'`).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected an object, got {type(data).__name__}")
    kwargs = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {sorted(unknown)}")
    for name, value in data.items():
        path = f"{where}.{name}" if where else name
        hint = hints.get(name, Any)
        if not _type_ok(value, hint):
            shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise ValueError(f"{path}: expected {shown}, got {value!r:.80}")
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = _from_dict(type(default), value, path)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


# --------------------------------------------------------------------------- presets


def _clip_vit_large_14() -> dict[str, Any]:
    return dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=224, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    )


def _hubert_large() -> dict[str, Any]:
    return dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, feat_proj_layer_norm=True,
    )


def _swin_base() -> dict[str, Any]:
    return dict(
        image_size=224, patch_size=4, num_channels=3, embed_dim=128, depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32], window_size=7, mlp_ratio=4.0, qkv_bias=True, layer_norm_eps=1e-5,
    )


def _qwen25_15b() -> dict[str, Any]:
    return dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
        rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
    )


def paper() -> NanoEmoXConfig:
    """Every number of DESIGN section 2 (about 2.2B parameters)."""
    return NanoEmoXConfig(
        preset="paper",
        scene=SceneConfig(encoder_config=_clip_vit_large_14()),
        speech=SpeechConfig(encoder_config=_hubert_large()),
        face=FaceConfig(encoder_config=_swin_base()),
        fusion=FusionConfig(),
        language=LanguageConfig(model_config=_qwen25_15b()),
        lora=LoRAConfig(),
    )


def tiny() -> NanoEmoXConfig:
    """Same structure with small widths: random or briefly pre-trained backbones, CPU friendly."""
    small_qformer = QFormerConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, dropout=0.0)
    return NanoEmoXConfig(
        preset="tiny",
        scene=SceneConfig(
            encoder=None,
            encoder_config=dict(
                hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
            ),
            qformer=small_qformer,
        ),
        speech=SpeechConfig(
            encoder=None,
            encoder_config=dict(
                hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128,
                feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_proj_layer_norm=True,
            ),
            qformer=small_qformer,
        ),
        face=FaceConfig(
            encoder=None,
            encoder_config=dict(
                image_size=224, patch_size=4, num_channels=3, embed_dim=16, depths=[1, 1, 1, 1],
                num_heads=[1, 2, 2, 4], window_size=7, mlp_ratio=2.0, qkv_bias=True, layer_norm_eps=1e-5,
            ),
            feature_dim=32,
            num_heads=4,
            mlp_hidden=64,
        ),
        fusion=FusionConfig(speech_layers=(3, 4, 6), visual_layers=(2, 4, 5), width=32, num_heads=4),
        language=LanguageConfig(
            model=None,
            model_config=dict(
                vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-6,
                rope_theta=10000.0, tie_word_embeddings=True,
            ),
            max_length=512,
        ),
        lora=LoRAConfig(r=8, alpha=16, dropout=0.05),
    )


PRESETS = {"paper": paper, "tiny": tiny}


def get_preset(name: str) -> NanoEmoXConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
