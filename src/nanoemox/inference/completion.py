"""One chat turn answered with every control a chat-completions API offers: a token budget,
stop strings, sampling with a seed, streamed deltas, per-token log-probabilities, and for
closed-set tasks the candidates' probabilities. The OpenAI-compatible route of the
service stands on it; it is library code and usable alone:

    request = CompletionRequest(task="mer", text="I did it!", video="clip.mp4", logprobs=True)
    result = complete(predictor, request, on_delta=lambda d: print(d.content, end=""))
    result.content, result.finish_reason, result.probabilities, result.prompt_tokens

What the model reads is what `nanoemox analyze` (one task of a clip) and `nanoemox chat`
(ERG with the conversation so far) give it, so answers equal theirs for the same clip,
task and decoding: MER and MIR get the candidate list in the prompt (the default ones when
none are given), ERG the earlier turns as the dialogue. The encoders run once; the
candidates of MSA, MER and MIR are also ranked from the same encoder outputs (one more
language-model pass). Media are decoded for this request alone (no cache across requests).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from nanoemox.decoding import Decoding
from nanoemox.inference.common import DECODE_MODES, candidate_labels, media_flags, scores_of
from nanoemox.inference.sources import MediaSource
from nanoemox.inference.streaming import AnswerText, TokenLogprob, TokenWatcher
from nanoemox.tasks import REPLY_TASK, SCORABLE_TASKS, TASK_NAMES, default_candidates, get_task

__all__ = ["Completion", "CompletionRequest", "CompletionResult", "Delta", "complete"]

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class CompletionRequest:
    """What to answer and how.

    `text` is the subtitle (ERG: the speaker's new turn), `history` the earlier turns
    ([{"role": "speaker" | "listener", "text"}], read by ERG), `video`/`audio` the clip's
    files (either may be None; an image file is read as a one-frame video). `candidates`
    are MER's emotions or MIR's intents (default: the task's own). `decode="score"` answers
    a closed-set task with its most likely candidate instead of generating. `decoding`
    holds the sampling settings and budgets; `max_tokens` overrides the task's budget.
    """

    task: str = REPLY_TASK
    text: str | None = None
    history: Sequence[dict] = ()
    video: str | os.PathLike | None = None
    audio: str | os.PathLike | None = None
    candidates: Sequence[str] | None = None
    decode: str = "generate"
    decoding: Decoding = field(default_factory=Decoding)
    max_tokens: int | None = None
    stop: Sequence[str] = ()
    logprobs: bool = False
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; choose from {', '.join(TASK_NAMES)}")
        if self.decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {self.decode!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 <= self.top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be between 0 and 20, got {self.top_logprobs}")
        for i, turn in enumerate(self.history):
            if not isinstance(turn, dict) or turn.get("role") not in ("speaker", "listener") \
                    or not isinstance(turn.get("text"), str):
                raise ValueError(f"history turn {i} must be {{'role': 'speaker' | 'listener', 'text': str}}, got {turn!r}")

    def offered(self) -> list[str] | None:
        """The candidates the prompt lists (MER, MIR: the given ones, else the task's default)."""
        if not get_task(self.task).takes_candidates:
            return None
        return candidate_labels(self.candidates) if self.candidates else default_candidates(self.task)


@dataclass
class Delta:
    """A piece of a streamed answer: new reasoning (ERG), new content, and the log-probabilities of new tokens."""

    reasoning: str = ""
    content: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class CompletionResult:
    """An answer. `text` is the raw answer (cut at a stop string); ERG splits it into `reasoning` and `content`.

    `finish_reason`: "length" when the budget ran out first, else "stop" (end of answer or
    a stop string). `prompt_tokens` counts every token the language model read, the media
    placeholders included; `completion_tokens` the tokens generated, the end-of-answer
    token included (a scored answer: its candidate's tokens). `probabilities`: the
    candidates' (closed-set tasks). `flags`: what the model saw of the media.
    """

    task: str
    text: str
    reasoning: str | None
    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    max_tokens: int
    parsed: Any
    flags: dict[str, Any]
    decoding: dict[str, Any]
    probabilities: dict[str, float] | None = None
    logprobs: list[TokenLogprob] | None = None


class Completion:
    """One request answered in two steps: `prepare` (media and prompt) and `run` (the answer).

    `prepare` raises `MediaError` for an unusable file and ValueError for a request the
    model cannot take, before anything is generated; `run` may stream.
    """

    def __init__(self, predictor, request: CompletionRequest):
        self.predictor = predictor
        self.session = predictor.session
        self.request = request
        self.inputs: dict[str, Any] | None = None

    def prepare(self) -> "Completion":
        request, session = self.request, self.session
        source = MediaSource(cache_size=0)
        sample = source.sample(session, request.task, video=request.video, audio=request.audio, text=request.text,
                               history=list(request.history), candidates=request.offered())
        self.flags = media_flags(sample)
        self.prompt_tokens = int(sample["input_ids"].numel())
        self.budget = request.max_tokens or request.decoding.budget(request.task)
        context = getattr(getattr(session.model.language, "config", None), "max_position_embeddings", None)
        if context is not None and self.prompt_tokens + self.budget > context:
            raise ValueError(f"the prompt ({self.prompt_tokens} tokens, media included) and max_tokens "
                             f"({self.budget}) exceed the model's context of {context} tokens")
        features = source.features(session, sample)  # the encoders run once, for the answer and the ranking
        text = session.processor.collate([{"input_ids": sample["input_ids"]}], padding_side="left")
        self.inputs = session.model_inputs({**text, "features": features})
        return self

    def run(self, on_delta: Callable[[Delta], None] | None = None,
            cancelled: Callable[[], bool] | None = None) -> CompletionResult:
        """The answer; `on_delta` gets its pieces as they are generated, `cancelled()` true stops generation early."""
        if self.inputs is None:
            self.prepare()
        request = self.request
        scorable = request.task in SCORABLE_TASKS
        if request.decode == "score" and scorable:
            result = self._scored(self._rank())
            if on_delta is not None:
                on_delta(Delta(content=result.content))
            return result
        result = self._generate(on_delta, cancelled)
        if scorable and not (cancelled and cancelled()):  # ranked after the answer: streaming starts sooner
            result.probabilities = self._rank()["probabilities"]
        return result

    # ------------------------------------------------------------------ the two ways to answer

    def _rank(self) -> dict[str, Any]:
        labels = candidate_labels(self.request.offered() or default_candidates(self.request.task))
        return scores_of(labels, self.session.log_likelihoods(self.inputs, labels, self.request.task))

    def _scored(self, ranked: dict[str, Any]) -> CompletionResult:
        task = get_task(self.request.task)
        text = task.format_target(ranked["label"])
        tokens = len(self.session.answer_ids(self.request.task, ranked["label"]))
        return self._result(text, None, text, "stop", tokens, ranked["probabilities"], None)

    def _generate(self, on_delta, cancelled) -> CompletionResult:
        request, session = self.request, self.session
        answer = AnswerText(request.task, request.stop)
        tokens: list[int] = []
        logprobs: list[TokenLogprob] = []
        unsent: list[TokenLogprob] = []
        state = {"stopped": False}
        eos = session.tokenizer.eos_token_id

        def on_token(token_id: int, logprob: TokenLogprob | None) -> None:
            if token_id == eos:
                return
            tokens.append(token_id)
            if logprob is not None:
                logprobs.append(logprob)
                unsent.append(logprob)
            raw = session.tokenizer.decode(tokens, skip_special_tokens=True)
            if request.stop and any(s in raw for s in request.stop):
                state["stopped"] = True
            if on_delta is not None:
                reasoning, content = answer.update(raw)
                if reasoning or content:
                    on_delta(Delta(reasoning, content, unsent[:]))
                    unsent.clear()

        hooks: dict[str, Any] = {}
        if on_delta is not None or request.logprobs or request.stop or cancelled is not None:
            watcher = TokenWatcher(session.tokenizer, on_token, request.logprobs, request.top_logprobs)
            hooks = watcher.hooks(stop_when=lambda: state["stopped"] or bool(cancelled and cancelled()))
        new_tokens = session.generate_ids(self.inputs, self.budget, request.decoding, **hooks)
        (raw, truncated), = session.decode(new_tokens, [self.budget])
        generated = new_tokens[0].tolist()[: self.budget]
        count = generated.index(eos) + 1 if eos in generated else len(generated)
        final = answer.finish(raw)
        if on_delta is not None and (final.reasoning_delta or final.content_delta or unsent):
            on_delta(Delta(final.reasoning_delta, final.content_delta, unsent[:]))
        finish = "stop" if final.stopped or not truncated else "length"
        return self._result(final.text, final.reasoning, final.content, finish, count, None,
                            logprobs if request.logprobs else None)

    def _result(self, text, reasoning, content, finish, completion_tokens, probabilities, logprobs) -> CompletionResult:
        request = self.request
        parsed = get_task(request.task).parse(text, candidates=request.offered() or default_candidates(request.task))
        return CompletionResult(
            task=request.task, text=text, reasoning=reasoning, content=content, finish_reason=finish,
            prompt_tokens=self.prompt_tokens, completion_tokens=completion_tokens, max_tokens=self.budget,
            parsed=parsed, flags=self.flags, decoding=request.decoding.effective(), probabilities=probabilities,
            logprobs=logprobs,
        )


def complete(predictor, request: CompletionRequest, on_delta: Callable[[Delta], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> CompletionResult:
    """Answer `request` with `predictor` (`Completion.prepare`, then `run`)."""
    return Completion(predictor, request).prepare().run(on_delta, cancelled)


def with_sampling(decoding: Decoding, *, temperature: float | None, top_p: float | None, seed: int | None) -> Decoding:
    """`decoding` (the server's budgets) with a request's sampling: greedy unless `temperature` > 0.

    `top_p` acts only when sampling; `seed` (default 0) makes a sampled answer repeatable.
    """
    if temperature is None or temperature == 0:
        return dataclasses.replace(decoding, do_sample=False, temperature=None, top_p=None, top_k=None)
    return dataclasses.replace(decoding, do_sample=True, temperature=float(temperature),
                               top_p=None if top_p is None else float(top_p), top_k=None,
                               seed=decoding.seed if seed is None else int(seed))
