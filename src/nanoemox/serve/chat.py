"""POST /v1/chat: the listener's next turn after a conversation, from a JSON body
`{message, history}` or a multipart form (message, history as JSON text, an optional clip);
answers with the reply and the extended history."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from nanoemox.inference import chat_reply
from nanoemox.media.errors import MediaError
from nanoemox.serve.forms import attached_file, is_form, text_field
from nanoemox.serve.limits import ModelGate
from nanoemox.serve.openapi import CHAT_BODY, error_responses
from nanoemox.serve.uploads import StoredFile, Uploads, file_problem


def chat_router(predictor, gate: ModelGate, uploads: Uploads) -> APIRouter:
    """The /v1/chat route around one predictor; model calls go through `gate`."""
    router = APIRouter()

    @router.post("/v1/chat", openapi_extra=CHAT_BODY, responses=error_responses(413, 415, 422, 503, 504))
    async def chat(request: Request):
        """The listener's next turn for `message` after `history`; returns it and the extended history."""
        message, history, clip = await chat_inputs(request, uploads)
        path, cleanup = (clip.path, clip.remove) if clip is not None else (None, None)
        try:
            answer = await gate.run(lambda: chat_reply(predictor, message, history, path), cleanup)
        except MediaError as exc:
            raise HTTPException(422, file_problem(exc, clip.name if clip is not None else None)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        new_history = history + [{"role": "speaker", "text": message}, {"role": "listener", "text": answer["reply"]}]
        return {**answer, "history": new_history}

    return router


async def chat_inputs(request: Request, uploads: Uploads) -> tuple[str, list[dict], StoredFile | None]:
    """(message, history, stored clip or None) from a JSON or a multipart body; 422 when unusable."""
    if not is_form(request):
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:
            problem = _json_problem(exc)
            raise HTTPException(422, f"the body must be JSON {{message, history}} or multipart ({problem})") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "the body must be a JSON object {message, history}")
        message, history = _check_chat(body.get("message"), body.get("history") or [])
        return message, history, None
    async with request.form() as form:
        try:
            history = json.loads(text_field(form, "history") or "[]")
        except (ValueError, RecursionError) as exc:
            problem = _json_problem(exc)
            raise HTTPException(422, f"history must be a JSON list of {{role, text}} turns ({problem})") from None
        message, history = _check_chat(text_field(form, "message"), history)
        upload = attached_file(form, "clip")
        return message, history, await uploads.save(upload) if upload is not None else None


def _json_problem(exc: ValueError | RecursionError) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _check_chat(message: Any, history: Any) -> tuple[str, list[dict]]:
    if not isinstance(message, str) or not message.strip():
        raise HTTPException(422, "message must be a non-empty string")
    if not isinstance(history, list):
        raise HTTPException(422, "history must be a list of {role: speaker | listener, text} turns")
    return message.strip(), history
