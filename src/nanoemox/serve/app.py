"""The Nano-EmoX HTTP service (FastAPI): analyze clips, chat, timelines, health, a small web page.

    POST /v1/analyze   multipart: clip (file), tasks, subtitle, candidates, intents, decode
    POST /v1/chat      JSON {message, history, clip: none} or multipart (message, history as
                       JSON text, optional clip file); answers with the reply and the new history
    POST /v1/timeline  multipart: clip (file), subtitles (.srt/.vtt file), tasks, labels, window,
                       hop; streams NDJSON lines: a header, one line per window as it is
                       answered, then the segments (an `error` line if the run fails midway)
    GET  /v1/models            the served model, OpenAI-compatible (`openai_api`)
    POST /v1/chat/completions  OpenAI-compatible chat completions with video, image and audio
                               parts, streaming, logprobs; errors in OpenAI's shape
    WS   /v1/live      live analysis: media as they are captured in, one answer per hop of a
                       rolling window out (`live`; the protocol in docs/live.md)
    GET  /v1/tasks     the tasks the model answers (the task registry): name, description,
                       identifier, default candidates, whether candidates, timelines, a reply apply
    GET  /health       liveness and load
    GET  /             the web page (static HTML + JS in nanoemox/serve/static)
    GET  /openapi.json the API description (FastAPI)

This module sets the app up and wires the routes; each endpoint lives in its own module
(`analyze`, `chat`, `timeline`, `live`, `openai_api` with `openai_request`, `openai_media` and
`openai_errors`), with uploads in `uploads`, form fields in `forms`, the OpenAPI bodies in
`openapi` and the guards in `limits`.

Limits (`ServeSettings`): upload size (413), media types by extension and content type
(415), a concurrency limit with a queue timeout (503), a per-request timeout (504).
Any body the service cannot use (no clip and no subtitle, a file where text belongs,
JSON nested too deeply, ...) is a 422; no client input gives a 5xx. Every status is
described in the OpenAPI document. Uploads are written to a per-request temporary
folder that is always removed.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from nanoemox import __version__
from nanoemox.serve.analyze import analyze_router
from nanoemox.serve.chat import chat_router
from nanoemox.serve.limits import BodyLimitMiddleware, ModelGate
from nanoemox.serve.live import live_router
from nanoemox.serve.openai_api import OPENAI_PATHS, openai_router
from nanoemox.serve.openai_errors import OpenAIError, openai_error_handler, validation_problem
from nanoemox.serve.openapi import TaskList
from nanoemox.serve.settings import FORM_SLACK, ServeSettings
from nanoemox.serve.timeline import timeline_router
from nanoemox.serve.uploads import Uploads
from nanoemox.tasks import TASK_NAMES, describe_tasks

__all__ = ["ServeSettings", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"


def create_app(predictor, settings: ServeSettings | None = None, model_name: str = "nanoemox") -> FastAPI:
    """The service around one Predictor (model calls are serialised through a `ModelGate`)."""
    settings = settings or ServeSettings()
    gate = ModelGate(settings.max_concurrency, settings.queue_timeout, settings.request_timeout)
    uploads = Uploads(settings)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        gate.close()

    app = FastAPI(title="Nano-EmoX", version=__version__, description=__doc__.split("\n\n")[0], lifespan=lifespan)
    # Chat completions carry media as base64 in JSON: 4 bytes for every 3 of the file.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + FORM_SLACK,
                       path_limits={"/v1/chat/completions": settings.max_upload_bytes * 4 // 3 + FORM_SLACK},
                       openai_paths=OPENAI_PATHS)
    app.add_exception_handler(OpenAIError, openai_error_handler)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError):
        """A body that fails validation: OpenAI's 400 on its routes, FastAPI's own answer elsewhere."""
        if request.url.path.startswith(OPENAI_PATHS):
            return validation_problem(exc).response()
        return await request_validation_exception_handler(request, exc)

    app.state.gate, app.state.settings = gate, settings
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, the loaded model and how many model calls are running."""
        return {"status": "ok", "model": model_name, "device": str(predictor.device), "running": gate.running,
                "max_concurrency": gate.limit, "tasks": list(TASK_NAMES)}

    @app.get("/v1/tasks", response_model=TaskList)
    async def tasks() -> dict[str, Any]:
        """The tasks the model answers, in the registry's order (`nanoemox.tasks.Task.describe`)."""
        return {"tasks": describe_tasks()}

    for router in (analyze_router, chat_router, timeline_router):
        app.include_router(router(predictor, gate, uploads))
    app.include_router(openai_router(predictor, gate, uploads, model_name))
    app.include_router(live_router(predictor, gate, settings))
    return app
