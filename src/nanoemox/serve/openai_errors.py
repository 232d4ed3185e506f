"""Errors of the OpenAI-compatible routes in OpenAI's shape, with the statuses its client maps
to exception classes:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages[1].content[0]", "code": null}}

400 BadRequestError (a body the API cannot use, unreadable media, a refused URL), 404
NotFoundError (an unknown model), 413 (media over the upload limit), 415 (a media type
that is not audio, video or an image), 422 UnprocessableEntityError (a request the model
cannot take: a prompt and budget longer than its context), 503 (the model is busy; the
client retries), 504 (no answer within the request timeout).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse

ERROR_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error",
               415: "invalid_request_error", 422: "invalid_request_error", 500: "server_error",
               503: "service_unavailable_error",
               504: "timeout_error"}
STATUS = {
    400: "the body cannot be used (a bad field, unreadable media, a refused media URL): see `error.message`",
    404: "no model of that name is served here",
    413: "the body or one media part is larger than the service's upload limit",
    415: "a media part is not audio, video or an image",
    422: "the model cannot take the request (the prompt and max_tokens exceed its context)",
    503: "the model is busy: every slot stayed taken for the queue timeout; retry later",
    504: "the model did not answer within the request timeout",
}
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}


class OpenAIError(Exception):
    """An error answered in OpenAI's shape (see the module docstring)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = int(status), message, param, code

    @classmethod
    def from_http(cls, exc: HTTPException, param: str | None = None) -> "OpenAIError":
        """The same status and message as one of the service's own HTTP errors (a 413, a 503, ...)."""
        return cls(exc.status_code, str(exc.detail), param)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def validation_problem(exc) -> OpenAIError:
    """A 400 for a body that fails validation (pydantic's `RequestValidationError`), naming the first bad field."""
    errors = exc.errors() or [{"loc": (), "msg": "invalid body"}]
    # Of the alternatives of a union (content: text or a list of parts), the deepest error is the telling one.
    first = max(errors, key=lambda e: len(e.get("loc", ())))
    loc = []
    for p in first.get("loc", ()):
        if p == "body" or (isinstance(p, str) and ("[" in p or p == "str")) or (loc and p == loc[-1]):
            continue  # pydantic's names of union branches and tags are not fields
        loc.append(p)
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return OpenAIError(400, f"{param or 'body'}: {first.get('msg', 'invalid')}{more}", param)


async def openai_error_handler(_request, exc: OpenAIError) -> JSONResponse:
    return exc.response()


def openai_error_responses(*codes: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses an OpenAI-compatible route returns."""
    return {code: {"description": STATUS[code], "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for code in codes}
