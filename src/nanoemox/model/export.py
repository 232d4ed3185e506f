"""Standard exports of the language part: a PEFT LoRA adapter and a merged plain Qwen2 folder.

    export_language("runs/p2e/phases/04_p3_instruct/model", "exports/nanoemox")

writes
    OUT/lora/              adapter_config.json + adapter_model.safetensors (PEFT's own
                           `save_pretrained`), base_model_name_or_path = the language
                           base the model was built on (a hub id, or a folder path)
    OUT/language_merged/   config.json + model.safetensors of a Qwen2ForCausalLM with the
                           LoRA merged in, and the model's tokenizer (placeholders included)
    OUT/export.json        what was exported from where

    from peft import PeftModel
    from transformers import Qwen2ForCausalLM
    lm = PeftModel.from_pretrained(Qwen2ForCausalLM.from_pretrained(base), "OUT/lora")
    merged = Qwen2ForCausalLM.from_pretrained("OUT/language_merged")

Both give the logits of the model's language part on token ids. The multimodal parts
(encoders, Q-Formers, adapters, fusion) exist only in the model folder format; a text-
only prompt through these exports is the language model without its modality tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from nanoemox.model.build import load_model
from nanoemox.model.language import build_language_model
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.utils import atomic_write_json


def _peft_language(model) -> Any:
    """A PeftModel over a fresh copy of the base language model, holding `model`'s LoRA weights."""
    config = model.config
    vocab = model.language.get_input_embeddings().num_embeddings
    base = build_language_model(config.language, pretrained=True, vocab_size=vocab)
    lora = config.lora
    peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, peft_config)
    # Injected adapters name their weights from the LM itself; a PeftModel wraps it as base_model.model.
    weights = {f"base_model.model.{k}": v for k, v in get_peft_model_state_dict(model.language).items()}
    result = set_peft_model_state_dict(peft_model, weights)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"LoRA weights do not fit the base language model: unexpected {unexpected[:5]}")
    _check_base(model, base)
    return peft_model.eval()


def _check_base(model, base) -> None:
    """The base weights must be the ones the model was trained on (same reference, same values)."""
    ours = {k.replace(".base_layer.", "."): v for k, v in model.language.state_dict().items() if "lora_" not in k}
    theirs = base.state_dict()
    for key in ("model.embed_tokens.weight", "model.norm.weight"):
        if key in ours and not torch.equal(ours[key].float(), theirs[key].float()):
            raise ValueError(f"the language base {model.config.language.model} differs from the model's own "
                             f"weights ({key}); export from the model folder the base belongs to")


def export_language(model_dir: str | os.PathLike, out: str | os.PathLike) -> dict[str, str]:
    """Write OUT/lora and OUT/language_merged (see the module docstring); returns their paths."""
    model_dir, out = Path(model_dir).resolve(), Path(out).resolve()
    model = load_model(model_dir)
    peft_model = _peft_language(model)
    base = str(model.config.language.model)
    lora_dir, merged_dir = out / "lora", out / "language_merged"
    peft_model.save_pretrained(lora_dir)
    # PEFT records the base it was given; point it at the reference users load.
    adapter_config = lora_dir / "adapter_config.json"
    data = json.loads(adapter_config.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = base
    atomic_write_json(data, adapter_config)
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(merged_dir)
    NanoEmoXProcessor.from_pretrained(model_dir).tokenizer.save_pretrained(merged_dir)
    info = {"model": str(model_dir), "base": base, "lora": str(lora_dir), "language_merged": str(merged_dir),
            "lora_r": model.config.lora.r, "lora_alpha": model.config.lora.alpha}
    atomic_write_json(info, out / "export.json")
    return info
