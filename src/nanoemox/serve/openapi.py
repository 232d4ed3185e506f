"""The OpenAPI description of the service's endpoints: error statuses, request bodies, the NDJSON answer.

The handlers read their bodies themselves (see `forms`), so FastAPI cannot infer the bodies:
they are written out here and passed to each route as `openapi_extra`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from nanoemox.inference import DECODE_MODES
from nanoemox.serve.settings import MAX_LABEL_CHARS, MAX_LABELS, MAX_WINDOW_SECONDS, MIN_HOP_SECONDS
from nanoemox.tasks import TASK_NAMES
from nanoemox.timeline import DEFAULT_WINDOW_TASKS, TIMELINE_TASKS
from nanoemox.timeline.subtitles import SUFFIXES as SUBTITLE_SUFFIXES

STATUS = {
    413: "the body (clip) is larger than the service's upload limit (or a subtitle file larger than 2 MiB)",
    415: "the clip's file type or content type is not audio or video (or a subtitle file is not .srt or .vtt)",
    422: "the request cannot be used (no input, a bad field, unreadable media, a video too long: see `detail` or `error`)",
    503: "the model is busy: every slot stayed taken for the queue timeout; retry later",
    504: "the model did not answer within the request timeout",
}
ERROR_BODY = {"type": "object", "properties": {"detail": {"type": "string"}, "error": {"type": "string"}}}


class TaskInfo(BaseModel):
    """One task the model answers, as `GET /v1/tasks` lists it (`nanoemox.tasks.Task.describe`)."""

    name: str
    description: str
    identifier: str = Field(description="the bracketed identifier that opens its instruction (empty for MSA)")
    candidates: list[str] | None = Field(description="the labels offered when the caller gives none; null for "
                                                     "an open answer")
    takes_candidates: bool = Field(description="whether a caller may list the labels to choose from")
    timeline: bool = Field(description="whether a timeline or live session can ask it of each window")
    reply: bool = Field(description="whether the answer is a reply with a reasoning part (<think>)")


class TaskList(BaseModel):
    tasks: list[TaskInfo]


def error_responses(*codes: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses an endpoint returns."""
    return {code: {"description": STATUS[code], "content": {"application/json": {"schema": ERROR_BODY}}}
            for code in codes}


TURN = {"type": "object", "required": ["role", "text"],
        "properties": {"role": {"enum": ["speaker", "listener"]}, "text": {"type": "string"}}}
ANALYZE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "anyOf": [{"required": ["clip"]}, {"required": ["subtitle"]}],  # something to analyze
    "properties": {
        "clip": {"type": "string", "format": "binary", "description": "video or audio file"},
        "tasks": {"type": "string", "description": "comma-separated subset of " + ",".join(TASK_NAMES), "default": ",".join(TASK_NAMES)},
        "subtitle": {"type": "string", "description": "what is said in the clip"},
        "candidates": {"type": "string", "description": "MER labels, comma-separated (default: 7 basic emotions)"},
        "intents": {"type": "string", "description": "MIR labels, comma-separated (default: 20 MIntRec intents)"},
        "decode": {"type": "string", "enum": list(DECODE_MODES), "default": "generate",
                   "description": "with per_person: score (the default then)"},
        "per_person": {"type": "boolean", "default": False,
                       "description": "find the people in the clip and answer the window tasks per person "
                                      "(JSON `people`; docs/people.md)"},
    },
}}}}}
CHAT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["message"], "properties": {
        "message": {"type": "string"}, "history": {"type": "array", "items": TURN}}}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["message"], "properties": {
        "message": {"type": "string"},
        "history": {"type": "string", "description": "JSON list of {role, text} turns"},
        "clip": {"type": "string", "format": "binary"}}}},
}}}
TIMELINE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["clip"],
    "properties": {
        "clip": {"type": "string", "format": "binary", "description": "video or audio file"},
        "subtitles": {"type": "string", "format": "binary",
                      "description": f"subtitle file ({', '.join(SUBTITLE_SUFFIXES)}, UTF-8, at most 2 MiB)"},
        "tasks": {"type": "string", "description": "comma-separated subset of " + ",".join(TIMELINE_TASKS),
                  "default": ",".join(DEFAULT_WINDOW_TASKS)},
        "labels": {"type": "string", "description": f"MER labels, comma-separated (default: 7 basic emotions; "
                                                   f"at most {MAX_LABELS} of {MAX_LABEL_CHARS} characters)"},
        "window": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WINDOW_SECONDS, "default": 4,
                   "description": "window length in seconds"},
        "hop": {"type": "number", "minimum": MIN_HOP_SECONDS, "maximum": MAX_WINDOW_SECONDS, "default": 2,
                "description": "seconds between window starts; at most `window`"},
        "speech_clips": {"type": "string", "enum": ["grid", "window"], "default": "grid",
                         "description": "where each window's speech clips start: on a grid shared by overlapping "
                                        "windows (each clip encoded once) or spread over each window as for a clip"},
        "per_person": {"type": "boolean", "default": False,
                       "description": "find the people of each window and answer per person: each window line "
                                      "gains `people`, the header `per_person` and `frame_size` (docs/people.md)"},
    },
}}}}}
TIMELINE_200 = {
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
