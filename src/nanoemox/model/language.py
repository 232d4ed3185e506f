"""The language part: Qwen2 causal LM, its LoRA adapters (PEFT) and its plain weights."""

from __future__ import annotations

import logging

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from nanoemox.config import LanguageConfig, LoRAConfig

LORA_MARKER = "lora_"
# Token ids are all a checkpoint's generation config may pass on; decoding settings come
# from the caller only (see `plain_generation_config`).
_KEPT_GENERATION_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")
# Settings that would change an answer if inherited (reported when a checkpoint sets them).
_DECODING_FIELDS = ("do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "repetition_penalty",
                    "no_repeat_ngram_size", "num_beams", "length_penalty", "max_new_tokens", "max_length")

log = logging.getLogger(__name__)


def plain_generation_config(loaded: GenerationConfig | None) -> GenerationConfig:
    """A generation config holding only the special token ids of `loaded`.

    Qwen2.5-Instruct ships `do_sample`, temperature 0.7, top-p 0.8, top-k 20 and a
    repetition penalty of 1.05 in its `generation_config.json`, and `generate` fills
    every setting a call leaves unset from that file. Decoding here must be exactly
    what the caller asked for (plain argmax when greedy), so the inherited settings
    are dropped when the language model is built.
    """
    kept = {k: getattr(loaded, k, None) for k in _KEPT_GENERATION_FIELDS} if loaded is not None else {}
    if loaded is not None:
        dropped = {k: v for k, v in loaded.to_diff_dict().items() if k in _DECODING_FIELDS}
        if dropped:
            log.info("ignoring the checkpoint's generation settings %s; decoding uses only what is asked", dropped)
    return GenerationConfig(**{k: v for k, v in kept.items() if v is not None})


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
    lm.generation_config = plain_generation_config(lm.generation_config)
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
