"""The Nano-EmoX composer: wires the four branches into the language model.

Nothing here computes features itself; it asks each branch for its tokens, scatters
them into the prompt's input embeddings at the placeholder positions and runs the
language model (loss on answer tokens, or generation with a KV cache). Building is
model/build.py (`build_model`, `load_model`); writing a model folder is model/saving.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn
from transformers import GenerationConfig
from transformers.modeling_outputs import CausalLMOutputWithPast

from nanoemox.config import MODALITIES, NanoEmoXConfig
from nanoemox.model.common import sequence_loss
from nanoemox.model.face import FaceBranch
from nanoemox.model.fusion import FusionBranch
from nanoemox.model.scene import SceneBranch
from nanoemox.model.speech import SpeechBranch

IGNORE_INDEX = -100
# Processor outputs that describe the inputs but are not model inputs.
FLAG_KEYS = ("audio_present", "faces_found", "video_present")


@dataclass
class MediaFeatures:
    """Outputs of the frozen encoders: all the model needs from the media (cacheable).

    Shapes: B batch, F frames, C audio clips, L fusion tap layers, D_* encoder widths.
    """

    scene_cls: torch.Tensor  # [B, F, D_v]
    scene_taps: torch.Tensor  # [L, B, F, D_v]
    speech_clips: torch.Tensor  # [B, C, D_a]
    speech_taps: torch.Tensor  # [L, B, C, D_a]
    face_frames: torch.Tensor  # [B, F, D_f]

    def to(self, *args, **kwargs) -> "MediaFeatures":
        return MediaFeatures(**{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def row(self, b: int) -> "MediaFeatures":
        """Row b of the batch, as a batch of 1 (views, no copy)."""
        return MediaFeatures(self.scene_cls[b : b + 1], self.scene_taps[:, b : b + 1],
                             self.speech_clips[b : b + 1], self.speech_taps[:, b : b + 1],
                             self.face_frames[b : b + 1])

    def expand(self, n: int) -> "MediaFeatures":
        """A batch of 1 viewed as n identical rows (no copy)."""
        return MediaFeatures(self.scene_cls.expand(n, -1, -1), self.scene_taps.expand(-1, n, -1, -1),
                             self.speech_clips.expand(n, -1, -1), self.speech_taps.expand(-1, n, -1, -1),
                             self.face_frames.expand(n, -1, -1))


class NanoEmoX(nn.Module):
    """Scene, speech, face and fusion branches feeding a causal LM through 69 placeholder tokens."""

    def __init__(
        self,
        config: NanoEmoXConfig,
        *,
        scene: SceneBranch,
        speech: SpeechBranch,
        face: FaceBranch,
        fusion: FusionBranch,
        language: nn.Module,
        placeholder_ids: dict[str, int],
    ):
        super().__init__()
        self.config = config
        self.scene = scene
        self.speech = speech
        self.face = face
        self.fusion = fusion
        self.language = language
        missing = [m for m in MODALITIES if m not in placeholder_ids]
        if missing:
            raise ValueError(f"placeholder ids missing for {missing}")
        self.placeholder_ids = {m: int(placeholder_ids[m]) for m in MODALITIES}

    # ------------------------------------------------------------------ features

    def encoders(self) -> dict[str, nn.Module]:
        return {"scene": self.scene.encoder, "speech": self.speech.encoder, "face": self.face.encoder}

    def train(self, mode: bool = True) -> "NanoEmoX":
        """Frozen encoders stay in eval mode (no dropout, no SpecAugment), so cached features stay valid."""
        super().train(mode)
        for encoder in self.encoders().values():
            if not any(p.requires_grad for p in encoder.parameters()):
                encoder.eval()
        return self

    def encode_media(
        self, pixel_values: torch.Tensor, face_pixel_values: torch.Tensor, audio_values: torch.Tensor
    ) -> MediaFeatures:
        """Run the three encoders: frames [B, F, 3, H, W], face frames [B, F, 3, 224, 224], audio [B, C, S]."""
        scene_cls, scene_taps = self.scene.encode(pixel_values)
        speech_clips, speech_taps = self.speech.encode(audio_values)
        face_frames = self.face.encode(face_pixel_values)
        return MediaFeatures(scene_cls, scene_taps, speech_clips, speech_taps, face_frames)

    def modality_tokens(self, features: MediaFeatures) -> dict[str, torch.Tensor]:
        """Trainable part of every branch: MediaFeatures -> {modality: [B, N_m, D_lm]}."""
        fusion_tokens, _ = self.fusion(features.speech_taps, features.scene_taps)
        return {
            "fusion": fusion_tokens,  # [B, 1, D]
            "speech": self.speech(features.speech_clips),  # [B, 32, D]
            "face": self.face(features.face_frames),  # [B, 4, D]
            "scene": self.scene(features.scene_cls),  # [B, 32, D]
        }

    def merge(self, input_ids: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Text embeddings with every placeholder replaced by its modality token: [B, L, D]."""
        embeds = self.language.get_input_embeddings()(input_ids)  # [B, L, D]
        for modality, feats in tokens.items():
            mask = input_ids == self.placeholder_ids[modality]  # [B, L]
            per_sample = mask.sum(1)
            expected = feats.shape[1]
            if feats.shape[0] != input_ids.shape[0] or bool((per_sample != expected).any()):
                bad = [(i, int(n)) for i, n in enumerate(per_sample.tolist()) if n != expected]
                raise ValueError(
                    f"{modality} placeholders do not match its features: the branch gives {expected} tokens "
                    f"for each of {feats.shape[0]} samples, but the prompt has (sample, count) {bad[:8]} "
                    f"of {self.config.placeholders[modality]!r}; build prompts with NanoEmoXProcessor"
                )
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), feats.to(embeds.dtype))
        return embeds

    def _features(self, features: MediaFeatures | None, pixel_values, face_pixel_values, audio_values) -> MediaFeatures:
        if features is not None:
            return features
        if pixel_values is None or face_pixel_values is None or audio_values is None:
            raise ValueError("give either precomputed `features` or all of pixel_values, face_pixel_values, audio_values")
        return self.encode_media(pixel_values, face_pixel_values, audio_values)

    def inputs_embeds(
        self,
        input_ids: torch.Tensor,
        *,
        pixel_values: torch.Tensor | None = None,
        face_pixel_values: torch.Tensor | None = None,
        audio_values: torch.Tensor | None = None,
        features: MediaFeatures | None = None,
    ) -> torch.Tensor:
        media = self._features(features, pixel_values, face_pixel_values, audio_values)
        return self.merge(input_ids, self.modality_tokens(media))

    # ------------------------------------------------------------------ training and inference

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        face_pixel_values: torch.Tensor | None = None,
        audio_values: torch.Tensor | None = None,
        features: MediaFeatures | None = None,
        loss_only: bool = False,
        **flags,
    ) -> CausalLMOutputWithPast:
        """1. encoder features (or cached ones), 2. branch tokens, 3. merge, 4. LM with loss on answers.

        With `labels`, `loss` is the LM's token-mean cross-entropy on the answer tokens. With
        `loss_only=True` as well, `loss` is instead the per-sample mean of `sequence_loss` (the
        training loss), the vocabulary projection runs only where an answer token is
        predicted, and no logits are returned.
        """
        unknown = set(flags) - set(FLAG_KEYS)
        if unknown:
            raise TypeError(f"unexpected inputs {sorted(unknown)}")
        embeds = self.inputs_embeds(
            input_ids,
            pixel_values=pixel_values,
            face_pixel_values=face_pixel_values,
            audio_values=audio_values,
            features=features,
        )
        if labels is not None:
            # Placeholders are inputs, never targets, whatever the labels say.
            is_placeholder = torch.isin(input_ids, torch.tensor(list(self.placeholder_ids.values()), device=input_ids.device))
            labels = labels.masked_fill(is_placeholder, IGNORE_INDEX)
            if loss_only:
                hidden = self.language.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask,
                                                     use_cache=False).last_hidden_state
                head = self.language.get_output_embeddings()
                return CausalLMOutputWithPast(loss=sequence_loss(hidden, labels, IGNORE_INDEX, head=head))
        elif loss_only:
            raise ValueError("loss_only=True needs labels")
        return self.language(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, use_cache=False)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        face_pixel_values: torch.Tensor | None = None,
        audio_values: torch.Tensor | None = None,
        features: MediaFeatures | None = None,
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        repetition_penalty: float | None = None,
        use_cache: bool = True,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        **model_kwargs,
    ) -> torch.Tensor:
        """Answer tokens only, [B, <= max_new_tokens]. Prompts must be left-padded when batched.

        Decoding is exactly what is passed: greedy (plain argmax) unless `do_sample`;
        temperature, top-p and top-k act only when sampling; no repetition penalty
        unless one is given. Nothing is taken from the checkpoint's generation
        settings (see `plain_generation_config`). Placeholder tokens are never generated.
        """
        for key in FLAG_KEYS:
            model_kwargs.pop(key, None)
        model_kwargs.pop("labels", None)
        config = self.decoding_config(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                                      top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
                                      use_cache=use_cache, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
        embeds = self.inputs_embeds(
            input_ids,
            pixel_values=pixel_values,
            face_pixel_values=face_pixel_values,
            audio_values=audio_values,
            features=features,
        )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.language.generate(inputs_embeds=embeds, attention_mask=attention_mask, generation_config=config,
                                      **model_kwargs)

    def decoding_config(self, *, max_new_tokens: int = 64, do_sample: bool = False, temperature: float | None = None,
                        top_p: float | None = None, top_k: int | None = None,
                        repetition_penalty: float | None = None, use_cache: bool = True,
                        eos_token_id: int | list[int] | None = None, pad_token_id: int | None = None) -> GenerationConfig:
        """The complete generation config of a call: every decoding setting explicit, placeholders suppressed."""
        if not do_sample and any(v is not None for v in (temperature, top_p, top_k)):
            raise ValueError("temperature, top_p and top_k apply only with do_sample=True")
        ids = self.language.generation_config
        eos = eos_token_id if eos_token_id is not None else ids.eos_token_id
        pad = pad_token_id if pad_token_id is not None else (ids.pad_token_id if ids.pad_token_id is not None else eos)
        if isinstance(pad, list):
            pad = pad[0]
        sampling = ({"temperature": 1.0 if temperature is None else float(temperature),
                     "top_p": 1.0 if top_p is None else float(top_p), "top_k": 0 if top_k is None else int(top_k)}
                    if do_sample else {})
        return GenerationConfig(
            max_new_tokens=int(max_new_tokens), do_sample=bool(do_sample), num_beams=1, use_cache=use_cache,
            repetition_penalty=1.0 if repetition_penalty is None else float(repetition_penalty),
            eos_token_id=eos, pad_token_id=pad, suppress_tokens=list(self.placeholder_ids.values()), **sampling,
        )
