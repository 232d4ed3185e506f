"""How each stand-in backbone learns (`nanoemox standins build` runs these on the stand-ins' own corpus).

The paper preset starts from pretrained CLIP, HuBERT, FaceXFormer and Qwen2.5. The tiny
preset has no such weights, so its frozen encoders would only hold random projections
and its language model would know no words. The stand-in build gives each backbone a
stand-in for that pre-training, once; the package ships the result.

What each stand-in sees, exactly:

- vision (the CLIP stand-in) and face (the FaceXFormer stand-in): single frames (whole
  frames for vision, face crops for face) of the training clips of a SynthAffect corpus
  of the build's own seed, never the demo's, each labelled with the expression the face
  *shows* (`extra.shown.face`): the clip's emotion when the face carries it, "happy" for
  the polite smile of a conflict clip, "neutral" otherwise. This is supervised
  expression recognition, as FaceXFormer (trained on expression datasets) brings it.
- speech (the HuBERT stand-in): one two-second window per training clip of that corpus,
  labelled with the prosody the voice *shows* (`extra.shown.voice`), as a speech encoder
  pretrained on emotional speech would know it.
- language (the Qwen-Instruct stand-in, `nanoemox.standins.language`): everyday sentences
  and sentences about feelings written by that module from its own word lists and the
  general emotion vocabulary, generic instruction turns that are none of the six tasks
  (alone, and inside the model's prompt framing, with the placeholders holding no
  media), and copying of random token strings over its whole vocabulary. It reads no
  SynthAffect text (no subtitle, dialogue line, remark or answer of any split), no
  Nano-EmoX task instruction or answer format, no label and no media.

The encoder stand-ins see neither the task instructions nor which modality carries a
clip's emotion (a clip's frames and its audio window are labelled separately, each by
what that modality shows). Afterwards the backbones are frozen, as in P2E: learning the
six tasks is P2E's job. The encoders' linear heads are kept (`stand_in_heads.safetensors`)
so that the demo's diagnostics can report their accuracy on its dev clips.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nanoemox.data.manifest import Record
from nanoemox.data.synth import EMOTIONS, INTENTS
from nanoemox.standins.language import framed_samples, language_corpus, language_texts, token_coverage
from nanoemox.model import NanoEmoX
from nanoemox.reproducible import seed_all
from nanoemox.tasks import EMOTION_TASK, INTENT_TASK, TASKS, get_task
from nanoemox.train.optim import sequence_loss

logger = logging.getLogger(__name__)
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
Progress = Callable[[str, int, int], None]


@dataclass
class PretrainConfig:
    """What the stand-ins read and how long: the defaults are those of `nanoemox standins build`."""

    frames: tuple[int, ...] = (2, 3, 4, 5)  # which of the 8 sampled frames (the expression's peak)
    windows: tuple[int, ...] = (3,)  # which of the 8 audio windows
    vision_epochs: int = 6
    speech_epochs: int = 12
    face_epochs: int = 8
    lm_steps: int = 5000  # language stand-in: task-agnostic texts (nanoemox.standins.language)
    # Copying and instruction turns weigh more than in the first builds: 2,000 steps with shares
    # sentences 0.2, feelings 0.2, instructions 0.2, copying 0.1, framed 0.3 answered only 0.27 of
    # held-out generic instructions exactly (sentences of the right form with other words).
    lm_mix: tuple[tuple[str, float], ...] = (("sentences", 0.15), ("feelings", 0.15), ("instructions", 0.25),
                                             ("copying", 0.2), ("framed", 0.25))
    lm_sentences: int = 3000  # everyday sentences to draw from
    lm_copies: int = 12000  # copying samples over the whole vocabulary (nanoemox.standins.language)
    lm_framed: int = 6000  # generic requests inside the whole prompt framing (nanoemox.standins.language)
    lm_feelings: int = 3000  # generic sentences about feelings to draw from
    lm_instructions: int = 6000  # generic instruction turns to draw from
    batch_size: int = 32
    lr: float = 1e-3  # vision and face
    speech_lr: float = 3e-3
    lm_lr: float = 3e-3
    workers: int = 2
    seed: int = 0


class _ClipMedia(Dataset):
    def __init__(self, clips: list[tuple[str, str]], processor, root: str):
        self.clips, self.processor, self.root = clips, processor, root

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        media = self.processor.load_media(video=Path(self.root) / self.clips[i][1])
        return media.pixel_values, media.face_pixel_values, media.audio_values


def _unique_clips(records: Sequence[Record], split: str) -> list[tuple[Record, str]]:
    seen: dict[str, Record] = {}
    for r in records:
        if r.split == split and r.media.get("video") and r.media["video"] not in seen:
            seen[r.media["video"]] = r
    return [(r, path) for path, r in seen.items()]


def decode_training_clips(records, processor, root: str, cfg: PretrainConfig, labels: list[str], progress=None,
                          split: str = "train"):
    """Decode each clip of `split` once; keep the chosen frames and windows with their shown labels."""
    clips = _unique_clips(records, split)
    loader = DataLoader(_ClipMedia([(r.id, p) for r, p in clips], processor, root), batch_size=None,
                        num_workers=cfg.workers)
    frames, faces, audio, face_y, voice_y = [], [], [], [], []
    for i, (pix, face, wav) in enumerate(loader):
        record = clips[i][0]
        shown = record.extra.get("shown", {})
        frames.append(pix[list(cfg.frames)].half())
        faces.append(face[list(cfg.frames)].half())
        audio.append(wav[list(cfg.windows)].half())
        face_y.append(labels.index(shown.get("face", "neutral")))
        voice_y.append(labels.index(shown.get("voice", "neutral")))
        if progress:
            progress("decode", i + 1, len(clips))
    nf, nw = len(cfg.frames), len(cfg.windows)
    return {
        "frames": torch.cat(frames), "faces": torch.cat(faces), "audio": torch.cat(audio),
        "face_labels": torch.tensor(face_y).repeat_interleave(nf),
        "voice_labels": torch.tensor(voice_y).repeat_interleave(nw),
    }


def _fit(name: str, encode: Callable[[torch.Tensor], torch.Tensor], params: list[nn.Parameter], width: int,
         inputs: torch.Tensor, labels: torch.Tensor, n_classes: int, epochs: int, lr: float, cfg: PretrainConfig,
         progress: Progress | None) -> tuple[float, nn.Linear]:
    """Train `encode` + a linear head with cross-entropy; return the last epoch's accuracy and the head."""
    head = nn.Linear(width, n_classes)
    optimizer = torch.optim.AdamW(params + list(head.parameters()), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(cfg.seed)
    accuracy = 0.0
    steps = epochs * ((len(inputs) + cfg.batch_size - 1) // cfg.batch_size)
    done = 0
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        correct = 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            logits = head(encode(inputs[idx].float()))
            loss = nn.functional.cross_entropy(logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(-1) == labels[idx]).sum())
            done += 1
            if progress:
                progress(name, done, steps)
        accuracy = correct / len(inputs)
    logger.info("pre-training %s: train accuracy %.3f in the last epoch", name, accuracy)
    return accuracy, head


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


# Each encoder stand-in: the decoded inputs it reads and the labels it learns (keys of decode_training_clips).
ENCODER_DATA = {"vision": ("frames", "face_labels"), "speech": ("audio", "voice_labels"), "face": ("faces", "face_labels")}



def encoder_vector(model: NanoEmoX, name: str, x: torch.Tensor) -> torch.Tensor:
    """The per-input vector each branch reads from its encoder, which the stand-in's head classifies.

    vision: CLS of hidden_states[feature_layer] ([N, 3, H, W] -> [N, D]); speech: mean of the
    last layers over time ([N, samples] -> [N, D]); face: the pooled frame feature.
    """
    if name == "vision":
        scene = model.scene
        return scene.encoder(pixel_values=x, output_hidden_states=True).hidden_states[scene.cfg.feature_layer][:, 0]
    if name == "speech":
        speech = model.speech
        hidden = speech.encoder(input_values=x, output_hidden_states=True).hidden_states
        return torch.stack(hidden[-speech.cfg.pool_last_layers:]).mean(0).mean(1)
    return model.face.encoder.frame_features(x)


def pretrain_encoders(model: NanoEmoX, data: dict[str, torch.Tensor], labels: list[str], cfg: PretrainConfig,
                      progress: Progress | None = None) -> tuple[dict[str, float], dict[str, nn.Linear]]:
    """Supervised expression/prosody pre-training of the tiny vision, speech and face encoders.

    Returns each stand-in's last-epoch training accuracy and its linear head. numpy's global
    generator is seeded too: transformers draws HuBERT's SpecAugment masks from it.
    """
    seed_all(cfg.seed)
    encoders = {"vision": (model.scene.encoder, model.scene.width, cfg.vision_epochs, cfg.lr),
                "speech": (model.speech.encoder, model.speech.width, cfg.speech_epochs, cfg.speech_lr),
                "face": (model.face.encoder, model.face.encoder.feature_dim, cfg.face_epochs, cfg.lr)}
    out: dict[str, float] = {}
    heads: dict[str, nn.Linear] = {}
    for name, (encoder, width, epochs, lr) in encoders.items():
        if epochs <= 0:
            continue
        encoder.train()
        inputs, targets = ENCODER_DATA[name]
        out[f"{name}_accuracy"], heads[name] = _fit(
            name, lambda x, name=name: encoder_vector(model, name, x), _trainable(encoder), width, data[inputs],
            data[targets], len(labels), epochs, lr, cfg, progress)
    for encoder in model.encoders().values():
        encoder.requires_grad_(False)
        encoder.eval()
    return out, heads


@torch.no_grad()
def head_accuracy(model: NanoEmoX, heads: dict[str, torch.Tensor], data: dict[str, torch.Tensor],
                  batch: int = 64) -> dict[str, float]:
    """Accuracy of the stand-ins' heads (a `{name}.weight` / `{name}.bias` state) on decoded clips."""
    out = {}
    for name, (inputs, targets) in ENCODER_DATA.items():
        if f"{name}.weight" not in heads:
            continue
        x = data[inputs]
        logits = torch.cat([encoder_vector(model, name, x[i:i + batch].float()) for i in range(0, len(x), batch)])
        logits = logits @ heads[f"{name}.weight"].T + heads[f"{name}.bias"]
        out[name] = float((logits.argmax(-1) == data[targets]).float().mean())
    return out


def _draw(rng: random.Random, samples: list, k: int) -> list:
    return rng.sample(samples, k) if k <= len(samples) else rng.choices(samples, k=k)


def task_tokens(processor, record: Record) -> list[int]:
    encoded = processor.encode_text(record.task, record.text, record.history, record.candidates, record.target)
    placeholders = set(processor.placeholder_ids.values())
    return [t for t in encoded.input_ids if t not in placeholders]


def stand_in_texts(cfg: PretrainConfig) -> dict[str, list]:
    """The texts the language stand-in reads (and its tokenizer is fitted to); no corpus needed."""
    return language_texts(seed=cfg.seed, sentences=cfg.lm_sentences, feelings=cfg.lm_feelings,
                          instructions=cfg.lm_instructions)


def language_samples(processor, cfg: PretrainConfig) -> dict[str, list]:
    """Every sample the language stand-in draws from, tokenized: its texts, framed requests, copying."""
    corpus = language_corpus(processor.tokenizer, stand_in_texts(cfg), copies=cfg.lm_copies, seed=cfg.seed)
    if cfg.lm_framed:
        corpus["framed"] = framed_samples(processor, random.Random(cfg.seed + 1), cfg.lm_framed)
    return corpus


def tokenizer_words(records: Sequence[Record]) -> list[str]:
    """Every distinct English word of the training split's texts: subtitles, dialogue, instructions, answers.

    The stand-ins' tokenizer needs the corpus's words as a real LM's vocabulary (151k tokens for
    Qwen2.5) already holds every common English word. Words are runs of letters (with
    inner apostrophes and hyphens), sorted: the list holds no sentence, no punctuation
    and no markup, so no task identifier (`[Recognition]`) or answer tag (`<think>`) and
    nothing of the order of the texts they come from.
    """
    texts = []
    for r in records:
        if r.split == "train":
            texts += [r.text or ""] + [t.get("text") or "" for t in r.history or []]
            if r.target is not None:
                texts.append(get_task(r.task).format_target(r.target))
    for name, task in TASKS.items():
        candidates = {EMOTION_TASK: list(EMOTIONS), INTENT_TASK: list(INTENTS)}.get(name)  # the corpus's label sets
        texts += [task.instruction(variant=i, candidates=candidates).replace(task.identifier, " ")
                  for i in range(len(task.templates))]
    return sorted({word for text in texts for word in _WORD.findall(text)})


def pretrain_language(model: NanoEmoX, processor, records: Sequence[Record], cfg: PretrainConfig,
                      progress: Progress | None = None) -> dict[str, float]:
    """Train the tiny LM on task-agnostic texts (`nanoemox.standins.language`), all its weights but LoRA.

    Each batch mixes everyday sentences, sentences about feelings, generic instruction
    turns (alone and in the prompt framing) and copying in the shares `lm_mix`
    (`language_samples`). The LM never sees SynthAffect text, a Nano-EmoX task
    instruction, an answer format or a record's answer here; `records` only measure how
    much of the training prompts' tokens the stand-in has read. Returns the mean
    loss of the last 20 steps and that share of read tokens.
    """
    seed_all(cfg.seed)
    rng = random.Random(cfg.seed)
    corpus = language_samples(processor, cfg)
    # How much of what P2E will train on (prompts and answers, placeholders aside) is made of
    # tokens the stand-in has read; the rest are sub-word pieces with untrained embeddings.
    task_texts = [task_tokens(processor, r) for r in records if r.split == "train" and r.target is not None]
    coverage = token_coverage(corpus, task_texts)
    logger.info("language stand-in: %.1f%% of the training prompts' and answers' tokens are ones it has read",
                100 * coverage)
    shares = dict(cfg.lm_mix)
    counts = {k: round(cfg.batch_size * shares.get(k, 0.0) / sum(shares.values())) for k in corpus}
    counts["sentences"] += cfg.batch_size - sum(counts.values())
    lm = model.language
    params = [p for n, p in lm.named_parameters() if "lora_" not in n]
    for p in params:
        p.requires_grad_(True)
    lm.train()
    optimizer = torch.optim.AdamW(params, lr=cfg.lm_lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lm_lr, total_steps=max(cfg.lm_steps, 1),
                                                    pct_start=0.1)
    pad, head, trunk = processor.pad_token_id, lm.get_output_embeddings(), lm.get_decoder()
    losses: list[float] = []
    for _ in range(cfg.lm_steps):
        chunk = [s for kind, k in counts.items() for s in _draw(rng, corpus[kind], k)]
        ids = nn.utils.rnn.pad_sequence([t for t, _ in chunk], batch_first=True, padding_value=pad)
        labels = nn.utils.rnn.pad_sequence([a for _, a in chunk], batch_first=True, padding_value=-100)
        mask = nn.utils.rnn.pad_sequence([torch.ones_like(t) for t, _ in chunk], batch_first=True)
        hidden = trunk(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = sequence_loss(hidden, labels, head=head)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if progress:
            progress("language", len(losses), cfg.lm_steps)
    for p in lm.parameters():
        p.requires_grad_(False)
    lm.eval()
    final = sum(losses[-20:]) / max(1, len(losses[-20:])) if losses else float("nan")
    logger.info("pre-training language: final loss %.3f", final)
    return {"language_loss": final, "language_token_coverage": coverage}
