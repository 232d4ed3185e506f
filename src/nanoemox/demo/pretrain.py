"""Short pre-training of the tiny preset's backbones on SynthAffect (tiny preset only).

The paper preset starts from pretrained CLIP, HuBERT, FaceXFormer and Qwen2.5. The tiny
preset has no such weights, so its frozen encoders would only hold random projections
and its language model would know no words. Before the P2E curriculum, the demo gives
each backbone a short stand-in for that pre-training, on the training split only:

- vision (the CLIP stand-in, and optionally the face encoder): classify the expression
  the face *shows* in single frames (`extra.shown.face`; neutral when the face is not
  a cue). This is what a pretrained vision tower brings: it can tell expressions apart.
- speech (the HuBERT stand-in): classify the prosody the voice *shows* in one two-second
  window (`extra.shown.voice`).
- language (the Qwen-Instruct stand-in): first reading (a subtitle alone, then the
  emotion its words show, `extra.shown.text`), then answering whole prompts of the
  training records without media (placeholders removed), loss on the answers.

The encoder stand-ins never see the clip's task labels or which modality carries the
cue; the language stand-in sees the training prompts and answers but no media; none of
them sees a dev/test record. After this step the backbones are frozen again, as in P2E.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nanoemox.data.manifest import Record
from nanoemox.model import NanoEmoX
from nanoemox.train.optim import sequence_loss

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class PretrainConfig:
    frames: tuple[int, ...] = (2, 3, 4, 5)  # which of the 8 sampled frames (the expression's peak)
    windows: tuple[int, ...] = (3,)  # which of the 8 audio windows
    vision_epochs: int = 2
    speech_epochs: int = 8
    face_epochs: int = 0  # the Swin face encoder is the slowest part on a CPU; off by default
    lm_reading_steps: int = 200  # language stage 1: subtitle -> the emotion its words show
    lm_steps: int = 800  # language stage 2: whole prompts of all tasks -> answers
    lm_reading_share: float = 0.5  # share of each stage-2 batch that keeps reading
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
        from pathlib import Path

        media = self.processor.load_media(video=Path(self.root) / self.clips[i][1])
        return media.pixel_values, media.face_pixel_values, media.audio_values


def _unique_clips(records: Sequence[Record]) -> list[tuple[Record, str]]:
    seen: dict[str, Record] = {}
    for r in records:
        if r.split == "train" and r.media.get("video") and r.media["video"] not in seen:
            seen[r.media["video"]] = r
    return [(r, path) for path, r in seen.items()]


def decode_training_clips(records, processor, root: str, cfg: PretrainConfig, labels: list[str], progress=None):
    """Decode each training clip once; keep the chosen frames and windows with their shown labels."""
    clips = _unique_clips(records)
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
         progress: Progress | None) -> float:
    """Train `encode` + a linear head with cross-entropy; return the last epoch's accuracy."""
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
    return accuracy


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def pretrain_encoders(model: NanoEmoX, data: dict[str, torch.Tensor], labels: list[str], cfg: PretrainConfig,
                      progress: Progress | None = None) -> dict[str, float]:
    """Supervised expression/prosody pre-training of the tiny vision, face and speech encoders."""
    torch.manual_seed(cfg.seed)
    scene, speech, face = model.scene, model.speech, model.face
    out: dict[str, float] = {}
    scene.encoder.train()

    def vision(x):  # the feature the scene branch reads: CLS of hidden_states[feature_layer]
        return scene.encoder(pixel_values=x, output_hidden_states=True).hidden_states[scene.cfg.feature_layer][:, 0]

    out["vision_accuracy"] = _fit("vision", vision, _trainable(scene.encoder), scene.width, data["frames"],
                                  data["face_labels"], len(labels), cfg.vision_epochs, cfg.lr, cfg, progress)
    speech.encoder.train()

    def voice(x):  # the feature the speech branch reads: mean of the last layers, over time
        hidden = speech.encoder(input_values=x, output_hidden_states=True).hidden_states
        return torch.stack(hidden[-speech.cfg.pool_last_layers:]).mean(0).mean(1)

    out["speech_accuracy"] = _fit("speech", voice, _trainable(speech.encoder), speech.width, data["audio"],
                                  data["voice_labels"], len(labels), cfg.speech_epochs, cfg.speech_lr, cfg, progress)
    if cfg.face_epochs > 0:
        face.encoder.train()
        out["face_accuracy"] = _fit("face", face.encoder.frame_features, _trainable(face.encoder),
                                    face.encoder.feature_dim, data["faces"], data["face_labels"], len(labels),
                                    cfg.face_epochs, cfg.lr, cfg, progress)
    for encoder in model.encoders().values():
        encoder.requires_grad_(False)
        encoder.eval()
    return out


