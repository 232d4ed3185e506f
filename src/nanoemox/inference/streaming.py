"""Answers as they are generated: text deltas that add up to the final answer, per-token
log-probabilities, stop strings and cancellation, all as transformers generation hooks.

    text = AnswerText("erg", stop=["\\n\\n"])
    reasoning, content = text.update(partial_raw_text)   # the new part of each, maybe empty
    final = text.finish(whole_raw_text)                  # FinalText; its deltas complete what was sent

    watcher = TokenWatcher(on_token, want_logprobs=True, top_logprobs=2)
    session.generate_ids(inputs, budget, decoding, **watcher.hooks(stop_when=lambda: done))

`AnswerText` never sends text it may have to take back: trailing white space, the start of
a stop string or of a `<think>`/`</think>` tag, an unfinished `[identifier]` and an
incomplete UTF-8 character are held until the next token settles them, and the final
answer is split exactly as the non-streamed one (`tasks.parsing.split_think` for ERG).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from nanoemox.tasks import get_task
from nanoemox.tasks.parsing import split_think, strip_identifiers

logger = logging.getLogger(__name__)

__all__ = ["AnswerText", "FinalText", "TokenLogprob", "TokenWatcher", "cut_at_stop"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to (without) the first stop string found, and whether one was found."""
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `marker` (any case)."""
    low, mark = text.lower(), marker.lower()
    for n in range(min(len(low), len(mark) - 1), 0, -1):
        if low.endswith(mark[:n]):
            return n
    return 0


@dataclass(frozen=True)
class FinalText:
    """A whole answer: `text` (cut at a stop string), its `reasoning` (ERG) and `content`, and the last deltas."""

    text: str
    reasoning: str | None
    content: str
    stopped: bool
    reasoning_delta: str = ""
    content_delta: str = ""


class AnswerText:
    """The growing answer of one task split as the final answer will be (see the module docstring)."""

    def __init__(self, task: str, stop: Sequence[str] = ()):
        self.task = task
        self.reply = get_task(task).reply  # a reply with a <think> part: reasoning and content come apart
        self.stop = tuple(s for s in stop if s)
        self.sent_reasoning = ""
        self.sent_content = ""

    def whole(self, raw: str) -> tuple[str, str | None, str, bool]:
        """(text, reasoning, content, stopped) of a whole answer, exactly as it is returned unstreamed."""
        text, stopped = cut_at_stop(raw.strip(), self.stop)
        text = text.strip()
        if self.reply:
            reasoning, content = split_think(text)
            return text, reasoning, content, stopped
        return text, None, text, stopped

    def update(self, raw: str) -> tuple[str, str]:
        """(new reasoning, new content) that can be sent now for the raw text generated so far."""
        return self._advance(*self._provisional(raw))

    def finish(self, raw: str) -> FinalText:
        """The whole answer and what of it was not sent yet."""
        text, reasoning, content, stopped = self.whole(raw)
        reasoning_delta, content_delta = self._advance(reasoning or "", content, final=True)
        return FinalText(text, reasoning, content, stopped, reasoning_delta, content_delta)

    def _advance(self, reasoning: str, content: str, final: bool = False) -> tuple[str, str]:
        deltas = []
        for name, now in (("sent_reasoning", reasoning), ("sent_content", content)):
            sent = getattr(self, name)
            if now.startswith(sent):
                deltas.append(now[len(sent):])
                setattr(self, name, now)
            else:
                deltas.append("")
                if final:  # cannot be taken back: say so rather than pretend
                    logger.warning("streamed %s %r is not a beginning of the final answer %r", name[5:], sent, now)
        return deltas[0], deltas[1]

    def _provisional(self, raw: str) -> tuple[str, str]:
        text, stopped = cut_at_stop(raw.lstrip(), self.stop)
        if not stopped:
            text = text[: len(text) - max((_partial_suffix(text, s) for s in self.stop), default=0)]
        text = text.rstrip().rstrip("\ufffd").rstrip()
        if not self.reply:
            return "", text
        opened = text.rfind("[")
        if opened >= 0 and "]" not in text[opened:]:
            text = text[:opened]  # an identifier may be on its way: the final answer drops those
        text = strip_identifiers(text)
        start = text.lower().find(THINK_OPEN)
        if start < 0:
            return "", text[: len(text) - _partial_suffix(text, THINK_OPEN)].rstrip()
        inner = text[start + len(THINK_OPEN):]
        end = inner.lower().find(THINK_CLOSE)
        if end < 0:
            return inner[: len(inner) - _partial_suffix(inner, THINK_CLOSE)].strip(), ""
        return inner[:end].strip(), inner[end + len(THINK_CLOSE):].strip()


@dataclass
class TokenLogprob:
    """One generated token as the OpenAI API describes it: text, log-probability, bytes, the most likely alternatives."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "bytes": self.bytes, "top_logprobs": self.top_logprobs}


