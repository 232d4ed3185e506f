"""The OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions`, answered by
`inference.completion` with the same model slots, time-outs, upload clean-up and path
hiding as the service's own routes.

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,..."}},
        {"type": "text", "text": "[Recognition] I can't believe it!"}]}])

Answers: `message.content` is the answer (ERG: the reply, its reasoning in
`message.reasoning_content`, as vLLM's reasoning models); the choice's extension field
`nanoemox` holds the task, the raw answer, its parsed form, the candidates' probabilities
(MSA, MER, MIR), the media flags, the budget and the decoding; with the extension
`per_person` also `people`, the clip's people answered one by one (docs/people.md). With `stream` the answer
comes as server-sent `chat.completion.chunk` events ending with `data: [DONE]`; a failure
after the first event becomes an `{"error": ...}` event before `[DONE]`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from nanoemox.inference.completion import Completion, CompletionRequest, CompletionResult, Delta, with_sampling
from nanoemox.media.errors import MediaError
from nanoemox.serve.limits import ClosingStream, Held, ModelGate
from nanoemox.serve.openai_errors import OpenAIError, openai_error_responses
from nanoemox.serve.openai_media import ClipFiles, store_clip
from nanoemox.serve.openai_request import ChatCompletionRequest, Turn, read_turn, stop_strings
from nanoemox.serve.uploads import Uploads, file_problem
from nanoemox.inference.people import analyze_people
from nanoemox.tasks import TIMELINE_TASKS, get_task

logger = logging.getLogger(__name__)

OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
COMPLETION_200 = {"description": "a `chat.completion` object, or with `stream` server-sent `chat.completion.chunk` "
                                 "events ending with `data: [DONE]`",
                  "content": {"application/json": {"schema": {
                      "type": "object", "required": ["id", "object", "created", "model", "choices", "usage"],
                      "properties": {"object": {"const": "chat.completion"}, "choices": {"type": "array", "items": {
                          "type": "object", "required": ["index", "message", "finish_reason"],
                          "properties": {"finish_reason": {"enum": ["stop", "length"]}}}}}}},
                      "text/event-stream": {"schema": {  # one server-sent event
                          "type": "object", "required": ["data"], "properties": {"data": {
                              "type": "string", "description": "a chat.completion.chunk (JSON), an {error} "
                                                               "object, or [DONE] last"}}}}}}
MODELS_200 = {"description": "the served model in OpenAI's list shape", "content": {"application/json": {"schema": {
    "type": "object", "required": ["object", "data"], "properties": {"object": {"const": "list"}, "data": {
        "type": "array", "items": {"type": "object", "required": ["id", "object", "created", "owned_by"]}}}}}}}


def openai_router(predictor, gate: ModelGate, uploads: Uploads, model_name: str) -> APIRouter:
    """The OpenAI-compatible routes around one predictor served as `model_name`."""
    router = APIRouter()
    card = {"id": model_name, "object": "model", "created": int(time.time()), "owned_by": "nanoemox"}

    @router.get("/v1/models", responses={200: MODELS_200})
    async def models() -> dict[str, Any]:
        """The served model (OpenAI's list shape)."""
        return {"object": "list", "data": [card]}

    @router.post("/v1/chat/completions", response_model=None,
                 responses={200: COMPLETION_200, **openai_error_responses(400, 404, 413, 415, 422, 503, 504)})
    async def chat_completions(body: ChatCompletionRequest):
        """OpenAI chat completions with video, image and audio parts; see docs/inference.md."""
        if body.model not in (None, model_name):
            raise OpenAIError(404, f"the model {body.model!r} does not exist; this server serves {model_name!r}",
                              "model", "model_not_found")
        turn = read_turn(body)
        request = _completion_request(predictor, body, turn)
        clip = await store_clip(turn.media, uploads)
        request = dataclasses.replace(request, video=clip.video, audio=clip.audio)
        try:
            held = await gate.acquire(clip.remove)
        except HTTPException as exc:
            raise OpenAIError.from_http(exc) from None
        completion = Completion(predictor, request)
        try:
            await _step(held, completion.prepare, clip)
        except BaseException:
            held.release()
            raise
        answer = _Answer(body, turn, model_name)
        if not body.stream:
            try:
                result = await _step(held, completion.run, clip)
                people = await _step(held, lambda: _people(predictor, clip, turn), clip) if body.per_person else None
            finally:
                held.release()
            return JSONResponse(answer.body(result, people))
        stream = _Stream(answer, completion, held, clip)
        return EventStream(stream.events(), on_close=stream.close,
                           headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return router


def _people(predictor, clip: ClipFiles, turn: Turn) -> dict[str, Any]:
    """The clip's people with the window tasks answered per person (`analyze_people`), the turn's text as what is said."""
    result = analyze_people(predictor, clip.video, list(TIMELINE_TASKS), subtitle=turn.text)
    return result["people"]


def _completion_request(predictor, body: ChatCompletionRequest, turn: Turn) -> CompletionRequest:
    try:
        decoding = with_sampling(predictor.decoding, temperature=body.temperature, top_p=body.top_p, seed=body.seed)
        return CompletionRequest(
            task=turn.task, text=turn.text, history=turn.history, candidates=turn.candidates, decode=body.decode,
            decoding=decoding, max_tokens=body.max_completion_tokens or body.max_tokens, stop=stop_strings(body),
            logprobs=body.logprobs, top_logprobs=body.top_logprobs or 0)
    except ValueError as exc:
        raise OpenAIError(400, str(exc)) from None


async def _step(held: Held, fn, clip: ClipFiles) -> Any:
    """`fn()` in the held slot; its errors in OpenAI's shape, naming media as the client sent them."""
    try:
        return await held.step(fn)
    except HTTPException as exc:  # the request timeout
        raise OpenAIError.from_http(exc) from None
    except MediaError as exc:
        raise OpenAIError(400, clip.hide(file_problem(exc, clip.name_of(exc.path))), clip.params.get(exc.path)) from None
    except ValueError as exc:  # a prompt and budget the model cannot take
        raise OpenAIError(422, clip.hide(str(exc))) from None


class _Answer:
    """The response bodies of one request: the whole completion, or its stream's chunks."""

    def __init__(self, body: ChatCompletionRequest, turn: Turn, model_name: str):
        self.body_in, self.turn = body, turn
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model_name

    def head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def extension(self, result: CompletionResult) -> dict[str, Any]:
        """The choice's `nanoemox` field: what was asked and what the model saw."""
        out = {"task": result.task, "text": result.text, "parsed": result.parsed, "flags": result.flags,
               "max_tokens": result.max_tokens, "decoding": result.decoding,
               "not_read": {k: v for k, v in self.turn.ignored.items() if v}}
        if result.probabilities is not None:
            out["probabilities"] = result.probabilities
        return out

    @staticmethod
    def usage(result: CompletionResult) -> dict[str, int]:
        return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens}

    def body(self, result: CompletionResult, people: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if get_task(result.task).reply:
            message["reasoning_content"] = result.reasoning
        logprobs = {"content": [t.to_dict() for t in result.logprobs]} if result.logprobs is not None else None
        choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": result.finish_reason,
                  "nanoemox": self.extension(result)}
        if people is not None:
            choice["nanoemox"]["people"] = people
        return {**self.head("chat.completion"), "choices": [choice], "usage": self.usage(result)}

    def chunk(self, delta: dict[str, Any], logprobs: list | None = None, finish: str | None = None,
              extension: dict | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        if extension is not None:
            choice["nanoemox"] = extension
        out = {**self.head("chat.completion.chunk"), "choices": [choice]}
        if self.include_usage:
            out["usage"] = None
        return out

    @property
    def include_usage(self) -> bool:
        return bool(self.body_in.stream_options and self.body_in.stream_options.include_usage)


def _event(obj: Any) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False) if not isinstance(obj, str) else obj}\n\n".encode("utf-8")


