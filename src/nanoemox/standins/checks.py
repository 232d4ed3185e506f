"""Held-out checks of a language stand-in: generic instructions, and reading a soft prompt (the oracle test).

Before stand-ins ship, the language model must show on text it did not read that it
(1) follows generic instructions exactly (`instruction_accuracy`), and (2) can be
steered by vectors in the placeholder positions as P2E's phase 1 steers Qwen2.5
(`oracle_reading`): the modality tokens are replaced by an *oracle*, trainable vectors
per MER label plus fresh noise on every draw, and only those vectors (and, in some
variants, LoRA) train on the MER prompt. If the frozen LM cannot turn such vectors into
the right label, no adapter could teach it to read real features either.

Variants of `oracle_reading` (`mode`):
- "placeholders": all placeholder positions hold a trainable vector per label; LM frozen, no LoRA (phase 1);
- "fused": only the fused token holds one (the other positions zero); LM frozen, no LoRA;
- "fused+lora": the fused token trainable, and LoRA; the rest zero;
- "fixed+lora": the fused token a fixed random vector per label, only LoRA trains.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from nanoemox.config import LoRAConfig
from nanoemox.data.synth import EMOTIONS
from nanoemox.model.language import apply_lora
from nanoemox.standins.language import Sample, language_texts, turn
from nanoemox.tasks import EMOTION_TASK

MODES = ("placeholders", "fused", "fused+lora", "fixed+lora")


def _mer_batch(processor, labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The MER prompt (no subtitle) answered with each label: ids [B, T] and labels [B, T] (-100 off the answer)."""
    encoded = [processor.encode_text(EMOTION_TASK, None, None, list(EMOTIONS), label) for label in labels]
    ids = nn.utils.rnn.pad_sequence([torch.tensor(e.input_ids) for e in encoded], batch_first=True,
                                    padding_value=processor.pad_token_id)
    answer = nn.utils.rnn.pad_sequence([torch.tensor(e.labels) for e in encoded], batch_first=True,
                                       padding_value=-100)
    return ids, answer


def oracle_reading(lm, processor, mode: str = "placeholders", steps: int = 300, batch: int = 8, lr: float = 3e-3,
                   draws: int = 200, noise: float = 0.5, lora: LoRAConfig | None = None, seed: int = 0) -> dict:
    """Train the oracle for `steps` on the MER prompt; return exact-answer accuracy on `draws` new draws.

    `lm` (a Qwen2ForCausalLM) is left untouched: LoRA, when the mode has it, goes into a copy.
    Noise is Gaussian with `noise` times the std of the LM's token embeddings, drawn anew
    for every sample. Answers are scored teacher-forced: every answer token (the label's
    tokens and the end of text) must be the argmax.
    """
    if mode not in MODES:
        raise ValueError(f"unknown oracle mode {mode!r}; choose one of {MODES}")
    generator = torch.Generator().manual_seed(seed)
    lm = copy.deepcopy(lm)
    lm.requires_grad_(False)
    params: list[nn.Parameter] = []
    if mode.endswith("+lora"):
        apply_lora(lm, lora or LoRAConfig(r=16, alpha=32, dropout=0.05))
        params += [p.requires_grad_(True) for n, p in lm.named_parameters() if "lora_" in n]
    embed = lm.get_input_embeddings()
    scale = float(embed.weight.std())
    ids = processor.placeholder_ids
    fused_id = ids["fusion"]
    slots = sum(processor.token_counts.values())
    width = embed.embedding_dim
    vectors = torch.randn(len(EMOTIONS), slots if mode == "placeholders" else 1, width, generator=generator) * scale
    if mode != "fixed+lora":
        vectors = nn.Parameter(vectors)
        params.append(vectors)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def forward(label_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, answer = _mer_batch(processor, [EMOTIONS[i] for i in label_idx])
        x = embed(tokens)  # [B, T, D]
        placeholders = torch.isin(tokens, torch.tensor(list(ids.values())))
        soft = vectors[label_idx] + noise * scale * torch.randn(len(label_idx), vectors.shape[1], width,
                                                                generator=generator)  # [B, S, D]
        if mode == "placeholders":
            x = x.masked_scatter(placeholders.unsqueeze(-1), soft.reshape(-1, width).to(x.dtype))
        else:
            x = x.masked_fill(placeholders.unsqueeze(-1), 0.0)
            x = x.masked_scatter((tokens == fused_id).unsqueeze(-1), soft.reshape(-1, width).to(x.dtype))
        # Right padding only (after the answer), so causal attention needs no mask.
        return lm(inputs_embeds=x).logits, answer

    lm.train()
    losses = []
    for _ in range(steps):
        logits, answer = forward(torch.randint(len(EMOTIONS), (batch,), generator=generator))
        loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), answer[:, 1:].flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    lm.eval()
    hits = 0
    with torch.no_grad():
        for start in range(0, draws, 50):
            logits, answer = forward(torch.randint(len(EMOTIONS), (min(50, draws - start),), generator=generator))
            predicted, wanted = logits[:, :-1].argmax(-1), answer[:, 1:]
            scored = wanted != -100
            hits += int(((predicted == wanted) | ~scored).all(-1).sum())
    return {"mode": mode, "steps": steps, "accuracy": hits / draws, "draws": draws,
            "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:]))}


def held_out_turns(seed: int, n: int, read: set[str]) -> list[tuple[str, str]]:
    """Generic instruction turns over sentences written with another seed, none of whose requests was read."""
    texts = language_texts(seed=seed, sentences=600, feelings=600, instructions=4 * n)
    return [(q, a) for q, a in texts["instructions"] if q not in read][:n]


@torch.no_grad()
def instruction_accuracy(lm, tokenizer, turns: Sequence[tuple[str, str]], batch: int = 32) -> dict:
    """Greedy answers to generic instruction turns; the share answered exactly (whitespace at the ends aside)."""
    lm.eval()
    samples: list[Sample] = [turn(tokenizer, q, a) for q, a in turns]
    hits, wrong = 0, []
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        prompts = [ids[labels == -100] for ids, labels in chunk]
        longest = max(len(p) for p in prompts)
        # left padding, so every prompt ends where generation starts
        ids = torch.stack([torch.cat([torch.full((longest - len(p),), tokenizer.pad_token_id), p]) for p in prompts])
        mask = torch.stack([torch.cat([torch.zeros(longest - len(p), dtype=torch.long), torch.ones_like(p)])
                            for p in prompts])
        budget = max(len(labels[labels != -100]) for _, labels in chunk) + 4
        out = lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=budget, do_sample=False,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        for (request, answer), row in zip(turns[start:start + batch], out[:, longest:]):
            text = tokenizer.decode(row, skip_special_tokens=True).strip()
            if text == answer.strip():
                hits += 1
            elif len(wrong) < 5:
                wrong.append({"request": request, "expected": answer, "answered": text})
    return {"accuracy": hits / max(1, len(turns)), "n": len(turns), "examples_wrong": wrong}

