"""The Nano-EmoX HTTP service (FastAPI): analyze clips, chat, health, and a small web page.

    POST /v1/analyze   multipart: clip (file), tasks, subtitle, candidates, intents, decode
    POST /v1/chat      JSON {message, history, clip: none} or multipart (message, history as
                       JSON text, optional clip file); answers with the reply and the new history
    GET  /health       liveness and load
    GET  /             the web page (static HTML + JS in nanoemox/serve/static)
    GET  /openapi.json the API description (FastAPI)

Limits (`ServeSettings`): upload size (413), media types by extension and content type
(415), a concurrency limit with a queue timeout (503), a per-request timeout (504).
Any body the service cannot use (no clip and no subtitle, a file where text belongs,
JSON nested too deeply, ...) is a 422; no client input gives a 5xx. Every status is
described in the OpenAPI document. Uploads are written to a per-request temporary
folder that is always removed.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile  # what request.form() yields (FastAPI's is a subclass)

from nanoemox.data.manifest import TASKS
from nanoemox.inference import AUDIO_EXTENSIONS, DECODE_MODES, VIDEO_EXTENSIONS, analyze, chat_reply, clip_records
from nanoemox.media.errors import MediaError
from nanoemox.serve.limits import BodyLimitMiddleware, ModelGate

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Content types browsers and clients send for media; octet-stream when they do not know.
ALLOWED_TYPE_PREFIXES = ("video/", "audio/")
GENERIC_TYPES = ("application/octet-stream", "")
FORM_SLACK = 64 * 1024  # multipart boundaries and text fields on top of the clip itself
COPY_CHUNK = 1 << 20


@dataclass
class ServeSettings:
    """Service limits; the defaults suit one GPU serving short clips."""

    max_upload_bytes: int = 200 * 1024 * 1024
    request_timeout: float = 300.0
    max_concurrency: int = 1
    queue_timeout: float = 10.0
    tmp_dir: str | None = None  # where uploads are kept while answered (default: system temp)
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _text(form, name: str) -> str | None:
    """A text field of a form; a file sent in its place is a 422."""
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise HTTPException(422, f"{name} must be a text field, not a file")
    return value


def _split(text: str | None) -> list[str] | None:
    items = [x.strip() for x in str(text or "").split(",") if x.strip()]
    return items or None


def _tasks(text: str | None) -> list[str]:
    tasks = _split(text) or list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise HTTPException(422, f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    return tasks


class Uploads:
    """Checks an uploaded clip and stores it in a fresh temporary folder."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings

    def check_type(self, upload: UploadFile) -> str:
        """The file's extension, or 415 when its name or content type is not an allowed media type."""
        suffix = Path(upload.filename or "").suffix.lower()
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        if suffix not in self.settings.extensions:
            raise HTTPException(415, f"{upload.filename!r}: unsupported file type; send one of {', '.join(self.settings.extensions)}")
        if not content_type.startswith(ALLOWED_TYPE_PREFIXES) and content_type not in GENERIC_TYPES:
            raise HTTPException(415, f"{upload.filename!r}: content type {content_type!r} is not audio or video")
        return suffix

    async def save(self, upload: UploadFile) -> tuple[Path, Path]:
        """(temporary folder, stored clip); the folder is removed again on any error here."""
        suffix = self.check_type(upload)
        folder = Path(tempfile.mkdtemp(prefix="nanoemox-upload-", dir=self.settings.tmp_dir))
        path = folder / f"clip{suffix}"
        try:
            written = 0
            with open(path, "wb") as out:
                while chunk := await upload.read(COPY_CHUNK):
                    written += len(chunk)
                    if written > self.settings.max_upload_bytes:
                        raise HTTPException(413, f"clip larger than the limit of {self.settings.max_upload_bytes} bytes")
                    out.write(chunk)
            if written == 0:
                raise HTTPException(422, f"{upload.filename!r} is empty")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder, path


def create_app(predictor, settings: ServeSettings | None = None, model_name: str = "nanoemox") -> FastAPI:
    """The service around one Predictor (model calls are serialised through a `ModelGate`)."""
    settings = settings or ServeSettings()
    gate = ModelGate(settings.max_concurrency, settings.queue_timeout, settings.request_timeout)
    uploads = Uploads(settings)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        gate.close()

    app = FastAPI(title="Nano-EmoX", version=_version(), description=__doc__.split("\n\n")[0], lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + FORM_SLACK)
    app.state.gate, app.state.settings = gate, settings
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, the loaded model and how many model calls are running."""
        return {"status": "ok", "model": model_name, "device": str(predictor.device), "running": gate.running,
                "max_concurrency": gate.limit, "tasks": list(TASKS)}

    _add_analyze(app, predictor, gate, uploads)
    _add_chat(app, predictor, gate, uploads)
    return app


def _version() -> str:
    from nanoemox import __version__

    return __version__


def _cleanup(folder: Path | None):
    return (lambda: shutil.rmtree(folder, ignore_errors=True)) if folder is not None else None


def _add_analyze(app: FastAPI, predictor, gate: ModelGate, uploads: Uploads) -> None:
    @app.post("/v1/analyze", openapi_extra=_ANALYZE_BODY, responses=_responses(413, 415, 422, 503, 504))
    async def analyze_clip(request: Request):
        """Answer the requested tasks for one uploaded clip (same JSON as `nanoemox analyze --json`)."""
        if not request.headers.get("content-type", "").startswith(FORM_TYPES):
            raise HTTPException(422, "send a multipart/form-data body with a `clip` file and/or a `subtitle` field")
        async with request.form() as form:
            tasks = _tasks(_text(form, "tasks"))
            decode = str(_text(form, "decode") or "generate")
            if decode not in DECODE_MODES:
                raise HTTPException(422, f"decode must be one of {DECODE_MODES}, got {decode!r}")
            options = dict(
                subtitle=(str(_text(form, "subtitle") or "").strip() or None),
                candidates=_split(_text(form, "candidates")),
                intents=_split(_text(form, "intents")),
            )
            upload = form.get("clip")
            upload = upload if isinstance(upload, UploadFile) and upload.filename else None
            if upload is None and options["subtitle"] is None:
                raise HTTPException(422, "nothing to analyze: send a `clip` file, a `subtitle`, or both")
            folder, path = await uploads.save(upload) if upload is not None else (None, None)
        name = upload.filename if upload is not None else None
        records = clip_records(path, tasks, clip_id=Path(name).stem if name else "text", **options)
        result = await gate.run(lambda: next(analyze(predictor, [records], decode=decode)), _cleanup(folder))
        result["input"] = name
        _hide_paths(result, path, name)
        return JSONResponse(result, status_code=422 if "error" in result else 200)


def _hide_paths(result: dict, path: Path | None, name: str | None) -> None:
    """Error messages name the uploaded file as the client called it, not the server's temp path."""
    if path is None:
        return
    if "error" in result:
        result["error"] = result["error"].replace(str(path), str(name))
    for task, message in result.get("errors", {}).items():
        result["errors"][task] = message.replace(str(path), str(name))


