"""Batched inference with a trained Nano-EmoX model: the one `Predictor` that the
command line, the HTTP service and the evaluation harness share.

    predictor = Predictor.from_pretrained("runs/p3/final")
    sample = predictor.sample("mer", video="a.mp4", text="I did it!", candidates=["happy", "sad"])
    texts = predictor.generate([sample], "mer")
    for record, text, error in predictor.predict_records(records, root):
        ...
    predictor.score(sample, ["happy", "sad"], "mer")   # {"label": ..., "probabilities": {...}}

Two ways to answer:
- generation: plain greedy (or seeded sampling) decoding of left-padded batches, only the
  new tokens decoded, with a per-task token budget (the caller's, else the model folder's
  measured one, else `DEFAULT_MAX_NEW_TOKENS`; see `nanoemox.decoding`); an answer
  that reaches its budget without EOS is marked truncated;
- closed-set scoring (MSA, MER, MIR): every candidate answer, rendered exactly as
  training renders targets and followed by EOS, is ranked by its log-likelihood. The
  prompt runs through the language model once; its KV cache is then repeated over the
  candidates, which are scored together in one batched pass. The answer is always one
  of the candidates, so it can never be unparseable.

A record whose media cannot be read gives an error for that record only; the rest of
the batch goes on. Library code: no printing, callers report progress and errors.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from nanoemox.data.manifest import TASKS, Record
from nanoemox.decoding import DEFAULT_MAX_NEW_TOKENS, Decoding, read_budgets
from nanoemox.media.errors import MediaError
from nanoemox.tasks import SENTIMENTS, get_task, label_set

logger = logging.getLogger(__name__)

# Tasks with a fixed answer set, which closed-set scoring can rank.
SCORABLE_TASKS = ("msa", "mer", "mir")
DECODE_MODES = ("generate", "score")
# Extensions read as audio only (everything else is handed to the video reader).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg")
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values", "face_pixel_values", "audio_values")
FLOAT_KEYS = ("pixel_values", "face_pixel_values", "audio_values")


def default_candidates(task: str) -> list[str] | None:
    """Labels offered when the caller gives none: sentiments, 7 basic emotions, 20 MIntRec intents."""
    if task == "msa":
        return list(SENTIMENTS)
    if task == "mer":
        return label_set("ferv39k")  # anger, disgust, fear, happy, neutral, sad, surprise
    if task == "mir":
        return label_set("mintrec")
    return None


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 by default; "auto" chooses bfloat16 on a GPU that supports it."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "float32", "fp32"):
        return torch.float32
    if dtype == "auto":
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if use_bf16 else torch.float32
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
    return names[dtype]


def media_for(path: str | os.PathLike | None) -> dict[str, str | None]:
    """Manifest `media` entry for one input file (audio-only extensions go to the audio reader); None: no media."""
    if path is None:
        return {"video": None, "audio": None, "faces": None}
    text = str(path)
    kind = "audio" if Path(text).suffix.lower() in AUDIO_EXTENSIONS else "video"
    return {"video": None, "audio": None, "faces": None, kind: text}


@dataclass
class Prediction:
    """One record's outcome. Unpacks as `(record, text, error)`.

    `flags` describes the media the model saw (audio_present, video_present, faces_found:
    frames with a face); `scores` holds closed-set probabilities when the answer was scored;
    `max_new_tokens` is the budget of a generated answer and `truncated` says it ran out.
    """

    record: Record
    text: str | None
    error: str | None
    flags: dict[str, Any] | None = None
    scores: dict[str, float] | None = None
    max_new_tokens: int | None = None
    truncated: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.record, self.text, self.error))


@dataclass
class _Loaded:
    record: Record
    sample: dict[str, torch.Tensor] | None = None
    error: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)


def _flags(sample: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "audio_present": bool(sample["audio_present"]),
        "video_present": bool(sample["video_present"]),
        "faces_found": int(sample["faces_found"].sum()),
        "frames": int(sample["faces_found"].numel()),
    }


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


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

    @classmethod
    def from_pretrained(
        cls, model_dir: str | os.PathLike, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None, **kw: Any
    ) -> "Predictor":
        """Load the model and processor of a model folder onto `device` (default: CUDA if present)."""
        from nanoemox.model import NanoEmoX
        from nanoemox.processor import NanoEmoXProcessor

        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
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
        return _Loaded(record, sample, flags=_flags(sample))

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
        new_tokens = new_tokens.cpu()
        truncated = [(row != eos).all().item() and len(row) >= max_new_tokens for row in new_tokens]
        with self._text_lock:
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [(t.strip(), bool(cut)) for t, cut in zip(texts, truncated)]

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
        """Total log-likelihood of each candidate answer given the sample's prompt: [K].

        Shapes: L prompt tokens, K candidates, T longest candidate (tokens + EOS), V vocab.
        """
        answers = [self._answer_ids(task, c) for c in candidates]
        batch = self._batch([sample])
        k, t = len(answers), max(len(a) for a in answers)
        ids = torch.full((k, t), self.processor.pad_token_id, dtype=torch.long)
        mask = torch.zeros((k, t), dtype=torch.long)
        for row, answer in enumerate(answers):
            ids[row, : len(answer)] = torch.tensor(answer)
            mask[row, : len(answer)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        language = self.model.language
        with self._model_lock, torch.inference_mode():
            embeds = self.model.inputs_embeds(
                batch["input_ids"], **{k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
            )  # [1, L, D]
            prompt = language(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=True)
            cache = prompt.past_key_values
            cache.batch_repeat_interleave(k)  # the prompt's keys and values, once per candidate
            attention = torch.cat([batch["attention_mask"].expand(k, -1), mask], dim=1)  # [K, L + T]
            out = language(input_ids=ids, attention_mask=attention, past_key_values=cache, use_cache=True)
            first = self._log_probs(prompt.logits[:, -1])[0, ids[:, 0]]  # [K] first answer token
            rest = self._log_probs(out.logits[:, :-1]).gather(-1, ids[:, 1:, None])[..., 0]  # [K, T-1]
            rest = torch.where(mask[:, 1:].bool(), rest, torch.zeros_like(rest))  # padding adds nothing
            total = first + rest.sum(dim=1)
        return total.cpu()

    def score(self, sample: dict[str, torch.Tensor], candidates: Sequence[str], task: str) -> dict[str, Any]:
        """Rank candidates by log-likelihood: {"label", "probabilities", "log_likelihoods"}.

        Probabilities are a softmax over the candidates' total log-likelihoods.
        """
        labels = list(dict.fromkeys(str(c).strip() for c in candidates if str(c).strip()))
        if not labels:
            raise ValueError("closed-set scoring needs at least one non-empty candidate label")
        totals = self.candidate_log_likelihoods(sample, labels, task)
        probs = torch.softmax(totals.double(), dim=0)
        best = int(torch.argmax(totals))
        return {
            "label": labels[best],
            "probabilities": {label: float(p) for label, p in zip(labels, probs)},
            "log_likelihoods": {label: float(v) for label, v in zip(labels, totals)},
        }

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

        Each answer: {"text", "scores"} when scored, {"text", "max_new_tokens", "truncated"} when generated.
        """
        answers: dict[int, dict[str, Any]] = {}
        by_task: dict[str, list[int]] = collections.defaultdict(list)
        for i, item in enumerate(loaded):
            if item.sample is None:
                continue
            task = item.record.task
            if decode == "score" and task in SCORABLE_TASKS:
                candidates = item.record.candidates or default_candidates(task)
                result = self.score(item.sample, candidates, task)
                answers[i] = {"text": get_task(task).format_target(result["label"]),
                              "scores": result["probabilities"]}
            else:
                by_task[task].append(i)
        for task, rows in by_task.items():
            budget = self.budget(task)
            generated = self._generate_batch([loaded[i].sample for i in rows], budget)
            answers.update({i: {"text": text, "max_new_tokens": budget, "truncated": cut}
                            for i, (text, cut) in zip(rows, generated)})
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