class EventStream(ClosingStream):
    """Server-sent events that call `on_close()` however the response ends."""

    media_type = "text/event-stream"


class _Stream:
    """The events of one streamed completion; holds the model slot until `close`.

    Generation runs in the gate's pool and hands each delta to the event loop as it comes;
    a client that goes away stops the generation at its next token.
    """

    def __init__(self, answer: _Answer, completion: Completion, held: Held, clip: ClipFiles):
        self.answer, self.completion, self.held, self.clip = answer, completion, held, clip
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Delta] = asyncio.Queue()
        self.cancelled = False

    def _push(self, delta: Delta) -> None:  # called in the model's thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, delta)

    def _chunk(self, delta: Delta) -> bytes:
        fields = {k: v for k, v in (("reasoning_content", delta.reasoning), ("content", delta.content)) if v}
        logprobs = {"content": [t.to_dict() for t in delta.logprobs]} if self.answer.body_in.logprobs else None
        return _event(self.answer.chunk(fields, logprobs))

    async def events(self):
        try:
            yield _event(self.answer.chunk({"role": "assistant", "content": ""}))
            running = asyncio.ensure_future(_step(self.held, lambda: self.completion.run(self._push, lambda: self.cancelled),
                                                  self.clip))
            while not running.done() or not self.queue.empty():
                waiting = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({waiting, running}, return_when=asyncio.FIRST_COMPLETED)
                if waiting.done():
                    yield self._chunk(waiting.result())
                else:
                    waiting.cancel()
            result = running.result()
            yield _event(self.answer.chunk({}, finish=result.finish_reason, extension=self.answer.extension(result)))
            if self.answer.include_usage:
                yield _event({**self.answer.head("chat.completion.chunk"), "choices": [],
                              "usage": self.answer.usage(result)})
        except OpenAIError as exc:
            yield _event(exc.body())
        except Exception as exc:  # after the 200: the failure becomes an event
            logger.exception("streamed completion failed")
            yield _event(OpenAIError(500, self.clip.hide(f"{type(exc).__name__}: {exc}")).body())
        finally:
            self.cancelled = True  # a client gone mid-answer: generation stops at its next token
        yield _event("[DONE]")

    def close(self) -> None:
        self.cancelled = True
        self.held.release()
