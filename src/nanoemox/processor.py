"""`NanoEmoXProcessor`: media + text + task in, the model's input tensors out.

One sample becomes a plain-text turn

    ###Human: <fusion intro> F <speech intro> S..S <face intro> C..C <scene intro> V..V
    <subtitle, or for ERG the dialogue so far> <task instruction> ###Assistant: <answer><eos>

where F, S, C, V are the modality placeholder tokens (config.placeholders), as many
as the model has tokens per modality (1 + 32 + 4 + 32). Pieces are tokenized
separately and joined as ids, so placeholders are always single, whole tokens and
truncation knows where the context lies: only the subtitle / dialogue is cut (its
oldest tokens first: whole history turns, then the front of what remains) to fit
`max_length`; placeholders never are. `labels` are -100 everywhere except on the
answer tokens and the end-of-sequence token after them.

Batches (keys the model reads; B batch, L tokens, F frames, C clips):
    input_ids [B, L] long, attention_mask [B, L] long, labels [B, L] long (with targets),
    pixel_values [B, F, 3, 224, 224], face_pixel_values [B, F, 3, 224, 224],
    audio_values [B, C, clip_samples], audio_present [B] bool, video_present [B] bool,
    faces_found [B, F] bool.
Right padding by default (training); `padding_side="left"` for batched generation.

The processor is a plain picklable object (tokenizer + settings); the heavy
resources it touches (the face cascade) are created lazily once per process, so
it is cheap to ship into DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from nanoemox.config import MODALITIES, NanoEmoXConfig
from nanoemox.data.manifest import Record
from nanoemox.media.pipeline import MediaConfig, MediaInputs, load_media
from nanoemox.tasks import get_task

logger = logging.getLogger(__name__)

CONFIG_NAME = "processor_config.json"
TOKENIZER_DIR = "tokenizer"
IGNORE_INDEX = -100

HUMAN = "###Human:"
ASSISTANT = " ###Assistant: "
# How each modality's tokens are introduced in the prompt (MODALITIES order).
MODALITY_INTROS = {
    "fusion": " Blended cues from voice and picture:",
    "speech": " How the person sounds:",
    "face": " How the person's face changes:",
    "scene": " What the camera shows:",
}
SUBTITLE_INTRO = "\nWhat is said in the clip: "
HISTORY_INTRO = "\nThe conversation so far:"
CURRENT_TURN = "speaker (now)"
INSTRUCTION_INTRO = "\n"


@dataclasses.dataclass
class TextInputs:
    """Token ids of one sample; `labels` is None when no target was given."""

    input_ids: list[int]
    labels: list[int] | None
    truncated: int = 0  # context tokens dropped to fit max_length


def _media_config_from(config: NanoEmoXConfig, **overrides: Any) -> MediaConfig:
    base = dict(
        num_frames=config.scene.num_frames,
        sample_rate=config.speech.sample_rate,
        num_clips=config.speech.num_clips,
        clip_seconds=config.speech.clip_seconds,
    )
    base.update(overrides)
    return MediaConfig(**base)


def read_processor_config(path: Path) -> tuple[MediaConfig, dict[str, Any]]:
    """A `processor_config.json`: the MediaConfig and the processor's other settings."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; a processor folder is written by NanoEmoXProcessor.save_pretrained")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        media = dict(data["media"])
        for key in ("clip_mean", "clip_std", "face_mean", "face_std"):
            media[key] = tuple(media[key])
        media_config = MediaConfig(**media)
        settings = {"placeholders": dict(data["placeholders"]), "token_counts": dict(data["token_counts"]),
                    "max_length": int(data["max_length"])}
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise ValueError(f"{path}: not a valid processor config ({problem}); copy the model folder again") from None
    return media_config, settings


def truncate_oldest(turns: list[list[int]], budget: int) -> tuple[list[int], int]:
    """The context ids with the oldest dropped until at most `budget` remain (whole turns first); how many dropped."""
    total = sum(len(t) for t in turns)
    dropped = 0
    turns = list(turns)
    while turns and total - dropped > budget and total - dropped - len(turns[0]) >= budget:
        dropped += len(turns.pop(0))
    ids = [i for t in turns for i in t]
    cut = max(0, len(ids) - max(budget, 0))
    return ids[cut:], dropped + cut


