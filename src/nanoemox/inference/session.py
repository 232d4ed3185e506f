"""`Session`: a loaded model and its processor on one device, the one place that calls them.

Everything that answers (the record runner, multi-task answering of one clip, timeline
windows, the feature-cache path, chat and the service) goes through its public calls:

    session = Session.from_pretrained("runs/p3/final", dtype="auto")
    ids = session.encode_text("mer", "I did it!", None, ["happy", "sad"])   # prompt token ids
    features = session.encode_media(pixel_values, face_pixel_values, audio_values)
    cls, taps = session.encode_frames(pixel_values)   # one encoder on loose pieces (also encode_faces, encode_clips)
    inputs = session.model_inputs(processor.collate(samples, padding_side="left"))
    session.generate(inputs, budgets, decoding)   # [(text, truncated)] per row
    session.generate_ids(inputs, 64, decoding, streamer=streamer)   # new token ids, generation hooks passed on
    session.log_likelihoods(inputs, candidates, task)   # [K] for closed-set scoring
    session.answer_clip(features, prompts, tasks, candidates, "score", decoding)   # several tasks, one clip

The session resolves the device and precision once and owns the locks: model calls run
one at a time (the service calls from a thread pool), and the tokenizer has its own
lock so that a loading thread can tokenize the next prompts while the model runs.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Sequence

import torch

from nanoemox.decoding import Decoding
from nanoemox.inference.common import FLOAT_KEYS, MODEL_KEYS, candidate_labels, pick_device, pick_dtype, scores_of
from nanoemox.inference.multitask import SharedClip
from nanoemox.model import load_model
from nanoemox.model.nanoemox import MediaFeatures
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.tasks import SCORABLE_TASKS, default_candidates, get_task

logger = logging.getLogger(__name__)


class Session:
    """A model and its processor on one device and in one precision (see the module docstring)."""

    def __init__(self, model, processor, *, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None):
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self._model_lock = threading.RLock()
        self._text_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, *, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None) -> "Session":
        """Load a model folder's model and processor onto `device` (default: CUDA if present)."""
        device = pick_device(device)
        chosen = pick_dtype(dtype, device)
        logger.info("inference on %s in %s%s", device, str(chosen).replace("torch.", ""),
                    " (auto: what this hardware computes natively)" if dtype == "auto" else "")
        model = load_model(model_dir, dtype=chosen, device=device)
        if model.config.random_backbones and model.config.preset != "tiny":
            logger.warning("%s: backbone(s) %s of this %s model have random (untrained) weights; its answers "
                           "mean little", model_dir, ", ".join(model.config.random_backbones), model.config.preset)
        return cls(model, NanoEmoXProcessor.from_pretrained(model_dir), device=device, dtype=chosen)

    def describe(self) -> dict[str, Any]:
        """Device, precision and untrained backbones, for run records."""
        return {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "random_backbones": list(getattr(self.model.config, "random_backbones", []))}

    # ------------------------------------------------------------------ inputs

    def encode_text(self, task: str, text: str | None, history: Sequence[dict] | None = None,
                    candidates: Sequence[str] | None = None) -> list[int]:
        """Prompt token ids of one task's question (`NanoEmoXProcessor.encode_text`, no target)."""
        with self._text_lock:
            return list(self.processor.encode_text(task, text, history, candidates).input_ids)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A collated batch on the device, media in the session's precision.

        Takes media tensors (`MODEL_KEYS`) or, instead of them, cached encoder outputs
        under "features" (`MediaFeatures`).
        """
        keys = [k for k in MODEL_KEYS if k in batch]
        moved = {k: batch[k].to(self.device) for k in keys}
        for key in FLOAT_KEYS:
            if key in moved:
                moved[key] = moved[key].to(self.dtype)
        if "features" in batch:
            moved["features"] = batch["features"].to(device=self.device, dtype=self.dtype)
        return moved

    def encode_media(self, pixel_values: torch.Tensor, face_pixel_values: torch.Tensor,
                     audio_values: torch.Tensor) -> MediaFeatures:
        """The frozen encoders' outputs for a batch of media tensors (moved and cast here)."""
        cast = [t.to(self.device, self.dtype) for t in (pixel_values, face_pixel_values, audio_values)]
        with self._model_lock, torch.inference_mode():
            return self.model.encode_media(*cast)

    # One encoder on pieces that need not come from one clip (`windows.FeatureMemory`): the
    # encoders read every frame and clip on its own, so these equal `encode_media`'s rows.

    def encode_frames(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scene encoder on frames [N, 3, H, W] -> (CLS [N, D_v], tap-layer CLS [L, N, D_v])."""
        with self._model_lock, torch.inference_mode():
            cls, taps = self.model.scene.encode(pixel_values.to(self.device, self.dtype)[None])
        return cls[0], taps[:, 0]

    def encode_faces(self, face_pixel_values: torch.Tensor) -> torch.Tensor:
        """Face encoder on face images [N, 3, S, S] -> [N, D_f]."""
        with self._model_lock, torch.inference_mode():
            return self.model.face.encode(face_pixel_values.to(self.device, self.dtype)[None])[0]

    def encode_clips(self, audio_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech encoder on normalised clips [N, S] -> (clip vectors [N, D_a], tap layers [L, N, D_a])."""
        with self._model_lock, torch.inference_mode():
            clips, taps = self.model.speech.encode(audio_values.to(self.device, self.dtype)[None])
        return clips[0], taps[:, 0]

    # ------------------------------------------------------------------ answers

    def generate(self, inputs: dict[str, Any], budgets: Sequence[int], decoding: Decoding) -> list[tuple[str, bool]]:
        """(answer, truncated) per row of a batch from `model_inputs`; each row cut at its own budget.

        Truncated: the budget ran out before EOS.
        """
        return self.decode(self.generate_ids(inputs, max(budgets), decoding), budgets)

    def generate_ids(self, inputs: dict[str, Any], max_new_tokens: int, decoding: Decoding, **hooks: Any) -> torch.Tensor:
        """New token ids [B, <= max_new_tokens] of a batch from `model_inputs` (EOS, then padding, ends a row).

        `hooks` are transformers' generation hooks, passed on as they are: `streamer`
        (gets each new token as it is chosen), `logits_processor`, `stopping_criteria`.
        """
        with self._model_lock, torch.inference_mode():
            if decoding.do_sample:
                torch.manual_seed(decoding.seed)  # the same call gives the same answers
            return self.model.generate(
                **inputs,
                max_new_tokens=int(max_new_tokens),
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.processor.pad_token_id,
                **decoding.generate_kwargs(),
                **hooks,
            )  # [B, N]

    def decode(self, new_tokens: torch.Tensor, budgets: Sequence[int]) -> list[tuple[str, bool]]:
        """(text, truncated) per row of new tokens [B, N], each row cut at its own budget."""
        eos = self.tokenizer.eos_token_id
        rows = [row[:budget] for row, budget in zip(new_tokens.cpu(), budgets)]
        truncated = [bool((row != eos).all()) and len(row) >= budget for row, budget in zip(rows, budgets)]
        with self._text_lock:
            texts = self.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [(t.strip(), cut) for t, cut in zip(texts, truncated)]

    def answer_ids(self, task: str, label: str) -> list[int]:
        """Token ids of a candidate answer exactly as training renders a target, plus EOS."""
        text = get_task(task).format_target(label)
        with self._text_lock:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids + [self.tokenizer.eos_token_id]

    def log_likelihoods(self, inputs: dict[str, Any], candidates: Sequence[str], task: str) -> torch.Tensor:
        """Total log-likelihood [K] of each candidate answer given one sample's prompt (`model_inputs`, batch of 1)."""
        media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        with self._model_lock, torch.inference_mode():
            embeds = self.model.inputs_embeds(inputs["input_ids"], **media)  # [1, L, D]
            prompt = self.model.language(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], use_cache=True)
            return self.rank_candidates(prompt.logits[:, -1], prompt.past_key_values, inputs["attention_mask"],
                                        candidates, task)

    def rank_candidates(self, last_logits: torch.Tensor, cache, attention: torch.Tensor, candidates: Sequence[str],
                        task: str) -> torch.Tensor:
        """Total log-likelihood [K] of each candidate after a prompt already run through the LM.

        `last_logits` [1, V] are the prompt's last logits, `cache` its KV cache (consumed),
        `attention` [1, L] its mask. Shapes: K candidates, T longest candidate (tokens + EOS).
        """
        answers = [self.answer_ids(task, c) for c in candidates]
        k, t = len(answers), max(len(a) for a in answers)
        ids = torch.full((k, t), self.processor.pad_token_id, dtype=torch.long)
        mask = torch.zeros((k, t), dtype=torch.long)
        for row, answer in enumerate(answers):
            ids[row, : len(answer)] = torch.tensor(answer)
            mask[row, : len(answer)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with self._model_lock, torch.inference_mode():
            cache.batch_repeat_interleave(k)  # the prompt's keys and values, once per candidate
            attention = torch.cat([attention.expand(k, -1), mask], dim=1)  # [K, L + T]
            out = self.model.language(input_ids=ids, attention_mask=attention, past_key_values=cache, use_cache=True)
            first = self._log_probs(last_logits)[0, ids[:, 0]]  # [K] first answer token
            rest = self._log_probs(out.logits[:, :-1]).gather(-1, ids[:, 1:, None])[..., 0]  # [K, T-1]
            rest = torch.where(mask[:, 1:].bool(), rest, torch.zeros_like(rest))  # padding adds nothing
            total = first + rest.sum(dim=1)
        return total.cpu()

    def _log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-softmax in float32 with placeholder tokens excluded, as generation excludes them."""
        placeholders = torch.tensor(list(self.model.placeholder_ids.values()), device=logits.device)
        logits = logits.float().index_fill(-1, placeholders, float("-inf"))  # out of place: outputs stay intact
        return torch.log_softmax(logits, dim=-1)

    def answer_clip(self, features: MediaFeatures, prompts: Sequence[Sequence[int]], tasks: Sequence[str],
                    candidates: Sequence[Sequence[str] | None], decode: str, decoding: Decoding) -> list[dict[str, Any]]:
        """Answers of several tasks of one clip from its encoder features (batch of 1), sharing the prompt prefix.

        `prompts[j]` are the token ids of task `tasks[j]`, `candidates[j]` its labels (None:
        the task's default candidates). Each answer: {"text", "scores"} when scored
        (closed-set tasks with `decode="score"`), {"text", "max_new_tokens", "truncated"}
        when generated; the generating tasks decode together (`multitask`).
        """
        answers: list[dict[str, Any] | None] = [None] * len(prompts)
        generating: list[tuple[int, Sequence[int], int]] = []
        with self._model_lock, torch.inference_mode():
            clip = SharedClip(self, features, prompts)
            for j, (prompt, task, offered) in enumerate(zip(prompts, tasks, candidates)):
                if decode == "score" and task in SCORABLE_TASKS:
                    labels = candidate_labels(offered or default_candidates(task))
                    result = scores_of(labels, clip.rank(prompt, labels, task))
                    answers[j] = {"text": get_task(task).format_target(result["label"]),
                                  "scores": result["probabilities"]}
                else:
                    generating.append((j, prompt, decoding.budget(task)))
            if generating:
                if decoding.do_sample:
                    torch.manual_seed(decoding.seed)
                budgets = [budget for _, _, budget in generating]
                new_tokens = clip.generate([p for _, p, _ in generating], budgets, decoding.generate_kwargs())
        if generating:
            for (j, _, budget), (text, cut) in zip(generating, self.decode(new_tokens, budgets)):
                answers[j] = {"text": text, "max_new_tokens": budget, "truncated": cut}
        return answers
