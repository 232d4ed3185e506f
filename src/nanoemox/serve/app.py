"""The Nano-EmoX HTTP service (FastAPI): analyze clips, chat, timelines, health, a small web page.

    POST /v1/analyze   multipart: clip (file), tasks, subtitle, candidates, intents, decode
    POST /v1/chat      JSON {message, history, clip: none} or multipart (message, history as
                       JSON text, optional clip file); answers with the reply and the new history
    POST /v1/timeline  multipart: clip (file), subtitles (.srt/.vtt file), tasks, labels, window,
                       hop; streams NDJSON lines: a header, one line per window as it is
                       answered, then the segments (an `error` line if the run fails midway)
    GET  /health       liveness and load
    GET  /             the web page (static HTML + JS in nanoemox/serve/static)
    GET  /openapi.json the API description (FastAPI)

Limits (`ServeSettings`): upload size (413), media types by extension and content type
(415), a concurrency limit with a queue timeout (503), a per-request timeout (504).
Any body the service cannot use (no clip and no subtitle, a file where text belongs,
JSON nested too deeply, ...) is a 422; no client input gives a 5xx. Every status is
described in the OpenAPI document. Uploads are written to a per-request temporary
folder that is always removed.

A timeline holds one model slot from opening the video to its last line; the request
timeout applies to each blocking step (opening the video, each batch of windows), not
to the whole stream, and videos longer than `max_timeline_seconds` are refused (422)
before any window is computed. Once the 200 has gone out a failure can no longer change
the status: it becomes the stream's last line, `{"type": "error", "error": ...}`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile  # what request.form() yields (FastAPI's is a subclass)

from nanoemox.data.manifest import TASKS
from nanoemox.inference import AUDIO_EXTENSIONS, DECODE_MODES, VIDEO_EXTENSIONS, analyze, chat_reply, clip_records
from nanoemox.media.errors import FileProblem, MediaError
from nanoemox.serve.limits import BodyLimitMiddleware, Held, ModelGate
from nanoemox.timeline import DEFAULT_TASKS, TIMELINE_TASKS, SubtitleError, Timeline, TimelineOptions
from nanoemox.timeline.subtitles import SUFFIXES as SUBTITLE_SUFFIXES

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Content types browsers and clients send for media; octet-stream when they do not know.
ALLOWED_TYPE_PREFIXES = ("video/", "audio/")
GENERIC_TYPES = ("application/octet-stream", "")
FORM_SLACK = 64 * 1024  # multipart boundaries and text fields on top of the clip itself
COPY_CHUNK = 1 << 20
# Timelines: a subtitle file's size, and bounds that keep one request's work proportionate
# to its video (a tiny hop or many labels would multiply the model calls per second of video).
MAX_SUBTITLE_BYTES = 2 * 1024 * 1024
MAX_WINDOW_SECONDS = 60.0
MIN_HOP_SECONDS = 0.25
MAX_LABELS, MAX_LABEL_CHARS = 32, 40


@dataclass
class ServeSettings:
    """Service limits; the defaults suit one GPU serving short clips."""

    max_upload_bytes: int = 200 * 1024 * 1024
    request_timeout: float = 300.0
    max_concurrency: int = 1
    queue_timeout: float = 10.0
    tmp_dir: str | None = None  # where uploads are kept while answered (default: system temp)
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
    max_timeline_seconds: float = 3600.0  # longer videos are refused by /v1/timeline (422)
    timeline_batch_size: int = 8  # windows per model call of /v1/timeline (lines go out per batch)


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
            await _copy(upload, path, self.settings.max_upload_bytes, "clip")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder, path

    @staticmethod
    def check_subtitles(upload: UploadFile) -> str:
        """The subtitle file's extension, or 415 when it is not .srt or .vtt."""
        suffix = Path(upload.filename or "").suffix.lower()
        if suffix not in SUBTITLE_SUFFIXES:
            raise HTTPException(415, f"{upload.filename!r}: unsupported subtitle file type; send one of {', '.join(SUBTITLE_SUFFIXES)}")
        return suffix

    async def save_subtitles(self, upload: UploadFile, folder: Path) -> Path:
        """The subtitle file stored in `folder` (413 over `MAX_SUBTITLE_BYTES`, 415 for other types)."""
        path = folder / f"subtitles{self.check_subtitles(upload)}"
        await _copy(upload, path, MAX_SUBTITLE_BYTES, "subtitle file")
        return path


