"""`nanoemox info` and `nanoemox init-model` from the command line."""

from __future__ import annotations

import json

import torch

from nanoemox.cli import main
from nanoemox.model import NanoEmoX


def test_info_paper_json(capsys):
    assert main(["info", "--preset", "paper", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tokens"] == {"scene": 32, "speech": 32, "face": 4, "fusion": 1}
    assert set(info["branches"]) == {"scene", "speech", "face", "fusion", "language"}
    assert sum(info["branches"].values()) == info["total_params"]
    # About 2.2B as the paper states (CLIP-L 303M + HuBERT-L 315M + Swin-B 87M + Qwen2.5-1.5B 1544M + adapters).
    assert 2.1e9 < info["total_params"] < 2.4e9
    assert 300e6 < info["branches"]["speech"] < 340e6
    assert info["fusion_pairs"] == [[16, 12], [18, 16], [22, 22]]
    assert info["lora"]["r"] == 32 and info["lora"]["alpha"] == 16


def test_info_table(capsys):
    assert main(["info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "per parameter group" in out and "69 placeholders" in out


def test_init_model_writes_a_loadable_self_contained_folder(tmp_path):
    out = tmp_path / "tiny"
    assert main(["init-model", "--preset", "tiny", "--out", str(out), "--seed", "3"]) == 0
    for sub in ("config.json", "model.safetensors", "tokenizer", "scene_encoder", "speech_encoder", "face_encoder", "language"):
        assert (out / sub).exists(), sub
    model = NanoEmoX.from_pretrained(out)
    assert isinstance(model, NanoEmoX) and not model.training
    # Same seed, same weights: initialisation is reproducible.
    assert main(["init-model", "--preset", "tiny", "--out", str(tmp_path / "again"), "--seed", "3"]) == 0
    again = NanoEmoX.from_pretrained(tmp_path / "again")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
