"""`nanoemox export`: a standard PEFT adapter and a merged Qwen2 folder with the model's logits."""

from __future__ import annotations

import json

import torch
from peft import PeftModel
from transformers import Qwen2ForCausalLM

from nanoemox.cli import main
from nanoemox.model import NanoEmoX
from nanoemox.processor import NanoEmoXProcessor


def test_export_gives_the_language_logits(model_dir, tmp_path, capsys):
    model = NanoEmoX.from_pretrained(model_dir)
    with torch.no_grad():  # a trained-looking LoRA: B is zero at initialisation
        for name, p in model.language.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.05)
    trained = tmp_path / "trained"
    model.save_pretrained(trained, processor=NanoEmoXProcessor.from_pretrained(model_dir))
    assert main(["export", "--model", str(trained), "--out", str(tmp_path / "exp")]) == 0, capsys.readouterr()
    lora = tmp_path / "exp" / "lora"
    assert {p.name for p in lora.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    base = json.loads((lora / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str((model_dir / "language").resolve())  # the base the model was built on

    ids = torch.randint(0, 200, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = NanoEmoX.from_pretrained(trained).language(input_ids=ids).logits
        plain = Qwen2ForCausalLM.from_pretrained(base)(input_ids=ids).logits
        peft = PeftModel.from_pretrained(Qwen2ForCausalLM.from_pretrained(base), lora).eval()(input_ids=ids).logits
        merged = Qwen2ForCausalLM.from_pretrained(tmp_path / "exp" / "language_merged")(input_ids=ids).logits
    assert (ours - plain).abs().max() > 1e-3  # the LoRA changes the logits, so equality below means something
    assert torch.allclose(peft, ours, atol=1e-5, rtol=1e-5)
    assert torch.allclose(merged, ours, atol=1e-4, rtol=1e-4)
    assert (tmp_path / "exp" / "language_merged" / "tokenizer_config.json").is_file()


def test_export_of_a_non_model_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a model folder" in capsys.readouterr().err
