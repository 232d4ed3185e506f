"""Fields of a request's form, read by hand: the body's encoding, text fields, file fields and
comma-separated lists, each refused with a one-line 422 that names the field.

The endpoints read `request.form()` themselves rather than declaring FastAPI `Form(...)` /
`File(...)` parameters, because FastAPI would change what a client sees:
- /v1/chat takes JSON or multipart on the same path; parameters bind one encoding.
- A file sent where text belongs (or text where a file belongs) is a 422 whose `detail` is a
  sentence (`history must be a text field, not a file`, pinned by the tests); FastAPI's own 422
  has a list of validation errors as `detail`, echoing the input, where the OpenAPI
  description (checked against live responses by the schemathesis test) promises a string.
- /v1/analyze treats text sent in place of the clip as no clip; a `File` parameter refuses it.
- Parameters make FastAPI generate a second request-body schema, which it merges with the
  hand-written one of `openapi.py` (a `$ref` beside the inline schema) instead of replacing it.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile  # what request.form() yields (FastAPI's is a subclass)

MULTIPART = "multipart/form-data"
FORM_TYPES = (MULTIPART, "application/x-www-form-urlencoded")


def is_form(request: Request, types: tuple[str, ...] = FORM_TYPES) -> bool:
    """Whether the body's content type is one of `types` (a form, by default)."""
    return request.headers.get("content-type", "").startswith(types)


def text_field(form: FormData, name: str) -> str | None:
    """A text field of a form; a file sent in its place is a 422."""
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise HTTPException(422, f"{name} must be a text field, not a file")
    return value


def attached_file(form: FormData, name: str) -> UploadFile | None:
    """A file field of a form, or None when it is absent, has no file name, or holds text."""
    value = form.get(name)
    return value if isinstance(value, UploadFile) and value.filename else None


def file_field(form: FormData, name: str) -> UploadFile | None:
    """A file field of a form (None when absent or sent without a file); text in its place is a 422."""
    value = form.get(name)
    if value not in (None, "") and not isinstance(value, UploadFile):
        raise HTTPException(422, f"{name} must be a file, not a text field")
    return attached_file(form, name)


def split_list(text: str | None) -> list[str] | None:
    """The items of a comma-separated field, stripped; None when there are none."""
    items = [x.strip() for x in str(text or "").split(",") if x.strip()]
    return items or None


TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def flag_field(form: FormData, name: str) -> bool:
    """A yes/no text field (true/1/yes/on or false/0/no/off; absent: False); anything else is a 422."""
    value = (text_field(form, name) or "").strip().lower()
    if value not in TRUE_WORDS + FALSE_WORDS:
        raise HTTPException(422, f"{name} must be true or false, got {value!r}")
    return value in TRUE_WORDS
