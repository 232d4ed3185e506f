"""Face branch: frozen FaceXFormer encoder per frame -> 4 temporal face tokens (DESIGN section 2).

`FaceEncoder` is FaceXFormer's multi-scale encoder on transformers' `SwinModel`: the four
stage outputs *before* patch merging are projected to 256-d (`linear_c.{i}.proj`),
upsampled to the first stage's 56x56, concatenated in reverse stage order, fused by a
1x1 convolution (`linear_fuse`, no bias) and average-pooled to one vector per frame.
`FaceEncoder.from_facexformer` reads the released checkpoint, whose backbone uses
torchvision `swin_b` parameter names. `FaceBranch` adds the trainable temporal part:
4 learned queries cross-attend over the 8 frame vectors, then an MLP to the LM width.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers import SwinConfig, SwinModel

from nanoemox.config import FaceConfig, paper
from nanoemox.model.common import encoder_context, module_dtype
from nanoemox.utils import atomic_save_safetensors

FACEXFORMER_KEY = "state_dict_backbone"
BACKBONE_PREFIX = "backbone.0."  # torchvision swin_b.features
BACKBONE_NORM_PREFIX = "backbone.1."  # torchvision swin_b.norm
FACEXFORMER_IGNORED = ("face_decoder.", "pe_layer.")


class FaceCheckpointError(ValueError):
    """A FaceXFormer checkpoint does not match the encoder it is loaded into."""


class _Projection(nn.Module):
    """Per-stage token projection; named `proj` to match FaceXFormer's `linear_c.{i}.proj`."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class FaceEncoder(nn.Module):
    """Shapes: N images, C_i stage widths, H_i x W_i stage grids, D feature width (256)."""

    def __init__(self, swin: SwinModel, feature_dim: int = 256):
        super().__init__()
        self.swin = swin
        cfg = swin.config
        widths = [cfg.embed_dim * 2**i for i in range(len(cfg.depths))]
        self.feature_dim = feature_dim
        self.linear_c = nn.ModuleList(_Projection(w, feature_dim) for w in widths)
        self.linear_fuse = nn.Conv2d(feature_dim * len(widths), feature_dim, kernel_size=1, bias=False)

    def stage_features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """[N, 3, 224, 224] -> the 4 stage outputs before downsampling, [N, C_i, H_i, W_i]."""
        out = self.swin(
            pixel_values=pixel_values.to(module_dtype(self.swin)),
            output_hidden_states=True,
            output_hidden_states_before_downsampling=True,
        )
        return list(out.reshaped_hidden_states[1:])

    def frame_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised [N, 3, 224, 224] -> pooled [N, D] per-frame vectors."""
        stages = self.stage_features(pixel_values)
        size = stages[0].shape[-2:]
        projected = []
        for proj, stage in zip(self.linear_c, stages):
            n, c, h, w = stage.shape
            tokens = proj(stage.flatten(2).transpose(1, 2))  # [N, H*W, D]
            grid = tokens.transpose(1, 2).reshape(n, self.feature_dim, h, w)  # [N, D, H, W]
            projected.append(F.interpolate(grid, size=size, mode="bilinear", align_corners=False))
        fused = self.linear_fuse(torch.cat(projected[::-1], dim=1))  # [N, D, 56, 56]
        return fused.mean(dim=(2, 3))  # [N, D]

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_config(cls, cfg: FaceConfig) -> "FaceEncoder":
        return cls(SwinModel(SwinConfig(**cfg.encoder_config), add_pooling_layer=False), cfg.feature_dim)

    @classmethod
    def from_facexformer(cls, path: str | os.PathLike, swin_config: dict | None = None) -> "FaceEncoder":
        """Load the released FaceXFormer checkpoint (a torch file with key `state_dict_backbone`).

        Every backbone key must map onto the encoder and every encoder weight must be
        filled; anything else raises `FaceCheckpointError`. Decoder keys are ignored.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FaceXFormer checkpoint not found: {path}")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unreadable, truncated or pickled objects beyond tensors
            raise FaceCheckpointError(f"{path}: cannot read as a weights-only torch checkpoint ({exc})") from exc
        if not isinstance(checkpoint, dict) or FACEXFORMER_KEY not in checkpoint:
            raise FaceCheckpointError(f"{path}: no {FACEXFORMER_KEY!r} entry; is this a FaceXFormer checkpoint?")
        state = checkpoint[FACEXFORMER_KEY]
        encoder = cls.from_config(FaceConfig(encoder_config=swin_config or paper().face.encoder_config))
        encoder.load_facexformer_state(state, source=str(path))
        return encoder

    def load_facexformer_state(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Copy FaceXFormer tensors (torchvision names) into this encoder, strictly."""
        own = self.state_dict()
        mapped: dict[str, torch.Tensor] = {}
        unexpected: list[str] = []
        for key, tensor in state.items():
            if key.startswith(FACEXFORMER_IGNORED):
                continue
            targets = _facexformer_to_ours(key, tensor)
            if targets is None:
                unexpected.append(key)
                continue
            for name, value in targets.items():
                if name is None:  # a buffer that our encoder recomputes: check it agrees
                    continue
                mapped[name] = value
        missing = sorted(set(own) - set(mapped))
        unknown = sorted(set(mapped) - set(own))
        if unexpected or missing or unknown:
            raise FaceCheckpointError(
                f"{source}: FaceXFormer backbone does not match the encoder: "
                f"unexpected keys {unexpected[:10] + unknown[:10]}, missing weights {missing[:10]} "
                f"({len(unexpected) + len(unknown)} unexpected, {len(missing)} missing)"
            )
        bad = [k for k, v in mapped.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise FaceCheckpointError(
                f"{source}: shape mismatch for {bad[:5]}: checkpoint "
                f"{[tuple(mapped[k].shape) for k in bad[:5]]} vs encoder {[tuple(own[k].shape) for k in bad[:5]]}"
            )
        self._check_position_indices(state, source)
        self.load_state_dict(mapped, strict=True)

    def _check_position_indices(self, state: dict[str, torch.Tensor], source: str) -> None:
        """The checkpoint's relative-position indices must equal the ones SwinModel recomputes."""
        ours = {
            name: buf
            for name, buf in self.named_buffers()
            if name.endswith("relative_position_index")
        }
        for key, tensor in state.items():
            if key.endswith("relative_position_index") and key.startswith(BACKBONE_PREFIX):
                name = _facexformer_block_prefix(key) + "attention.relative_position_bias.relative_position_index"
                if name in ours and not torch.equal(ours[name].flatten().long(), tensor.flatten().long()):
                    raise FaceCheckpointError(f"{source}: {key} differs from the window layout of the encoder")

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"swin": self.swin.config.to_dict(), "feature_dim": self.feature_dim}
        (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        atomic_save_safetensors(self.state_dict(), folder / "model.safetensors")

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, dtype: torch.dtype = torch.float32) -> "FaceEncoder":
        """A folder written by `save_pretrained`, or a FaceXFormer checkpoint file."""
        source = Path(source)
        if source.is_file():
            return cls.from_facexformer(source).to(dtype)
        if not (source / "config.json").is_file():
            raise FileNotFoundError(
                f"face encoder not found at {source}: give a FaceXFormer checkpoint file or a folder "
                "written by FaceEncoder.save_pretrained"
            )
        meta = json.loads((source / "config.json").read_text(encoding="utf-8"))
        swin_cfg = SwinConfig.from_dict(meta["swin"])
        encoder = cls(SwinModel(swin_cfg, add_pooling_layer=False), int(meta["feature_dim"]))
        encoder.load_state_dict(load_file(source / "model.safetensors"), strict=True)
        return encoder.to(dtype)


