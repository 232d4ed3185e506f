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
- language (the Qwen-Instruct stand-in): causal language modelling on the prompt and
  answer texts of the training records, without media (placeholders removed), with the
  answer tokens weighted up so that it answers in the requested form.

None of these sees the task labels of the clip as a whole, which modality carries the
cue, or any dev/test record. After this step the backbones are frozen again, as in P2E.
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
    speech_epochs: int = 3
    face_epochs: int = 0  # the Swin face encoder is the slowest part on a CPU; off by default
    lm_epochs: int = 2
    lm_text_weight: float = 0.2  # weight of the plain LM loss beside the answer loss
    batch_size: int = 32
    lr: float = 1e-3
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
         inputs: torch.Tensor, labels: torch.Tensor, n_classes: int, epochs: int, cfg: PretrainConfig,
         progress: Progress | None) -> float:
    """Train `encode` + a linear head with cross-entropy; return the last epoch's accuracy."""
    head = nn.Linear(width, n_classes)
    optimizer = torch.optim.AdamW(params + list(head.parameters()), lr=cfg.lr, weight_decay=0.01)
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
                                  data["face_labels"], len(labels), cfg.vision_epochs, cfg, progress)
    speech.encoder.train()

    def voice(x):  # the feature the speech branch reads: mean of the last layers, over time
        hidden = speech.encoder(input_values=x, output_hidden_states=True).hidden_states
        return torch.stack(hidden[-speech.cfg.pool_last_layers:]).mean(0).mean(1)

    out["speech_accuracy"] = _fit("speech", voice, _trainable(speech.encoder), speech.width, data["audio"],
                                  data["voice_labels"], len(labels), cfg.speech_epochs, cfg, progress)
    if cfg.face_epochs > 0:
        face.encoder.train()
        out["face_accuracy"] = _fit("face", face.encoder.frame_features, _trainable(face.encoder),
                                    face.encoder.feature_dim, data["faces"], data["face_labels"], len(labels),
                                    cfg.face_epochs, cfg, progress)
    for encoder in model.encoders().values():
        encoder.requires_grad_(False)
        encoder.eval()
    return out


def pretrain_language(model: NanoEmoX, processor, records: Sequence[Record], cfg: PretrainConfig,
                      progress: Progress | None = None) -> float:
    """Causal LM training of the tiny LM on prompt + answer texts of the training split (no media)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    placeholders = torch.tensor(list(processor.placeholder_ids.values()))
    texts = []
    for record in records:
        if record.split != "train" or record.target is None:
            continue
        encoded = processor.encode_text(record.task, record.text, record.history, record.candidates,
                                        record.target, train=True, rng=rng)
        ids, answer = torch.tensor(encoded.input_ids), torch.tensor(encoded.labels)
        keep = ~torch.isin(ids, placeholders)
        texts.append((ids[keep], answer[keep]))
    lm = model.language
    params = [p for n, p in lm.named_parameters() if "lora_" not in n]
    for p in params:
        p.requires_grad_(True)
    lm.train()
    optimizer = torch.optim.AdamW(params, lr=cfg.lm_lr, weight_decay=0.01)
    pad = processor.pad_token_id
    steps = cfg.lm_epochs * ((len(texts) + cfg.batch_size - 1) // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lm_lr, total_steps=max(steps, 1))
    loss_value, done = float("nan"), 0
    for _ in range(cfg.lm_epochs):
        rng.shuffle(texts)
        for start in range(0, len(texts), cfg.batch_size):
            chunk = texts[start : start + cfg.batch_size]
            ids = nn.utils.rnn.pad_sequence([t for t, _ in chunk], batch_first=True, padding_value=pad)
            answers = nn.utils.rnn.pad_sequence([a for _, a in chunk], batch_first=True, padding_value=-100)
            mask = nn.utils.rnn.pad_sequence([torch.ones_like(t) for t, _ in chunk], batch_first=True)
            logits = lm(input_ids=ids, attention_mask=mask).logits
            # Language modelling on every token, with the answers weighted up: the stand-in for
            # an instruction-tuned LM (the paper uses Qwen2.5-Instruct), which answers in the
            # requested form.
            text_loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids.masked_fill(mask == 0, -100)[:, 1:].flatten())
            loss = sequence_loss(logits, answers) + cfg.lm_text_weight * text_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            loss_value, done = float(loss.detach()), done + 1
            if progress:
                progress("language", done, steps)
    for p in lm.parameters():
        p.requires_grad_(False)
    lm.eval()
    logger.info("pre-training language: final loss %.3f", loss_value)
    return loss_value


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
