"""FaceXFormer checkpoint loading, checked against the key list of the released checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nanoemox.config import paper
from nanoemox.model.face import FaceCheckpointError, FaceEncoder

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "facexformer_checkpoint_keys.json"


def _fixture_entries():
    if not FIXTURE.is_file():
        pytest.skip(f"fixture {FIXTURE} not available")
    return json.loads(FIXTURE.read_text())["entries"]


@pytest.fixture(scope="module")
def fake_checkpoint(tmp_path_factory):
    """A checkpoint with every key and shape of the released one and random values."""
    torch.manual_seed(0)
    entries = _fixture_entries()
    index = None
    state = {}
    for entry in entries:
        if entry["key"].endswith("relative_position_index"):
            if index is None:
                ref = FaceEncoder.from_config(paper().face)
                index = next(b for n, b in ref.named_buffers() if n.endswith("relative_position_index")).long()
            assert tuple(entry["shape"]) == tuple(index.shape)
            state[entry["key"]] = index.clone()
        else:
            state[entry["key"]] = torch.randn(entry["shape"]) * 0.02
    path = tmp_path_factory.mktemp("fx") / "facexformer.pt"
    torch.save({"state_dict_backbone": state}, path)
    return path, state


def test_every_backbone_key_is_loaded(fake_checkpoint):
    path, state = fake_checkpoint
    encoder = FaceEncoder.from_facexformer(path)
    own = encoder.state_dict()
    entries = _fixture_entries()
    backbone = [e for e in entries if e["key"].startswith(("backbone.", "linear_c.", "linear_fuse."))]
    used = 0
    for entry in backbone:
        key = entry["key"]
        if key.endswith("relative_position_index"):
            continue
        src = state[key]
        if key.endswith("attn.qkv.weight") or key.endswith("attn.qkv.bias"):
            # torchvision's fused projection splits into q, k, v in that order.
            stage_block = key[len("backbone.0."):].split(".")
            stage, block = (int(stage_block[0]) - 1) // 2, stage_block[1]
            leaf = key.rsplit(".", 1)[1]
            for part, chunk in zip("qkv", src.chunk(3)):
                assert torch.equal(own[f"swin.encoder.layers.{stage}.blocks.{block}.attention.{part}_proj.{leaf}"], chunk)
            used += 1
            continue
        matches = [k for k, v in own.items() if v.shape == src.shape and torch.equal(v, src)]
        assert matches, f"{key} ({entry.get('torchvision_swin_b_key')}) was not loaded"
        used += 1
    # Every parameter of the encoder came from the checkpoint (random init would not match).
    assert used == len([e for e in backbone if not e["key"].endswith("relative_position_index")])
    n_params = sum(1 for _ in encoder.named_parameters())
    n_qkv = sum(1 for e in backbone if ".attn.qkv." in e["key"])
    assert n_params == used - n_qkv + 3 * n_qkv


def test_known_mappings(fake_checkpoint):
    path, state = fake_checkpoint
    own = FaceEncoder.from_facexformer(path).state_dict()
    pairs = {
        "backbone.0.0.0.weight": "swin.embeddings.patch_embeddings.projection.weight",
        "backbone.0.0.2.bias": "swin.embeddings.norm.bias",
        "backbone.0.2.reduction.weight": "swin.encoder.layers.0.downsample.reduction.weight",
        "backbone.0.6.norm.weight": "swin.encoder.layers.2.downsample.norm.weight",
        "backbone.0.5.17.mlp.3.weight": "swin.encoder.layers.2.blocks.17.mlp.fc2.weight",
        "backbone.0.7.1.attn.proj.bias": "swin.encoder.layers.3.blocks.1.attention.o_proj.bias",
        "backbone.1.weight": "swin.layernorm.weight",
        "linear_fuse.weight": "linear_fuse.weight",
        "linear_c.3.proj.weight": "linear_c.3.proj.weight",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(own[ours], state[theirs]), theirs


def test_frame_features_shape(fake_checkpoint):
    encoder = FaceEncoder.from_facexformer(fake_checkpoint[0]).eval()
    stages = encoder.stage_features(torch.randn(1, 3, 224, 224))
    assert [tuple(s.shape[1:]) for s in stages] == [(128, 56, 56), (256, 28, 28), (512, 14, 14), (1024, 7, 7)]
    with torch.no_grad():
        out = encoder.frame_features(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 256) and torch.isfinite(out).all()


def test_missing_backbone_key_fails_loudly(fake_checkpoint, tmp_path):
    _, state = fake_checkpoint
    broken = dict(state)
    broken.pop("backbone.0.5.3.norm2.weight")
    torch.save({"state_dict_backbone": broken}, tmp_path / "missing.pt")
    with pytest.raises(FaceCheckpointError, match="missing weights .*layers.2.blocks.3.layernorm_after.weight"):
        FaceEncoder.from_facexformer(tmp_path / "missing.pt")


def test_unexpected_backbone_key_fails_loudly(fake_checkpoint, tmp_path):
    _, state = fake_checkpoint
    extra = dict(state)
    extra["backbone.0.1.0.attn.logit_scale"] = torch.zeros(4, 1, 1)
    torch.save({"state_dict_backbone": extra}, tmp_path / "extra.pt")
    with pytest.raises(FaceCheckpointError, match="unexpected keys .*logit_scale"):
        FaceEncoder.from_facexformer(tmp_path / "extra.pt")


def test_decoder_keys_are_ignored_and_bad_files_named(fake_checkpoint, tmp_path):
    _, state = fake_checkpoint
    assert any(k.startswith("face_decoder.") for k in state)  # present in the fixture, ignored on load
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FaceCheckpointError, match="garbage.pt"):
        FaceEncoder.from_facexformer(tmp_path / "garbage.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(FaceCheckpointError, match="state_dict_backbone"):
        FaceEncoder.from_facexformer(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        FaceEncoder.from_facexformer(tmp_path / "absent.pt")