_BLOCK = re.compile(r"^backbone\.0\.(\d+)\.(\d+)\.")


def _facexformer_block_prefix(key: str) -> str:
    match = _BLOCK.match(key)
    stage = (int(match.group(1)) - 1) // 2
    return f"swin.encoder.layers.{stage}.blocks.{match.group(2)}."


_BLOCK_PARTS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.o_proj",
    "mlp.0": "mlp.fc1",
    "mlp.3": "mlp.fc2",
}


def _facexformer_to_ours(key: str, tensor: torch.Tensor) -> dict[str | None, torch.Tensor] | None:
    """Map one FaceXFormer key to encoder key(s); None when the key has no place in the encoder.

    torchvision `features` index k: 0 = patch embedding, odd = the blocks of stage (k-1)/2,
    even k > 0 = the patch merging after stage k/2 - 1 (transformers puts it in that stage).
    """
    if key.startswith(("linear_c.", "linear_fuse.")):
        return {key: tensor}
    if key.startswith(BACKBONE_NORM_PREFIX):
        return {"swin.layernorm." + key[len(BACKBONE_NORM_PREFIX) :]: tensor}
    if not key.startswith(BACKBONE_PREFIX):
        return None
    parts = key[len(BACKBONE_PREFIX) :].split(".")
    index = int(parts[0])
    if index == 0:
        sub = {"0": "embeddings.patch_embeddings.projection", "2": "embeddings.norm"}.get(parts[1])
        return None if sub is None else {f"swin.{sub}.{parts[2]}": tensor}
    if index % 2 == 0:
        stage = index // 2 - 1
        rest = ".".join(parts[1:])
        if not rest.startswith(("reduction.", "norm.")):
            return None
        return {f"swin.encoder.layers.{stage}.downsample.{rest}": tensor}
    prefix = _facexformer_block_prefix(key)
    inner = ".".join(parts[2:])  # e.g. attn.qkv.weight
    module, _, leaf = inner.rpartition(".")
    if module == "attn.qkv":
        q, k, v = tensor.chunk(3, dim=0)  # torchvision's fused projection is q, k, v in that order
        return {f"{prefix}attention.{n}_proj.{leaf}": t for n, t in zip("qkv", (q, k, v))}
    if inner == "attn.relative_position_index":
        return {None: tensor}
    if inner == "attn.relative_position_bias_table":
        return {f"{prefix}attention.relative_position_bias.relative_position_bias_table": tensor}
    if module in _BLOCK_PARTS:
        return {f"{prefix}{_BLOCK_PARTS[module]}.{leaf}": tensor}
    return None