async def _copy(upload: UploadFile, path: Path, limit: int, what: str) -> None:
    """Write an upload to `path`: 413 past `limit` bytes, 422 when it is empty."""
    written = 0
    with open(path, "wb") as out:
        while chunk := await upload.read(COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                raise HTTPException(413, f"{what} {upload.filename!r} larger than the limit of {limit} bytes")
            out.write(chunk)
    if written == 0:
        raise HTTPException(422, f"{upload.filename!r} is empty")


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
    _add_timeline(app, predictor, gate, uploads)
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


def _add_timeline(app: FastAPI, predictor, gate: ModelGate, uploads: Uploads) -> None:
    settings = uploads.settings

    @app.post("/v1/timeline", openapi_extra=_TIMELINE_BODY, response_class=_NDJSONStream,
              responses={200: _TIMELINE_200, **_responses(413, 415, 422, 503, 504)})
    async def timeline(request: Request):
        """Emotion over time of one uploaded video, streamed as NDJSON lines while windows are answered."""
        options, clip, subtitles = await _timeline_inputs(request, uploads)
        held = await gate.acquire(_cleanup(clip.folder))
        try:
            opened = await held.step(lambda: _open_timeline(predictor, clip, subtitles, options))
        except BaseException:
            held.release()
            raise
        duration = opened.reader.duration
        if duration > settings.max_timeline_seconds:
            held.release()
            raise HTTPException(422, f"{clip.name}: the video lasts {duration:.0f} s, longer than the "
                                     f"{settings.max_timeline_seconds:g} s this service accepts for a timeline; "
                                     "cut it into parts or run `nanoemox timeline` locally")
        stream = _TimelineStream(opened, held, clip, subtitles)
        # x-accel-buffering: a proxy such as nginx passes each line on instead of collecting the answer.
        return _NDJSONStream(stream.lines(), on_close=stream.close,
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


@dataclass
class _Upload:
    """An uploaded file: the name the client gave it, where it is stored, and its folder."""

    name: str
    path: Path
    folder: Path


def _seconds(text: str | None, field: str, default: float) -> float:
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise HTTPException(422, f"{field} must be a positive number of seconds, got {text[:40]!r}")
    return value


def _timeline_options(form, batch_size: int) -> TimelineOptions:
    """The fields of a timeline request, checked (422 for any bad one)."""
    tasks = _split(_text(form, "tasks")) or list(DEFAULT_TASKS)
    labels = _split(_text(form, "labels"))
    if labels is not None and (len(labels) > MAX_LABELS or max(map(len, labels)) > MAX_LABEL_CHARS):
        raise HTTPException(422, f"labels: at most {MAX_LABELS} labels of at most {MAX_LABEL_CHARS} characters each")
    window = _seconds(_text(form, "window"), "window", TimelineOptions.window)
    hop = _seconds(_text(form, "hop"), "hop", TimelineOptions.hop)
    if window > MAX_WINDOW_SECONDS:
        raise HTTPException(422, f"window must be at most {MAX_WINDOW_SECONDS:g} s, got {window:g}")
    if hop < MIN_HOP_SECONDS:
        raise HTTPException(422, f"hop must be at least {MIN_HOP_SECONDS:g} s, got {hop:g}")
    try:
        return TimelineOptions(window=window, hop=hop, tasks=tuple(tasks), labels=labels, batch_size=batch_size)
    except ValueError as exc:  # unknown tasks, hop longer than the window
        raise HTTPException(422, str(exc)) from None


def _file(form, name: str) -> UploadFile | None:
    """A file field of a form (None when absent or sent without a file); text in its place is a 422."""
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, UploadFile):
        raise HTTPException(422, f"{name} must be a file, not a text field")
    return value if value.filename else None


async def _timeline_inputs(request: Request, uploads: Uploads) -> tuple[TimelineOptions, _Upload, _Upload | None]:
    """(options, stored clip, stored subtitles or None); every file is in the clip's temp folder."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPES[0]):
        raise HTTPException(422, "send a multipart/form-data body with a `clip` file")
    async with request.form() as form:
        options = _timeline_options(form, uploads.settings.timeline_batch_size)
        clip, subtitles = _file(form, "clip"), _file(form, "subtitles")
        if clip is None:
            raise HTTPException(422, "no video: send the video (or audio) as a `clip` file")
        if subtitles is not None:
            uploads.check_subtitles(subtitles)  # 415 before the clip is stored
        folder, path = await uploads.save(clip)
        stored = _Upload(str(clip.filename), path, folder)
        try:
            subs = None
            if subtitles is not None:
                subs = _Upload(str(subtitles.filename), await uploads.save_subtitles(subtitles, folder), folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return options, stored, subs


def _open_timeline(predictor, clip: _Upload, subtitles: _Upload | None, options: TimelineOptions) -> Timeline:
    """The timeline of a stored upload (blocking: opens the video and reads the subtitles); 422 when unusable."""
    try:
        return Timeline(predictor, clip.path, options, subtitles.path if subtitles is not None else None)
    except (MediaError, SubtitleError) as exc:
        raise HTTPException(422, _file_problem(exc, clip, subtitles)) from None
    except ValueError as exc:
        raise HTTPException(422, _named(str(exc), clip, subtitles)) from None


def _file_problem(exc: FileProblem, clip: _Upload, subtitles: _Upload | None, where: str | None = None) -> str:
    """A file's problem, naming the upload (clip or subtitles) as the client called it."""
    named = subtitles if isinstance(exc, SubtitleError) and subtitles is not None else clip
    return f"{named.name}: {exc.problem}{f' (at {where})' if where else ''}; {exc.advice}"


def _named(message: str, *files: _Upload | None) -> str:
    """A message with the server's paths of uploads replaced by the names the client gave them."""
    for upload in files:
        if upload is not None:
            message = message.replace(str(upload.path), upload.name).replace(str(upload.folder), "(upload)")
    return message


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


class _NDJSONStream(StreamingResponse):
    """A streamed NDJSON response that calls `on_close()` however it ends, even when the body never started."""

    media_type = "application/x-ndjson"

    def __init__(self, content, status_code: int = 200, on_close=None, **kwargs):
        super().__init__(content, status_code, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()


class _TimelineStream:
    """The lines of one timeline answer; holds the model slot until `close` (see `lines`)."""

    def __init__(self, timeline: Timeline, held: Held, clip: _Upload, subtitles: _Upload | None):
        self.timeline, self.held, self.clip, self.subtitles = timeline, held, clip, subtitles
        self.results = timeline.results()  # a generator: nothing runs before the first step

    def _next(self) -> dict[str, Any] | None:
        return next(self.results, None)  # None, not StopIteration, which cannot cross a Future

    async def lines(self):
        """header, window..., end; or an `error` line in place of the rest when a step fails.

        Each window is computed in the gate's pool (one step per batch) and sent as soon as it
        is there. A client that goes away cancels this generator at its current step; `close`
        then lets that step finish before the slot and the upload folder are given back.
        """
        started = time.perf_counter()
        done: list[dict[str, Any]] = []
        try:
            yield _line({"type": "header", **self.timeline.header(), "input": self.clip.name,
                         "subtitles": self.subtitles.name if self.subtitles is not None else None})
            while (result := await self.held.step(self._next)) is not None:
                if "error" in result:
                    result["error"] = _named(result["error"], self.clip, self.subtitles)
                done.append(result)
                yield _line({"type": "window", **result})
            segments = await self.held.step(lambda: self.timeline.segments(done))
            yield _line({"type": "end", "segments": segments, "errors": sum("error" in r for r in done),
                         "seconds": round(time.perf_counter() - started, 3)})
        except Exception as exc:  # after the 200: the failure becomes the last line
            yield _line({"type": "error", "error": self._message(exc, len(done))})
        finally:
            self.close()

    def _message(self, exc: Exception, index: int) -> str:
        """What failed, naming the uploads as the client did; `index`: the window being computed."""
        where = f"window {index}" if index < len(self.timeline.reader) else "segments"
        if isinstance(exc, HTTPException):  # the step's timeout
            return f"{where}: {exc.detail}"
        if isinstance(exc, FileProblem):
            return _file_problem(exc, self.clip, self.subtitles, where)
        logger.exception("timeline of %s failed at %s", self.clip.name, where)
        return _named(f"{where} failed: {type(exc).__name__}: {exc}", self.clip, self.subtitles)

    def close(self) -> None:
        """Give the slot back once the running step is over: close the windows, then remove the upload."""
        self.held.release(last=self.results.close)


_STATUS = {
    413: "the body (clip) is larger than the service's upload limit (or a subtitle file larger than 2 MiB)",
    415: "the clip's file type or content type is not audio or video (or a subtitle file is not .srt or .vtt)",
    422: "the request cannot be used (no input, a bad field, unreadable media, a video too long: see `detail` or `error`)",
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
_TIMELINE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["clip"],
    "properties": {
        "clip": {"type": "string", "format": "binary", "description": "video or audio file"},
        "subtitles": {"type": "string", "format": "binary",
                      "description": f"subtitle file ({', '.join(SUBTITLE_SUFFIXES)}, UTF-8, at most 2 MiB)"},
        "tasks": {"type": "string", "description": "comma-separated subset of " + ",".join(TIMELINE_TASKS),
                  "default": ",".join(DEFAULT_TASKS)},
        "labels": {"type": "string", "description": f"MER labels, comma-separated (default: 7 basic emotions; "
                                                   f"at most {MAX_LABELS} of {MAX_LABEL_CHARS} characters)"},
        "window": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WINDOW_SECONDS, "default": 4,
                   "description": "window length in seconds"},
        "hop": {"type": "number", "minimum": MIN_HOP_SECONDS, "maximum": MAX_WINDOW_SECONDS, "default": 2,
                "description": "seconds between window starts; at most `window`"},
    },
}}}}}
_TIMELINE_200 = {
    "description": (
        "NDJSON, one JSON object per line, sent as soon as it is known: first "
        "`{type: header, duration, window_count, window, hop, tasks, labels, video_stream, audio_stream, input, "
        "subtitles}`, then one `{type: window, index, start, end, frame_times, faces_found, frames, video_present, "
        "audio_present, text, mer: {label, confidence, probabilities}, msa: {sentiment, valence, probabilities}, "
        "ovmer: {words, text, truncated}}` per window in order (a window with damaged media has `error` and no "
        "answers), last `{type: end, segments: [{start, end, label, confidence, windows, first_window, "
        "last_window}], errors, seconds}`. When the run fails after the first line, the last line is "
        "`{type: error, error}` instead of `end`."
    ),
    "content": {"application/x-ndjson": {"schema": {
        "type": "object", "required": ["type"],
        "properties": {"type": {"enum": ["header", "window", "end", "error"]}},
    }}},
}