def _add_chat(app: FastAPI, predictor, gate: ModelGate, uploads: Uploads) -> None:
    @app.post("/v1/chat", openapi_extra=_CHAT_BODY, responses=_responses(413, 415, 422, 503, 504))
    async def chat(request: Request):
        """The listener's next turn for `message` after `history`; returns it and the extended history."""
        message, history, name, folder, path = await _chat_inputs(request, uploads)
        try:
            answer = await gate.run(lambda: chat_reply(predictor, message, history, path), _cleanup(folder))
        except MediaError as exc:
            raise HTTPException(422, f"{name}: {exc.problem}; {exc.advice}") from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        new_history = history + [{"role": "speaker", "text": message}, {"role": "listener", "text": answer["reply"]}]
        return {**answer, "history": new_history}


def _check_chat(message: Any, history: Any) -> tuple[str, list[dict]]:
    if not isinstance(message, str) or not message.strip():
        raise HTTPException(422, "message must be a non-empty string")
    if not isinstance(history, list):
        raise HTTPException(422, "history must be a list of {role: speaker | listener, text} turns")
    return message.strip(), history


async def _chat_inputs(request: Request, uploads: Uploads):
    """(message, history, clip name, temp folder, clip path) from a JSON or a multipart body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(FORM_TYPES):
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:
            problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise HTTPException(422, f"the body must be JSON {{message, history}} or multipart ({problem})") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "the body must be a JSON object {message, history}")
        message, history = _check_chat(body.get("message"), body.get("history") or [])
        return message, history, None, None, None
    async with request.form() as form:
        try:
            history = json.loads(_text(form, "history") or "[]")
        except (ValueError, RecursionError) as exc:
            problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise HTTPException(422, f"history must be a JSON list of {{role, text}} turns ({problem})") from None
        message, history = _check_chat(_text(form, "message"), history)
        upload = form.get("clip")
        if not (isinstance(upload, UploadFile) and upload.filename):
            return message, history, None, None, None
        folder, path = await uploads.save(upload)
        return message, history, upload.filename, folder, path


_STATUS = {
    413: "the body (clip) is larger than the service's upload limit",
    415: "the clip's file type or content type is not audio or video",
    422: "the request cannot be used (no input, a bad field, unreadable media: see `detail` or `error`)",
    503: "the model is busy: every slot stayed taken for the queue timeout; retry later",
    504: "the model did not answer within the request timeout",
}
_ERROR_BODY = {"type": "object", "properties": {"detail": {"type": "string"}, "error": {"type": "string"}}}


def _responses(*codes: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses an endpoint returns."""
    return {code: {"description": _STATUS[code], "content": {"application/json": {"schema": _ERROR_BODY}}}
            for code in codes}


# OpenAPI descriptions of the two bodies, which the handlers read themselves (they accept
# several encodings, so FastAPI cannot infer them).
_TURN = {"type": "object", "required": ["role", "text"],
         "properties": {"role": {"enum": ["speaker", "listener"]}, "text": {"type": "string"}}}
_ANALYZE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "anyOf": [{"required": ["clip"]}, {"required": ["subtitle"]}],  # something to analyze
    "properties": {
        "clip": {"type": "string", "format": "binary", "description": "video or audio file"},
        "tasks": {"type": "string", "description": "comma-separated subset of " + ",".join(TASKS), "default": ",".join(TASKS)},
        "subtitle": {"type": "string", "description": "what is said in the clip"},
        "candidates": {"type": "string", "description": "MER labels, comma-separated (default: 7 basic emotions)"},
        "intents": {"type": "string", "description": "MIR labels, comma-separated (default: 20 MIntRec intents)"},
        "decode": {"type": "string", "enum": list(DECODE_MODES), "default": "generate"},
    },
}}}}}
_CHAT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["message"], "properties": {
        "message": {"type": "string"}, "history": {"type": "array", "items": _TURN}}}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["message"], "properties": {
        "message": {"type": "string"},
        "history": {"type": "string", "description": "JSON list of {role, text} turns"},
        "clip": {"type": "string", "format": "binary"}}}},
}}}
