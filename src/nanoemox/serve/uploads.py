"""Uploaded files: type checks, storage in a per-request temporary folder, size limits,
clean-up, and messages that name an upload as the client called it, never by the
server's path.

A clip is checked (extension and content type, 415) and copied in chunks into a fresh
folder (413 past the limit, 422 when empty); a subtitle file of a timeline joins the
clip's folder. `StoredFile.remove` deletes the folder; the endpoints hand it to the
`ModelGate` as the request's clean-up, so it runs however the request ends.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException
from starlette.datastructures import UploadFile  # what request.form() yields (FastAPI's is a subclass)

from nanoemox.media.errors import FileProblem
from nanoemox.serve.settings import MAX_SUBTITLE_BYTES, ServeSettings
from nanoemox.timeline.subtitles import SUFFIXES as SUBTITLE_SUFFIXES

# Content types browsers and clients send for media; octet-stream when they do not know.
ALLOWED_TYPE_PREFIXES = ("video/", "audio/")
GENERIC_TYPES = ("application/octet-stream", "")
COPY_CHUNK = 1 << 20


@dataclass
class StoredFile:
    """An uploaded file: the name the client gave it, where it is stored, and its temporary folder."""

    name: str
    path: Path
    folder: Path

    def remove(self) -> None:
        """Delete the temporary folder and everything in it (the other files of the request too)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def hide_paths(message: str, *files: StoredFile | None) -> str:
    """`message` with the server's paths of uploads replaced by the names the client gave them."""
    for stored in files:
        if stored is not None:
            message = message.replace(str(stored.path), stored.name).replace(str(stored.folder), "(upload)")
    return message


def file_problem(exc: FileProblem, name: str | None, where: str | None = None) -> str:
    """A file's problem and what to do, naming the upload as the client called it (`where`: the part that failed)."""
    return f"{name}: {exc.problem}{f' (at {where})' if where else ''}; {exc.advice}"


class Uploads:
    """Checks uploaded files and stores them in a fresh temporary folder per request."""

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

    async def save(self, upload: UploadFile) -> StoredFile:
        """The clip stored in a new temporary folder; the folder is removed again on any error here."""
        suffix = self.check_type(upload)
        folder = self.new_folder()
        stored = StoredFile(str(upload.filename), folder / f"clip{suffix}", folder)
        try:
            await copy_upload(upload, stored.path, self.settings.max_upload_bytes, "clip")
        except BaseException:
            stored.remove()
            raise
        return stored

    def new_folder(self) -> Path:
        """A fresh temporary folder for one request's files (under `tmp_dir` when set)."""
        return Path(tempfile.mkdtemp(prefix="nanoemox-upload-", dir=self.settings.tmp_dir))

    @staticmethod
    def check_subtitles(upload: UploadFile) -> str:
        """The subtitle file's extension, or 415 when it is not .srt or .vtt."""
        suffix = Path(upload.filename or "").suffix.lower()
        if suffix not in SUBTITLE_SUFFIXES:
            raise HTTPException(415, f"{upload.filename!r}: unsupported subtitle file type; send one of {', '.join(SUBTITLE_SUFFIXES)}")
        return suffix

    async def save_subtitles(self, upload: UploadFile, folder: Path) -> StoredFile:
        """The subtitle file stored in `folder` (413 over `MAX_SUBTITLE_BYTES`, 415 for other types)."""
        stored = StoredFile(str(upload.filename), folder / f"subtitles{self.check_subtitles(upload)}", folder)
        await copy_upload(upload, stored.path, MAX_SUBTITLE_BYTES, "subtitle file")
        return stored


async def copy_upload(upload: UploadFile, path: Path, limit: int, what: str) -> None:
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