class NanoEmoXProcessor:
    """Turns (task, media, text, target) into model inputs; see the module docstring."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        media: MediaConfig | None = None,
        *,
        placeholders: dict[str, str],
        token_counts: dict[str, int],
        max_length: int = 1024,
    ):
        self.tokenizer = tokenizer
        self.media = media or MediaConfig()
        self.placeholders = dict(placeholders)
        self.token_counts = {m: int(token_counts[m]) for m in MODALITIES}
        self.max_length = int(max_length)
        vocab = tokenizer.get_vocab()
        missing = [t for t in self.placeholders.values() if t not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks placeholder token(s) {missing}; call nanoemox.tokenizer.add_placeholder_tokens first")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; the answer could never be terminated")
        self.placeholder_ids = {m: tokenizer.convert_tokens_to_ids(self.placeholders[m]) for m in MODALITIES}
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._head_ids = self._modality_ids()  # identical for every sample: built once

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tokenizer={type(self.tokenizer).__name__}, max_length={self.max_length}, "
            f"token_counts={self.token_counts}, media={self.media})"
        )

    # ------------------------------------------------------------------ construction and saving

    @classmethod
    def from_config(cls, config: NanoEmoXConfig, tokenizer: PreTrainedTokenizerBase, **media_overrides: Any) -> "NanoEmoXProcessor":
        """Processor matching a model config; `media_overrides` set MediaConfig fields (e.g. face_input="crops")."""
        return cls(
            tokenizer,
            _media_config_from(config, **media_overrides),
            placeholders=config.placeholders,
            token_counts=config.token_counts(),
            max_length=config.language.max_length,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "processor_class": type(self).__name__,
            "media": dataclasses.asdict(self.media),
            "placeholders": self.placeholders,
            "token_counts": self.token_counts,
            "max_length": self.max_length,
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write `processor_config.json` and the tokenizer (into `tokenizer/`)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "NanoEmoXProcessor":
        directory = Path(directory)
        media_config, settings = read_processor_config(directory / CONFIG_NAME)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR)
        except (OSError, ValueError, RecursionError) as exc:
            raise ValueError(f"{directory / TOKENIZER_DIR}: the tokenizer cannot be loaded "
                             f"({str(exc).strip()[:200]}); copy the model folder again") from None
        return cls(tokenizer, media_config, **settings)

    # ------------------------------------------------------------------ text

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _modality_ids(self) -> list[int]:
        ids = self._ids(HUMAN)
        for m in MODALITIES:
            ids += self._ids(MODALITY_INTROS[m]) + [self.placeholder_ids[m]] * self.token_counts[m]
        return ids

    def _context_turns(self, dialogue: bool, text: str | None, history: Sequence[dict] | None) -> tuple[list[int], list[list[int]]]:
        """(intro ids, token runs oldest first): one run per dialogue turn (`dialogue`), or the subtitle alone."""
        if dialogue:
            turns = [self._ids(f"\n{turn['role']}: {turn['text']}") for turn in history or []]
            if text:
                turns.append(self._ids(f"\n{CURRENT_TURN}: {text}"))
            return (self._ids(HISTORY_INTRO) if turns else []), turns
        return (self._ids(SUBTITLE_INTRO), [self._ids(text)]) if text else ([], [])

    def instruction(self, task: str, candidates: Sequence[str] | None = None, train: bool = False, rng: random.Random | None = None) -> str:
        """Task instruction: a random paraphrase when training with `rng`, variant 0 otherwise."""
        if train:
            return get_task(task).instruction(candidates=candidates, rng=rng or random.Random())
        return get_task(task).instruction(variant=0, candidates=candidates)

    def text_ids(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens)."""
        return self._ids(text)

    def framed_prompt_ids(self, text: str | None, history: Sequence[dict] | None, request: str) -> list[int]:
        """The prompt framing of `encode_text` (modality placeholders, then the subtitle or the
        conversation so far) around any request in place of a task instruction; not truncated."""
        intro, turns = self._context_turns(bool(history), text, history)
        return (self._head_ids + intro + [t for run in turns for t in run]
                + self._ids(INSTRUCTION_INTRO + request) + self._ids(ASSISTANT))

    def encode_text(
        self,
        task: str,
        text: str | None = None,
        history: Sequence[dict] | None = None,
        candidates: Sequence[str] | None = None,
        target: Any = None,
        train: bool = False,
        rng: random.Random | None = None,
    ) -> TextInputs:
        """Token ids (and labels when `target` is not None) of one prompt, fitted to max_length."""
        head = self._head_ids
        tail = self._ids(INSTRUCTION_INTRO + self.instruction(task, candidates, train, rng)) + self._ids(ASSISTANT)
        answer: list[int] = []
        if target is not None:
            answer = self._ids(get_task(task).format_target(target)) + [self.tokenizer.eos_token_id]
        intro, turns = self._context_turns(get_task(task).dialogue or bool(history), text, history)
        fixed = len(head) + len(tail)
        if fixed > self.max_length:
            raise ValueError(f"placeholders and instruction need {fixed} tokens, more than max_length={self.max_length}")
        if fixed + len(answer) > self.max_length:
            logger.warning("answer of %d tokens cut to fit max_length=%d", len(answer), self.max_length)
            answer = answer[: self.max_length - fixed]
        context, dropped = truncate_oldest(turns, self.max_length - fixed - len(answer) - len(intro))
        prompt = head + (intro + context if context else []) + tail
        labels = None if target is None else [IGNORE_INDEX] * len(prompt) + answer
        return TextInputs(prompt + answer, labels, dropped)

    # ------------------------------------------------------------------ one sample

    def load_media(self, video=None, audio=None, faces=None) -> MediaInputs:
        """Decode one sample's media with this processor's settings (numpy arrays and flags)."""
        return load_media(video, audio, faces, self.media)

    def process(
        self,
        task: str,
        *,
        video: str | os.PathLike | None = None,
        audio: str | os.PathLike | None = None,
        faces: str | os.PathLike | None = None,
        text: str | None = None,
        history: Sequence[dict] | None = None,
        candidates: Sequence[str] | None = None,
        target: Any = None,
        train: bool = False,
        rng: random.Random | None = None,
    ) -> dict[str, torch.Tensor]:
        """One sample, unbatched: input_ids [L], labels [L] (with a target), media tensors and flags."""
        encoded = self.encode_text(task, text, history, candidates, target, train, rng)
        media = self.load_media(video, audio, faces)
        sample = {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long), **media.tensors()}
        if encoded.labels is not None:
            sample["labels"] = torch.tensor(encoded.labels, dtype=torch.long)
        return sample

    def from_record(
        self,
        record: Record,
        root: str | os.PathLike,
        train: bool = False,
        rng: random.Random | None = None,
        with_target: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """One manifest record (media paths relative to `root`); the target is used when training."""
        use_target = train if with_target is None else with_target
        return self.process(record.task, **record.inputs(root), target=record.target if use_target else None,
                            train=train, rng=rng)

    # ------------------------------------------------------------------ batches

    def collate(self, samples: Sequence[dict[str, torch.Tensor]], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad and stack samples from `process` into a batch (usable as a DataLoader collate_fn)."""
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        with_labels = ["labels" in s for s in samples]
        if any(with_labels) and not all(with_labels):
            raise ValueError("some samples have labels and some do not; give targets to all or none")
        length = max(len(s["input_ids"]) for s in samples)
        batch = {
            "input_ids": torch.full((len(samples), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(samples), length), dtype=torch.long),
        }
        if all(with_labels):
            batch["labels"] = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
        for row, sample in enumerate(samples):
            n = len(sample["input_ids"])
            span = slice(0, n) if padding_side == "right" else slice(length - n, length)
            batch["input_ids"][row, span] = sample["input_ids"]
            batch["attention_mask"][row, span] = 1
            if "labels" in batch:
                batch["labels"][row, span] = sample["labels"]
        for key in ("pixel_values", "face_pixel_values", "audio_values", "audio_present", "video_present", "faces_found"):
            if key in samples[0]:  # text-only samples (e.g. with cached features) have no media tensors
                batch[key] = torch.stack([s[key] for s in samples])
        return batch

    def __call__(self, samples: dict[str, Any] | Sequence[dict[str, Any]], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Batch from keyword dicts of `process` (task=..., video=..., text=..., target=...)."""
        if isinstance(samples, dict):
            samples = [samples]
        return self.collate([self.process(**dict(s)) for s in samples], padding_side=padding_side)

    def decode_prompt(self, input_ids: Sequence[int]) -> str:
        """Readable prompt text with each run of placeholders shown once with its count."""
        out: list[str] = []
        ids = [int(i) for i in input_ids]
        names = {v: k for k, v in self.placeholder_ids.items()}
        i = 0
        while i < len(ids):
            if ids[i] in names:
                j = i
                while j < len(ids) and ids[j] == ids[i]:
                    j += 1
                out.append(f"<{names[ids[i]]} x{j - i}>")
                i = j
                continue
            j = i
            while j < len(ids) and ids[j] not in names:
                j += 1
            out.append(self.tokenizer.decode(ids[i:j]))
            i = j
        return "".join(out)