class FaceBranch(nn.Module):
    """Shapes: B batch, F frames, D face feature width, Q face tokens (4), D_lm LM width."""

    def __init__(self, cfg: FaceConfig, encoder: FaceEncoder, *, lm_width: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        dim = encoder.feature_dim
        self.queries = nn.Parameter(torch.randn(1, cfg.num_tokens, dim) * 0.02)
        self.temporal = nn.MultiheadAttention(dim, cfg.num_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, cfg.mlp_hidden), nn.GELU(), nn.Linear(cfg.mlp_hidden, lm_width))

    def encode(self, face_pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, F, 3, 224, 224] ImageNet-normalised -> [B, F, D] per-frame face vectors."""
        batch, frames = face_pixel_values.shape[:2]
        with encoder_context(self.encoder):
            vectors = self.encoder.frame_features(face_pixel_values.flatten(0, 1))  # [B*F, D]
        return vectors.reshape(batch, frames, -1)

    def forward(self, frame_vectors: torch.Tensor) -> torch.Tensor:
        """[B, F, D] -> [B, Q, D_lm] face tokens."""
        frame_vectors = frame_vectors.to(self.queries.dtype)
        queries = self.queries.expand(frame_vectors.shape[0], -1, -1)  # [B, Q, D]
        attended, _ = self.temporal(queries, frame_vectors, frame_vectors, need_weights=False)  # [B, Q, D]
        return self.mlp(attended)  # [B, Q, D_lm]


def build_face_encoder(cfg: FaceConfig, *, pretrained: bool, dtype: torch.dtype = torch.float32) -> FaceEncoder:
    """The FaceXFormer encoder from a checkpoint or folder, or random from the embedded Swin architecture."""
    if pretrained and cfg.encoder:
        return FaceEncoder.from_pretrained(cfg.encoder, dtype=dtype)
    return FaceEncoder.from_config(cfg)