class _LastScores(LogitsProcessor):
    """Keeps the log-softmax of the step's scores (after placeholder suppression, before temperature and top-p)."""

    def __init__(self):
        self.log_probs: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.log_probs = torch.log_softmax(scores[0].float(), dim=-1).cpu()
        return scores


class _Streamer(BaseStreamer):
    """Hands each new token (batch of 1) to a callback; the first `put` is the prompt and is skipped."""

    def __init__(self, on_token: Callable[[int], None]):
        self.on_token = on_token
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.on_token(int(value.reshape(-1)[0]))

    def end(self) -> None:
        pass


class _StopWhen(StoppingCriteria):
    """Stops generation (every row) as soon as `condition()` is true."""

    def __init__(self, condition: Callable[[], bool]):
        self.condition = condition

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), bool(self.condition()), dtype=torch.bool, device=input_ids.device)


class TokenWatcher:
    """Generation hooks for one answer (batch of 1): each token's id to `on_token(id, logprob)` as it is chosen.

    With `want_logprobs` each token comes with its `TokenLogprob` (the log-probabilities
    the model gives after placeholder tokens are excluded and a repetition penalty, if any,
    is applied, before temperature and top-p reshape them for sampling: for greedy decoding
    exactly the model's distribution), else with None.
    """

    def __init__(self, tokenizer, on_token: Callable[[int, TokenLogprob | None], None], want_logprobs: bool = False,
                 top_logprobs: int = 0):
        self.tokenizer = tokenizer
        self.on_token = on_token
        self.want_logprobs = bool(want_logprobs)
        self.top_logprobs = int(top_logprobs)
        self.scores = _LastScores()

    def hooks(self, stop_when: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Keyword arguments for `Session.generate_ids`."""
        hooks: dict[str, Any] = {"streamer": _Streamer(self._token)}
        if self.want_logprobs:
            hooks["logits_processor"] = LogitsProcessorList([self.scores])
        if stop_when is not None:
            hooks["stopping_criteria"] = StoppingCriteriaList([_StopWhen(stop_when)])
        return hooks

    def _token(self, token_id: int) -> None:
        self.on_token(token_id, self._logprob(token_id) if self.want_logprobs else None)

    def _logprob(self, token_id: int) -> TokenLogprob:
        log_probs = self.scores.log_probs
        entry = self._entry(token_id, float(log_probs[token_id]))
        if self.top_logprobs:
            values, ids = torch.topk(log_probs, self.top_logprobs)
            entry.top_logprobs = [self._entry(int(i), float(v)).to_dict() for v, i in zip(values, ids)
                                  if math.isfinite(float(v))]
            for item in entry.top_logprobs:
                item.pop("top_logprobs")
        return entry

    def _entry(self, token_id: int, logprob: float) -> TokenLogprob:
        text = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return TokenLogprob(text, logprob if math.isfinite(logprob) else -9999.0, list(text.encode("utf-8")))
