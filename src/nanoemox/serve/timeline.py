"""POST /v1/timeline: emotion over time of one uploaded video, streamed as NDJSON lines: a
header, one line per window as it is answered, then the segments.

A timeline holds one model slot from opening the video to its last line; the request
timeout applies to each blocking step (opening the video, each batch of windows), not to
the whole stream, and videos longer than `max_timeline_seconds` are refused (422) before
any window is computed. Once the 200 has gone out a failure can no longer change the
status: it becomes the stream's last line, `{"type": "error", "error": ...}`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.datastructures import FormData

from nanoemox.media.errors import FileProblem, MediaError
from nanoemox.serve.forms import MULTIPART, file_field, flag_field, is_form, split_list, text_field
from nanoemox.serve.limits import ClosingStream, Held, ModelGate
from nanoemox.serve.openapi import TIMELINE_200, TIMELINE_BODY, error_responses
from nanoemox.serve.settings import labels_problem, span_problem
from nanoemox.serve.uploads import StoredFile, Uploads, file_problem, hide_paths
from nanoemox.timeline import DEFAULT_WINDOW_TASKS, SubtitleError, Timeline, TimelineOptions

logger = logging.getLogger(__name__)


class NDJSONStream(ClosingStream):
    """A streamed NDJSON response that calls `on_close()` however it ends."""

    media_type = "application/x-ndjson"


def timeline_router(predictor, gate: ModelGate, uploads: Uploads) -> APIRouter:
    """The /v1/timeline route around one predictor; each request holds one slot of `gate` while it streams."""
    router = APIRouter()
    settings = uploads.settings

    @router.post("/v1/timeline", openapi_extra=TIMELINE_BODY, response_class=NDJSONStream,
                 responses={200: TIMELINE_200, **error_responses(413, 415, 422, 503, 504)})
    async def timeline(request: Request):
        """Emotion over time of one uploaded video, streamed as NDJSON lines while windows are answered."""
        options, clip, subtitles = await timeline_inputs(request, uploads)
        held = await gate.acquire(clip.remove)
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
        return NDJSONStream(stream.lines(), on_close=stream.close,
                            headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return router


async def timeline_inputs(
    request: Request, uploads: Uploads,
) -> tuple[TimelineOptions, StoredFile, StoredFile | None]:
    """(options, stored clip, stored subtitles or None); every file is in the clip's temp folder."""
    if not is_form(request, (MULTIPART,)):
        raise HTTPException(422, "send a multipart/form-data body with a `clip` file")
    async with request.form() as form:
        options = timeline_options(form, uploads.settings.timeline_batch_size)
        clip_file, subtitles_file = file_field(form, "clip"), file_field(form, "subtitles")
        if clip_file is None:
            raise HTTPException(422, "no video: send the video (or audio) as a `clip` file")
        if subtitles_file is not None:
            uploads.check_subtitles(subtitles_file)  # 415 before the clip is stored
        clip = await uploads.save(clip_file)
        try:
            subtitles = None
            if subtitles_file is not None:
                subtitles = await uploads.save_subtitles(subtitles_file, clip.folder)
        except BaseException:
            clip.remove()
            raise
    return options, clip, subtitles


def timeline_options(form: FormData, batch_size: int) -> TimelineOptions:
    """The fields of a timeline request, checked (422 for any bad one)."""
    tasks = split_list(text_field(form, "tasks")) or list(DEFAULT_WINDOW_TASKS)
    labels = split_list(text_field(form, "labels"))
    if problem := labels_problem(labels):
        raise HTTPException(422, problem)
    window = _seconds(text_field(form, "window"), "window", TimelineOptions.window)
    hop = _seconds(text_field(form, "hop"), "hop", TimelineOptions.hop)
    if problem := span_problem(window, hop):
        raise HTTPException(422, problem)
    speech_clips = (text_field(form, "speech_clips") or TimelineOptions.speech_clips).strip()
    try:
        return TimelineOptions(window=window, hop=hop, tasks=tuple(tasks), labels=labels, batch_size=batch_size,
                               speech_clips=speech_clips, per_person=flag_field(form, "per_person"))
    except ValueError as exc:  # unknown tasks, hop longer than the window
        raise HTTPException(422, str(exc)) from None


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


def _open_timeline(predictor, clip: StoredFile, subtitles: StoredFile | None, options: TimelineOptions) -> Timeline:
    """The timeline of a stored upload (blocking: opens the video and reads the subtitles); 422 when unusable."""
    try:
        return Timeline(predictor, clip.path, options, subtitles.path if subtitles is not None else None)
    except (MediaError, SubtitleError) as exc:
        raise HTTPException(422, _upload_problem(exc, clip, subtitles)) from None
    except ValueError as exc:
        raise HTTPException(422, hide_paths(str(exc), clip, subtitles)) from None


def _upload_problem(exc: FileProblem, clip: StoredFile, subtitles: StoredFile | None, where: str | None = None) -> str:
    """A file's problem, naming the upload it is about (the subtitles or the clip) as the client called it."""
    named = subtitles if isinstance(exc, SubtitleError) and subtitles is not None else clip
    return file_problem(exc, named.name, where)


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


class _TimelineStream:
    """The lines of one timeline answer; holds the model slot until `close` (see `lines`)."""

    def __init__(self, timeline: Timeline, held: Held, clip: StoredFile, subtitles: StoredFile | None):
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
                    result["error"] = hide_paths(result["error"], self.clip, self.subtitles)
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
            return _upload_problem(exc, self.clip, self.subtitles, where)
        logger.exception("timeline of %s failed at %s", self.clip.name, where)
        return hide_paths(f"{where} failed: {type(exc).__name__}: {exc}", self.clip, self.subtitles)

    def close(self) -> None:
        """Give the slot back once the running step is over: close the windows, then remove the upload."""
        self.held.release(last=self.results.close)