def _reading_samples(processor, records: Sequence[Record], rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Short texts for the first language stage: the words alone, then what they say about the emotion.

    - one per training clip with a subtitle: the subtitle, then the emotion its words show
      (`extra.shown.text`, neutral when the words are flat), in the MER answer form;
    - one per training record whose words carry the emotion: its subtitle (the speaker's
      current turn in a dialogue), its task instruction, then its answer, so every task's
      answer form learns to follow the words while the text is still short.
    """
    from nanoemox.processor import ASSISTANT, INSTRUCTION_INTRO
    from nanoemox.tasks import get_task

    def ids(text: str) -> list[int]:
        return list(processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def sample(prompt: str, answer: str) -> tuple[torch.Tensor, torch.Tensor]:
        prompt_ids, answer_ids = ids(prompt + ASSISTANT), ids(answer) + [processor.tokenizer.eos_token_id]
        return torch.tensor(prompt_ids + answer_ids), torch.tensor([-100] * len(prompt_ids) + answer_ids)

    seen, samples = set(), []
    for r in records:
        shown = r.extra.get("shown", {}).get("text")
        if r.split != "train" or not r.text or shown is None:
            continue
        key = r.media.get("video") or r.id
        if key not in seen:
            seen.add(key)
            samples.append(sample(r.text, get_task("mer").format_target(shown)))
        if shown != "neutral" and r.target is not None:
            instruction = processor.instruction(r.task, r.candidates, train=True, rng=rng)
            samples.append(sample(r.text + INSTRUCTION_INTRO + instruction, get_task(r.task).format_target(r.target)))
    return samples


def _instruction_samples(processor, records: Sequence[Record], rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Whole training prompts of every task with their answers, placeholders removed (no media)."""
    placeholders = torch.tensor(list(processor.placeholder_ids.values()))
    samples = []
    for record in records:
        if record.split != "train" or record.target is None:
            continue
        encoded = processor.encode_text(record.task, record.text, record.history, record.candidates,
                                        record.target, train=True, rng=rng)
        ids, answer = torch.tensor(encoded.input_ids), torch.tensor(encoded.labels)
        keep = ~torch.isin(ids, placeholders)
        samples.append((ids[keep], answer[keep]))
    return samples


def _draw(rng: random.Random, samples: list, k: int) -> list:
    return rng.sample(samples, k) if k <= len(samples) else rng.choices(samples, k=k)


def pretrain_language(model: NanoEmoX, processor, records: Sequence[Record], cfg: PretrainConfig,
                      progress: Progress | None = None) -> float:
    """Train the tiny LM on texts of the training split (no media), in two stages.

    1. reading (`lm_reading_steps`): a subtitle alone, then the emotion its words show,
       or, where the words carry the emotion, the subtitle with a task instruction and
       its answer. With the media intros and the dialogue history around it, a small LM
       trained from scratch takes thousands of steps to find the one emotional remark in
       a prompt; from short texts it learns in a few hundred, and the skill carries over
       to whole prompts.
    2. instructions (`lm_steps`): whole prompts of all six tasks with their answers, the
       stand-in for an instruction-tuned LM (the paper uses Qwen2.5-Instruct) that
       answers in the requested form. Half of each batch (`lm_reading_share`) stays
       reading: without it the first large gradients of the long answers wipe out the
       reading skill before the whole prompts can use it.

    The loss is on answer tokens only. Returns the mean loss of the last 20 steps.
    """
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    reading = _reading_samples(processor, records, rng)
    instructions = _instruction_samples(processor, records, rng)
    if not instructions:
        raise ValueError("no training records with a target to pre-train the language stand-in on")
    # (steps, reading samples per batch); stage 2 keeps some reading so its skill is not lost
    # to the first large gradients of the long answers.
    keep = round(cfg.batch_size * cfg.lm_reading_share) if reading else 0
    stages = [(cfg.lm_reading_steps if reading else 0, cfg.batch_size), (cfg.lm_steps, keep)]
    lm = model.language
    params = [p for n, p in lm.named_parameters() if "lora_" not in n]
    for p in params:
        p.requires_grad_(True)
    lm.train()
    optimizer = torch.optim.AdamW(params, lr=cfg.lm_lr, weight_decay=0.01)
    total = sum(steps for steps, _ in stages)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lm_lr, total_steps=max(total, 1),
                                                    pct_start=0.1)
    pad, head, trunk = processor.pad_token_id, lm.get_output_embeddings(), lm.get_decoder()
    losses: list[float] = []
    for steps, n_reading in stages:
        for _ in range(steps):
            chunk = _draw(rng, reading, n_reading) + _draw(rng, instructions, cfg.batch_size - n_reading)
            ids = nn.utils.rnn.pad_sequence([t for t, _ in chunk], batch_first=True, padding_value=pad)
            answers = nn.utils.rnn.pad_sequence([a for _, a in chunk], batch_first=True, padding_value=-100)
            mask = nn.utils.rnn.pad_sequence([torch.ones_like(t) for t, _ in chunk], batch_first=True)
            hidden = trunk(input_ids=ids, attention_mask=mask).last_hidden_state
            loss = sequence_loss(hidden, answers, head=head)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if progress:
                progress("language", len(losses), total)
    for p in lm.parameters():
        p.requires_grad_(False)
    lm.eval()
    final = sum(losses[-20:]) / max(1, len(losses[-20:])) if losses else float("nan")
    logger.info("pre-training language: final loss %.3f", final)
    return final


def pretrain_tiny(model: NanoEmoX, processor, records: Sequence[Record], root: str, labels: list[str],
                  cfg: PretrainConfig | None = None, progress: Progress | None = None) -> dict[str, float]:
    """All three stand-ins in order; returns what each reached and how long it took."""
    if model.config.preset != "tiny":
        raise ValueError("backbone pre-training is a stand-in for the tiny preset only; the paper preset "
                         "loads pretrained CLIP, HuBERT, FaceXFormer and Qwen2.5 weights")
    cfg = cfg or PretrainConfig()
    started = time.perf_counter()
    data = decode_training_clips(records, processor, root, cfg, labels, progress)
    metrics = pretrain_encoders(model, data, labels, cfg, progress)
    metrics["language_loss"] = pretrain_language(model, processor, records, cfg, progress)
    metrics["seconds"] = time.perf_counter() - started
    return metrics
