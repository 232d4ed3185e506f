"""`Predictor`: a model and its processor on one device, answering samples and records."""

from __future__ import annotations

import collections
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from nanoemox.data.manifest import MEDIA_KINDS, TASKS, Record
from nanoemox.decoding import DEFAULT_MAX_NEW_TOKENS, Decoding, read_budgets
from nanoemox.inference.common import (
    DECODE_MODES, FLOAT_KEYS, MODEL_KEYS, SCORABLE_TASKS, Prediction, _chunks, _flags, _Loaded, default_candidates,
    pick_device, pick_dtype,
)
from nanoemox.media.errors import MediaError
from nanoemox.model.nanoemox import MediaFeatures
from nanoemox.tasks import get_task

logger = logging.getLogger(__name__)


class Predictor:
    """A model and its processor on one device, answering batches of samples or records."""

    def __init__(
        self,
        model,
        processor,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 8,
        max_new_tokens: int | dict[str, int] | None = None,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        repetition_penalty: float | None = None,
        seed: int = 0,
        model_budgets: dict[str, int] | None = None,
        media_cache: int = 16,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.decoding = Decoding(do_sample=bool(do_sample), temperature=temperature, top_p=top_p, top_k=top_k,
                                 repetition_penalty=repetition_penalty, seed=int(seed))
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.batch_size = int(batch_size)
        self.max_new_tokens = max_new_tokens
        self.model_budgets = dict(model_budgets or {})
        # Model calls and the tokenizer are not shared across threads at once (the HTTP
        # service calls from a thread pool); media decoding runs outside the lock.
        self._model_lock = threading.RLock()
        self._text_lock = threading.Lock()
        self._media_cache: collections.OrderedDict = collections.OrderedDict()
        self._media_cache_size = int(media_cache)
        self._cache_lock = threading.Lock()

    @property
    def model_lock(self) -> threading.RLock:
        """Held around every model call (callers that drive the model themselves take it too)."""
        return self._model_lock

    @property
    def text_lock(self) -> threading.Lock:
        """Held around every tokenizer call."""
        return self._text_lock

    @classmethod
    def from_pretrained(
        cls, model_dir: str | os.PathLike, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None, **kw: Any
    ) -> "Predictor":
        """Load the model and processor of a model folder onto `device` (default: CUDA if present)."""
        from nanoemox.model import NanoEmoX
        from nanoemox.processor import NanoEmoXProcessor

        device = pick_device(device)
        chosen = pick_dtype(dtype, device)
        logger.info("inference on %s in %s%s", device, str(chosen).replace("torch.", ""),
                    " (auto: what this hardware computes natively)" if dtype == "auto" else "")
        dtype = chosen
        model = NanoEmoX.from_pretrained(model_dir, dtype=dtype, device=device)
        processor = NanoEmoXProcessor.from_pretrained(model_dir)
        kw.setdefault("model_budgets", read_budgets(model_dir))
        if model.config.random_backbones and model.config.preset != "tiny":
            logger.warning("%s: backbone(s) %s of this %s model have random (untrained) weights; its answers "
                           "mean little", model_dir, ", ".join(model.config.random_backbones), model.config.preset)
        return cls(model, processor, device=device, dtype=dtype, **kw)

    # ------------------------------------------------------------------ samples

    def budget(self, task: str | None) -> int:
        """Maximum new tokens for `task`: the caller's, else the model folder's, else the default.

        The largest budget when the task is unknown.
        """
        if isinstance(self.max_new_tokens, int):
            return self.max_new_tokens
        table = {**DEFAULT_MAX_NEW_TOKENS, **self.model_budgets, **(self.max_new_tokens or {})}
        return table[task] if task in table else max(table.values())

    def settings(self) -> dict[str, Any]:
        """Everything that decides an answer, for run records: decoding, budgets and where each came from."""
        given = self.max_new_tokens if isinstance(self.max_new_tokens, dict) else {}
        source = {t: ("caller" if isinstance(self.max_new_tokens, int) or t in given
                      else "model folder" if t in self.model_budgets else "default") for t in TASKS}
        return {"decoding": self.decoding.effective(),
                "max_new_tokens": {t: self.budget(t) for t in TASKS}, "max_new_tokens_source": source,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "random_backbones": list(getattr(self.model.config, "random_backbones", []))}

    def _media(self, video, audio, faces) -> dict[str, torch.Tensor]:
        """Media tensors of one input, decoded once and reused (several tasks often share a clip)."""
        key = tuple(None if p is None else str(p) for p in (video, audio, faces))
        with self._cache_lock:
            if key in self._media_cache:
                self._media_cache.move_to_end(key)
                return self._media_cache[key]
        media = self.processor.load_media(video, audio, faces)
        # Same tensors as NanoEmoXProcessor.process builds (tests compare the two).
        tensors = media.tensors()
        with self._cache_lock:
            self._media_cache[key] = tensors
            while len(self._media_cache) > self._media_cache_size:
                self._media_cache.popitem(last=False)
        return tensors

    def sample(
        self,
        task: str,
        *,
        video=None,
        audio=None,
        faces=None,
        text: str | None = None,
        history: Sequence[dict] | None = None,
        candidates: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One unbatched sample, as `processor.process` gives it (without a target)."""
        media = self._media(video, audio, faces)
        with self._text_lock:
            encoded = self.processor.encode_text(task, text, history, candidates)
        return {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long), **media}

    def _load(self, record: Record, root: str | os.PathLike) -> _Loaded:
        try:
            sample = self.sample(record.task, **record.inputs(root))
        except (MediaError, OSError, ValueError) as exc:
            # One unreadable file must not stop a long run: the record carries the error.
            logger.warning("record %s: %s", record.id, exc)
            return _Loaded(record, error=f"{type(exc).__name__}: {exc}")
        media = tuple(None if v is None else str(v) for v in (record.media_path(k, root) for k in MEDIA_KINDS))
        return _Loaded(record, sample, flags=_flags(sample), group=media if any(media) else None)

    def features(self, sample: dict[str, Any]) -> MediaFeatures:
        """The frozen encoders' outputs for one sample, batch of 1, on the device."""
        batch = self._batch([sample])
        with self._model_lock, torch.inference_mode():
            return self.model.encode_media(batch["pixel_values"], batch["face_pixel_values"], batch["audio_values"])

    # ------------------------------------------------------------------ generation

    def _batch(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = self.processor.collate(samples, padding_side="left")
        moved = {k: batch[k].to(self.device) for k in MODEL_KEYS}
        for key in FLOAT_KEYS:
            moved[key] = moved[key].to(self.dtype)
        return moved

    def generate(
        self, samples: Sequence[dict[str, torch.Tensor]], task: str | None = None, max_new_tokens: int | None = None
    ) -> list[str]:
        """Answer text of each sample (batched by `batch_size`, left padding, new tokens only)."""
        budget = max_new_tokens if max_new_tokens is not None else self.budget(task)
        texts: list[str] = []
        for chunk in _chunks(samples, self.batch_size):
            texts.extend(text for text, _ in self._generate_batch(chunk, budget))
        return texts

    def _generate_batch(self, samples: Sequence[dict[str, torch.Tensor]], max_new_tokens: int) -> list[tuple[str, bool]]:
        """(answer, truncated) per sample; truncated: the budget ran out before EOS."""
        batch = self._batch(samples)
        eos = self.tokenizer.eos_token_id
        with self._model_lock, torch.inference_mode():
            if self.decoding.do_sample:
                torch.manual_seed(self.decoding.seed)  # the same call gives the same answers
            new_tokens = self.model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=self.processor.pad_token_id,
                **self.decoding.generate_kwargs(),
            )  # [B, N]
        return self.decode_answers(new_tokens, [max_new_tokens] * len(samples))

    def decode_answers(self, new_tokens: torch.Tensor, budgets: Sequence[int]) -> list[tuple[str, bool]]:
        """(text, truncated) per row of new tokens [B, N], each row cut at its own budget.

        Truncated: the budget ran out before EOS.
        """
        eos = self.tokenizer.eos_token_id
        rows = [row[:budget] for row, budget in zip(new_tokens.cpu(), budgets)]
        truncated = [bool((row != eos).all()) and len(row) >= budget for row, budget in zip(rows, budgets)]
        with self._text_lock:
            texts = self.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [(t.strip(), cut) for t, cut in zip(texts, truncated)]

    # ------------------------------------------------------------------ closed-set scoring

    def _answer_ids(self, task: str, label: str) -> list[int]:
        """Token ids of a candidate answer exactly as training renders a target, plus EOS."""
        text = get_task(task).format_target(label)
        with self._text_lock:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids + [self.tokenizer.eos_token_id]

    def _log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-softmax in float32 with placeholder tokens excluded, as generation excludes them."""
        placeholders = torch.tensor(list(self.model.placeholder_ids.values()), device=logits.device)
        logits = logits.float().index_fill(-1, placeholders, float("-inf"))  # out of place: outputs stay intact
        return torch.log_softmax(logits, dim=-1)

    def candidate_log_likelihoods(self, sample: dict[str, torch.Tensor], candidates: Sequence[str], task: str) -> torch.Tensor:
        """Total log-likelihood of each candidate answer given the sample's prompt: [K]."""
        batch = self._batch([sample])
        with self._model_lock, torch.inference_mode():
            embeds = self.model.inputs_embeds(
                batch["input_ids"], **{k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
            )  # [1, L, D]
            prompt = self.model.language(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=True)
            return self.rank_candidates(prompt.logits[:, -1], prompt.past_key_values, batch["attention_mask"],
                                        candidates, task)

    def rank_candidates(self, last_logits: torch.Tensor, cache, attention: torch.Tensor, candidates: Sequence[str],
                        task: str) -> torch.Tensor:
        """Total log-likelihood [K] of each candidate after a prompt already run through the LM.

        `last_logits` [1, V] are the prompt's last logits, `cache` its KV cache (consumed),
        `attention` [1, L] its mask. Shapes: K candidates, T longest candidate (tokens + EOS).
        """
        answers = [self._answer_ids(task, c) for c in candidates]
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

    def score(self, sample: dict[str, torch.Tensor], candidates: Sequence[str], task: str) -> dict[str, Any]:
        """Rank candidates by log-likelihood: {"label", "probabilities", "log_likelihoods"}.

        Probabilities are a softmax over the candidates' total log-likelihoods.
        """
        labels = candidate_labels(candidates)
        return scores_of(labels, self.candidate_log_likelihoods(sample, labels, task))

    # ------------------------------------------------------------------ records

    def _loaded_chunks(self, records: Iterable[Record], root) -> Iterator[list[_Loaded]]:
        """Chunks of loaded records; the next chunk's media decode while this one is answered."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nanoemox-media") as pool:
            pending = None
            for chunk in _chunks(records, self.batch_size):
                future = pool.submit(lambda c=chunk: [self._load(r, root) for r in c])
                if pending is not None:
                    yield pending.result()
                pending = future
            if pending is not None:
                yield pending.result()

    def _answer_chunk(self, loaded: list[_Loaded], decode: str) -> dict[int, dict[str, Any]]:
        """Answers of the readable records of one chunk, keyed by position in the chunk.

        Records that share a clip are answered together (`_answer_clip`); the others
        are batched by task across clips. Each answer: {"text", "scores"} when scored,
        {"text", "max_new_tokens", "truncated"} when generated.
        """
        groups: dict[Any, list[int]] = collections.defaultdict(list)
        for i, item in enumerate(loaded):
            if item.sample is not None:
                groups[item.group if item.group is not None else ("alone", i)].append(i)
        answers: dict[int, dict[str, Any]] = {}
        alone = []
        for rows in groups.values():
            if len(rows) > 1:
                answers.update(self._answer_clip(loaded, rows, decode))
            else:
                alone += rows
        answers.update(self._answer_by_task(loaded, sorted(alone), decode))
        return answers

    def _answer_by_task(self, loaded: list[_Loaded], rows: list[int], decode: str) -> dict[int, dict[str, Any]]:
        """One record per clip: scored one by one, or generated in batches of one task."""
        answers: dict[int, dict[str, Any]] = {}
        by_task: dict[str, list[int]] = collections.defaultdict(list)
        for i in rows:
            item = loaded[i]
            task = item.record.task
            if decode == "score" and task in SCORABLE_TASKS:
                result = self.score(item.sample, item.record.candidates or default_candidates(task), task)
                answers[i] = {"text": get_task(task).format_target(result["label"]), "scores": result["probabilities"]}
            else:
                by_task[task].append(i)
        for task, task_rows in by_task.items():
            budget = self.budget(task)
            generated = self._generate_batch([loaded[i].sample for i in task_rows], budget)
            answers.update({i: {"text": text, "max_new_tokens": budget, "truncated": cut}
                            for i, (text, cut) in zip(task_rows, generated)})
        return answers

    def _answer_clip(self, loaded: list[_Loaded], rows: list[int], decode: str) -> dict[int, dict[str, Any]]:
        """Several tasks of one clip: one encoder pass and one shared prompt prefix (`answer_shared`)."""
        items = [loaded[i] for i in rows]
        answers = self.answer_shared(self.features(items[0].sample), [item.sample["input_ids"].tolist() for item in items],
                                     [item.record.task for item in items],
                                     [item.record.candidates for item in items], decode)
        return dict(zip(rows, answers))

    def answer_shared(self, features: MediaFeatures, prompts: Sequence[Sequence[int]], tasks: Sequence[str],
                      candidates: Sequence[Sequence[str] | None], decode: str) -> list[dict[str, Any]]:
        """Answers of several tasks of one clip from its encoder features (`multitask.SharedClip`).

        `prompts[j]` are the token ids of task `tasks[j]`, `candidates[j]` its labels (None:
        `default_candidates`). Each answer: {"text", "scores"} when scored (closed-set tasks
        with `decode="score"`), {"text", "max_new_tokens", "truncated"} when generated; the
        generating tasks decode together.
        """
        from nanoemox.inference.multitask import SharedClip

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
                    generating.append((j, prompt, self.budget(task)))
            if generating:
                if self.decoding.do_sample:
                    torch.manual_seed(self.decoding.seed)
                budgets = [budget for _, _, budget in generating]
                new_tokens = clip.generate([p for _, p, _ in generating], budgets, self.decoding.generate_kwargs())
        if generating:
            for (j, _, budget), (text, cut) in zip(generating, self.decode_answers(new_tokens, budgets)):
                answers[j] = {"text": text, "max_new_tokens": budget, "truncated": cut}
        return answers

    def predict_records(
        self,
        records: Iterable[Record],
        root: str | os.PathLike = ".",
        tasks: Sequence[str] | None = None,
        progress: Callable[[int], Any] | None = None,
        decode: str = "generate",
    ) -> Iterator[Prediction]:
        """Answer records in order, `batch_size` at a time; each result unpacks as (record, text, error).

        `tasks` keeps only records of those tasks. `progress(n)` is called after every
        chunk with the number of records finished. With `decode="score"`, MSA, MER and MIR
        records are ranked over their candidates (or `default_candidates`).
        """
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
        unknown = sorted(set(tasks or ()) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; valid tasks: {', '.join(TASKS)}")
        selected = (r for r in records if tasks is None or r.task in tasks)
        for loaded in self._loaded_chunks(selected, root):
            answers = self._answer_chunk(loaded, decode)
            for i, item in enumerate(loaded):
                answer = answers.get(i, {})
                yield Prediction(item.record, answer.get("text"), item.error, item.flags or None,
                                 answer.get("scores"), answer.get("max_new_tokens"), answer.get("truncated", False))
            if progress is not None:
                progress(len(loaded))


def candidate_labels(candidates: Sequence[str]) -> list[str]:
    """Distinct, stripped, non-empty candidate labels; ValueError when none is left."""
    labels = list(dict.fromkeys(str(c).strip() for c in candidates if str(c).strip()))
    if not labels:
        raise ValueError("closed-set scoring needs at least one non-empty candidate label")
    return labels


def scores_of(labels: Sequence[str], totals: torch.Tensor) -> dict[str, Any]:
    """{"label", "probabilities", "log_likelihoods"} from candidates' total log-likelihoods [K]."""
    probs = torch.softmax(totals.double(), dim=0)
    best = int(torch.argmax(totals))
    return {
        "label": labels[best],
        "probabilities": {label: float(p) for label, p in zip(labels, probs)},
        "log_likelihoods": {label: float(v) for label, v in zip(labels, totals)},
    }
