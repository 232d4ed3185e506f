"""The language part: Qwen2 causal LM, its LoRA adapters (PEFT) and its plain weights."""

from __future__ import annotations

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from transformers import Qwen2Config, Qwen2ForCausalLM

from nanoemox.config import LanguageConfig, LoRAConfig

LORA_MARKER = "lora_"


def build_language_model(
    cfg: LanguageConfig, *, pretrained: bool, vocab_size: int | None = None, dtype: torch.dtype = torch.float32
) -> Qwen2ForCausalLM:
    """Qwen2 from a hub id / local folder, or random from the embedded architecture.

    `vocab_size` (the tokenizer's length, placeholders included) grows the embeddings when
    needed; placeholder rows are never read (their positions receive modality features)
    and never generated (their logits are suppressed), so their values do not matter.
    """
    if pretrained and cfg.model:
        lm = Qwen2ForCausalLM.from_pretrained(cfg.model, dtype=dtype)
    else:
        lm = Qwen2ForCausalLM(Qwen2Config(**cfg.model_config))
    if vocab_size is not None and vocab_size > lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(vocab_size, mean_resizing=False)
    return lm


def apply_lora(lm: Qwen2ForCausalLM, cfg: LoRAConfig) -> Qwen2ForCausalLM:
    """Insert LoRA layers (r, alpha, dropout on q/k/v/o/gate/up/down) in place; B starts at zero."""
    peft_cfg = PeftLoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules), bias="none"
    )
    return inject_adapter_in_model(peft_cfg, lm)


def base_state_dict(lm: Qwen2ForCausalLM) -> dict[str, torch.Tensor]:
    """The LM's own weights, as a plain Qwen2 checkpoint names them (LoRA removed, not merged)."""
    return {
        key.replace(".base_layer.", "."): value
        for key, value in lm.state_dict().items()
        if LORA_MARKER not in key
    }
