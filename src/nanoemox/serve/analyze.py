"""POST /v1/analyze: the requested tasks for one uploaded clip and/or subtitle, answered with
the same JSON as `nanoemox analyze --json` (422 with `error` when the clip cannot be used)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from nanoemox.inference import DECODE_MODES, analyze, clip_records
from nanoemox.inference.people import analyze_people
from nanoemox.media.errors import MediaError
from nanoemox.serve.forms import attached_file, flag_field, is_form, split_list, text_field
from nanoemox.serve.limits import ModelGate
from nanoemox.serve.openapi import ANALYZE_BODY, error_responses
from nanoemox.serve.uploads import StoredFile, Uploads, hide_paths
from nanoemox.tasks import TASK_NAMES


def analyze_router(predictor, gate: ModelGate, uploads: Uploads) -> APIRouter:
    """The /v1/analyze route around one predictor; model calls go through `gate`."""
    router = APIRouter()

    @router.post("/v1/analyze", openapi_extra=ANALYZE_BODY, responses=error_responses(413, 415, 422, 503, 504))
    async def analyze_clip(request: Request):
        """Answer the requested tasks for one uploaded clip (same JSON as `nanoemox analyze --json`)."""
        if not is_form(request):
            raise HTTPException(422, "send a multipart/form-data body with a `clip` file and/or a `subtitle` field")
        async with request.form() as form:
            tasks = parse_tasks(text_field(form, "tasks"))
            per_person = flag_field(form, "per_person")
            decode = str(text_field(form, "decode") or ("score" if per_person else "generate"))
            if decode not in DECODE_MODES:
                raise HTTPException(422, f"decode must be one of {DECODE_MODES}, got {decode!r}")
            if per_person and decode != "score":
                raise HTTPException(422, "per-person answers are scored: leave out decode or send decode=score")
            options = dict(
                subtitle=(str(text_field(form, "subtitle") or "").strip() or None),
                candidates=split_list(text_field(form, "candidates")),
                intents=split_list(text_field(form, "intents")),
            )
            upload = attached_file(form, "clip")
            if upload is None and options["subtitle"] is None:
                raise HTTPException(422, "nothing to analyze: send a `clip` file, a `subtitle`, or both")
            if per_person and upload is None:
                raise HTTPException(422, "per_person needs a `clip` with video")
            clip = await uploads.save(upload) if upload is not None else None
        path, name = (clip.path, clip.name) if clip is not None else (None, None)
        clip_id = Path(name).stem if name else "text"
        cleanup = clip.remove if clip is not None else None
        if per_person:
            result = await gate.run(lambda: _people(predictor, path, tasks, clip_id, options), cleanup)
        else:
            records = clip_records(path, tasks, clip_id=clip_id, **options)
            result = await gate.run(lambda: next(analyze(predictor, [records], decode=decode)), cleanup)
        result["input"] = name
        _name_upload(result, clip)
        return JSONResponse(result, status_code=422 if "error" in result else 200)

    return router


def _people(predictor, path, tasks: list[str], clip_id: str, options: dict) -> dict:
    """`analyze_people` for the upload; a clip that cannot be read gets an `error` (422)."""
    try:
        return analyze_people(predictor, path, tasks, clip_id=clip_id, **options)
    except MediaError as exc:
        return {"id": clip_id, "error": f"{type(exc).__name__}: {exc}"}


def parse_tasks(text: str | None) -> list[str]:
    """The tasks of a comma-separated field (all of them when empty); 422 for an unknown one."""
    tasks = split_list(text) or list(TASK_NAMES)
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown:
        raise HTTPException(422, f"unknown task(s) {unknown}; choose from {', '.join(TASK_NAMES)}")
    return tasks


def _name_upload(result: dict, clip: StoredFile | None) -> None:
    """The result's error messages name the uploaded clip as the client called it, not the server's temp path."""
    if "error" in result:
        result["error"] = hide_paths(result["error"], clip)
    for task, message in result.get("errors", {}).items():
        result["errors"][task] = hide_paths(message, clip)