class FeatureCachePredictor(Predictor):
    """A Predictor that reads the frozen encoders' outputs from a feature cache instead of media.

    Answers equal those of `Predictor` on the same clips (the cache holds exactly what
    the encoders compute), at a fraction of the cost when many records share clips.
    `transform(record, features) -> (record, features)` may alter a sample first, e.g.
    to mask a modality in an ablation.
    """

    def __init__(self, model, processor, cache, *, transform=None, **kw: Any):
        super().__init__(model, processor, **kw)
        self.cache = cache
        self.transform = transform

    def _load(self, record: Record, root: str | os.PathLike) -> _Loaded:
        from nanoemox.features import media_key

        key = media_key(record)
        error = self.cache.error(key)
        if error or key not in self.cache:
            return _Loaded(record, error=error or f"{key} is not in the feature cache")
        features = self.cache.get(key)
        if self.transform is not None:
            record, features = self.transform(record, features)
        with self._text_lock:
            encoded = self.processor.encode_text(record.task, record.text, record.history, record.candidates)
        sample = {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long), "features": features}
        return _Loaded(record, sample, flags=_flags(features))

    def _batch(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        from nanoemox.features import stack_features

        text = self.processor.collate([{"input_ids": s["input_ids"]} for s in samples], padding_side="left")
        features = stack_features([s["features"] for s in samples], dtype=self.dtype).to(self.device)
        return {"input_ids": text["input_ids"].to(self.device), "attention_mask": text["attention_mask"].to(self.device),
                "features": features}


# ---------------------------------------------------------------------- clips in, answers out


def clip_records(
    path: str | os.PathLike | None,
    tasks: Sequence[str] = TASKS,
    *,
    clip_id: str | None = None,
    subtitle: str | None = None,
    candidates: Sequence[str] | None = None,
    intents: Sequence[str] | None = None,
) -> list[Record]:
    """One record per task for one clip (or audio file); MER and MIR get candidate lists.

    `candidates` (MER) and `intents` (MIR) default to `default_candidates`. With `path`
    None the model answers from the subtitle alone (media flags say so).
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid tasks: {', '.join(TASKS)}")
    offered = {"mer": list(candidates or default_candidates("mer")), "mir": list(intents or default_candidates("mir"))}
    return [
        Record(
            id=clip_id or (Path(path).stem if path is not None else "text"),
            dataset="input",
            split="test",
            task=task,
            media=media_for(path),
            text=subtitle,
            candidates=offered.get(task),
            extra={"input": str(path) if path is not None else None},
        )
        for task in tasks
    ]


def answer_entry(task: str, text: str, candidates: Sequence[str] | None = None, scores: dict | None = None) -> dict[str, Any]:
    """The raw answer, its parsed form (`get_task(task).parse`) and scored probabilities if any."""
    entry: dict[str, Any] = {"text": text, "parsed": get_task(task).parse(text, candidates=candidates)}
    if scores is not None:
        entry["probabilities"] = scores
    return entry


def summarize(predictions: Sequence[Prediction]) -> dict[str, Any]:
    """One JSON-ready result for the predictions of one input: answers per task, media flags, errors."""
    first = predictions[0].record
    result: dict[str, Any] = {"id": first.id, "input": first.extra.get("input") or first.id}
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in predictions:
        task = p.record.task
        if p.error is not None:
            errors[task] = p.error
            continue
        answers[task] = answer_entry(task, p.text, p.record.candidates or default_candidates(task), p.scores)
        if p.truncated:  # the answer ran out of its token budget before it ended
            answers[task]["truncated"] = True
        result.update(p.flags or {})
    if answers:
        result["answers"] = answers
    if errors and not answers:
        result["error"] = next(iter(errors.values()))  # the shared media failed: one message says it
    elif errors:
        result["errors"] = errors
    return result


def analyze(
    predictor: Predictor,
    groups: Iterable[Sequence[Record]],
    root: str | os.PathLike = ".",
    decode: str = "generate",
    progress: Callable[[int], Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Answer groups of records (one group per input: a clip's tasks, or one manifest line).

    Yields one `summarize` result per group, in order, as soon as the group is answered.
    """
    tagged = (
        dataclasses.replace(r, extra={**r.extra, "_group": g})
        for g, group in enumerate(groups)
        for r in group
    )
    predictions = predictor.predict_records(tagged, root, progress=progress, decode=decode)
    for _, items in itertools.groupby(predictions, key=lambda p: p.record.extra["_group"]):
        items = list(items)
        for p in items:
            p.record.extra.pop("_group", None)
        yield summarize(items)


# ---------------------------------------------------------------------- empathetic chat


def chat_reply(
    predictor: Predictor,
    message: str,
    history: Sequence[dict] | None = None,
    clip: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The listener's next turn (ERG): {"reply", "think", "emotion", "text" (raw), "flags"}.

    `history` lists earlier turns as [{"role": "speaker" | "listener", "text": ...}],
    oldest first, the way the model was trained; `message` is the speaker's new turn.
    """
    for i, turn in enumerate(history or []):
        if not isinstance(turn, dict) or turn.get("role") not in ("speaker", "listener") or not isinstance(turn.get("text"), str):
            raise ValueError(f"history turn {i} must be {{'role': 'speaker' | 'listener', 'text': str}}, got {turn!r}")
    media = media_for(clip) if clip is not None else {}
    sample = predictor.sample(
        "erg", video=media.get("video"), audio=media.get("audio"), text=message, history=list(history or [])
    )
    text = predictor.generate([sample], "erg")[0]
    parsed = get_task("erg").parse(text)
    return {**parsed, "text": text, "flags": _flags(sample)}


class Conversation:
    """A multi-turn empathetic conversation: keeps the history as the model was trained on it."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.history: list[dict[str, str]] = []

    def send(self, message: str, clip: str | os.PathLike | None = None) -> dict[str, Any]:
        """Answer `message` (with an optional clip) and record both turns; the reply's reasoning is not kept."""
        answer = chat_reply(self.predictor, message, self.history, clip)
        self.history.append({"role": "speaker", "text": message})
        self.history.append({"role": "listener", "text": answer["reply"]})
        return answer

    def reset(self) -> None:
        self.history.clear()
