"""Media parts of a chat-completions request turned into files the media pipeline reads.

- `data:` URLs (and `input_audio`'s base64 `data` with its `format`) are decoded into the
  request's temporary upload folder (`Uploads.new_folder`), the type taken from the MIME
  type (415 for what is not audio, video or an image; 413 over the upload limit);
- `file://` paths are read in place, only under `ServeSettings.allowed_local_media_path`
  (400 otherwise, as vLLM's `--allowed-local-media-path`);
- `http(s)` URLs are refused (400, nothing fetched) unless `allow_remote_media`; then they
  are downloaded into the upload folder within the upload limit and `remote_media_timeout`.
Every message about a file names the part as the client sent it (`messages[i].content[j]`),
never the server's path. `ClipFiles.remove` deletes the folder.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from nanoemox.inference import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from nanoemox.serve.openai_errors import OpenAIError
from nanoemox.serve.openai_request import MediaRef
from nanoemox.serve.settings import IMAGE_EXTENSIONS
from nanoemox.serve.uploads import COPY_CHUNK, Uploads

MIME_EXTENSIONS = {
    "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi", "video/avi": ".avi", "video/mpeg": ".mpg", "video/x-m4v": ".m4v",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/flac": ".flac", "audio/x-flac": ".flac",
    "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/m4a": ".m4a", "audio/ogg": ".ogg", "audio/opus": ".opus",
    "audio/aac": ".aac",
    "image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/webp": ".webp", "image/bmp": ".bmp",
}
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS + IMAGE_EXTENSIONS


@dataclass
class ClipFiles:
    """The files of one clip: video (or image) and audio paths, the temporary folder, the names clients gave them."""

    video: Path | None = None
    audio: Path | None = None
    folder: Path | None = None
    names: dict[str, str] = field(default_factory=dict)  # server path -> what the client called it
    params: dict[str, str] = field(default_factory=dict)  # server path -> the part's place in the request

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def name_of(self, path: str) -> str:
        return self.names.get(str(path), "the clip")

    def hide(self, message: str) -> str:
        """`message` with server paths replaced by the parts' names."""
        for path, name in self.names.items():
            message = message.replace(path, name)
        return message.replace(str(self.folder), "(upload)") if self.folder is not None else message


async def store_clip(refs: list[MediaRef], uploads: Uploads) -> ClipFiles:
    """The files of a message's media parts (see the module docstring); the folder is removed again on error."""
    clip = ClipFiles()
    try:
        for ref in refs:
            path = await _store(ref, clip, uploads)
            clip.names[str(path)] = f"{ref.param} ({ref.kind})"
            clip.params[str(path)] = ref.param
            if ref.kind == "audio":
                clip.audio = path
            else:
                clip.video = path
    except BaseException:
        clip.remove()
        raise
    return clip


async def _store(ref: MediaRef, clip: ClipFiles, uploads: Uploads) -> Path:
    settings = uploads.settings
    if ref.data is not None:  # input_audio
        suffix = "." + str(ref.format or "").lower().lstrip(".")
        if suffix not in AUDIO_EXTENSIONS:
            raise OpenAIError(415, f"input_audio format {ref.format!r} is not supported; use one of "
                                   f"{', '.join(e[1:] for e in AUDIO_EXTENSIONS)}", ref.param)
        return await _write(clip, uploads, ref, await _decode(ref.data, True, ref, settings.max_upload_bytes), suffix)
    url = ref.url.strip()
    scheme = urllib.parse.urlsplit(url).scheme.lower() if ":" in url else ""
    if scheme == "data":
        header, comma, payload = url[5:].partition(",")
        if not comma:
            raise OpenAIError(400, "a data: URL needs a comma before its data (data:MIME;base64,DATA)", ref.param)
        suffix = _suffix_of(header.split(";")[0].strip().lower(), ref)
        data = await _decode(payload, ";base64" in header.lower(), ref, settings.max_upload_bytes)
        return await _write(clip, uploads, ref, data, suffix)
    if scheme == "file":
        return _local(url, ref, settings)
    if scheme in ("http", "https"):
        if not settings.allow_remote_media:
            raise OpenAIError(400, "this server does not fetch remote media: send the file as a data: URL "
                                   "(or start the server with --allow-remote-media)", ref.param)
        return await _fetch(url, clip, uploads, ref)
    raise OpenAIError(400, f"unsupported URL scheme {scheme!r}: use a data:, file:// or http(s) URL", ref.param)


def _suffix_of(mime: str, ref: MediaRef) -> str:
    suffix = MIME_EXTENSIONS.get(mime)
    if suffix is None:
        raise OpenAIError(415, f"media type {mime or '(none)'!r} is not supported; send one of "
                               f"{', '.join(sorted(MIME_EXTENSIONS))}", ref.param)
    return suffix


async def _decode(payload: str, is_base64: bool, ref: MediaRef, limit: int) -> bytes:
    if len(payload) * 3 // 4 > limit + 3:
        raise OpenAIError(413, f"the media is larger than the limit of {limit} bytes", ref.param)
    try:
        if is_base64:
            data = await asyncio.to_thread(base64.b64decode, payload, validate=False)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise OpenAIError(400, f"the media is not valid base64 ({exc})", ref.param) from None
    if not data:
        raise OpenAIError(400, "the media is empty", ref.param)
    if len(data) > limit:
        raise OpenAIError(413, f"the media is larger than the limit of {limit} bytes", ref.param)
    return data


async def _write(clip: ClipFiles, uploads: Uploads, ref: MediaRef, data: bytes, suffix: str) -> Path:
    if clip.folder is None:
        clip.folder = uploads.new_folder()
    path = clip.folder / f"{'audio' if ref.kind == 'audio' else 'clip'}{suffix}"
    await asyncio.to_thread(path.write_bytes, data)
    return path


def _local(url: str, ref: MediaRef, settings) -> Path:
    if not settings.allowed_local_media_path:
        raise OpenAIError(400, "this server reads no local files: send the media as a data: URL (or start the "
                               "server with --allowed-local-media-path FOLDER)", ref.param)
    allowed = Path(settings.allowed_local_media_path).resolve()
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).resolve()
    if not path.is_relative_to(allowed):
        raise OpenAIError(400, f"{url}: not under the folder this server allows for local media", ref.param)
    if not path.is_file():
        raise OpenAIError(400, f"{url}: no such file", ref.param)
    if path.suffix.lower() not in MEDIA_EXTENSIONS:
        raise OpenAIError(415, f"{url}: unsupported file type; use one of {', '.join(MEDIA_EXTENSIONS)}", ref.param)
    if path.stat().st_size > settings.max_upload_bytes:
        raise OpenAIError(413, f"{url}: larger than the limit of {settings.max_upload_bytes} bytes", ref.param)
    return path


async def _fetch(url: str, clip: ClipFiles, uploads: Uploads, ref: MediaRef) -> Path:
    """Download `url` into the upload folder within the size and time limits."""
    settings = uploads.settings
    if clip.folder is None:
        clip.folder = uploads.new_folder()
    part = clip.folder / f"{ref.kind}-download"

    def download() -> str:
        deadline = time.monotonic() + settings.remote_media_timeout
        written = 0
        with urllib.request.urlopen(url, timeout=settings.remote_media_timeout) as response, open(part, "wb") as out:
            while chunk := response.read(COPY_CHUNK):
                written += len(chunk)
                if written > settings.max_upload_bytes:
                    raise OpenAIError(413, f"{url}: larger than the limit of {settings.max_upload_bytes} bytes",
                                      ref.param)
                if time.monotonic() > deadline:
                    raise OpenAIError(400, f"{url}: not downloaded within {settings.remote_media_timeout:g} s",
                                      ref.param)
                out.write(chunk)
            return response.headers.get_content_type()

    try:
        mime = await asyncio.to_thread(download)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OpenAIError(400, f"{url}: could not be fetched ({getattr(exc, 'reason', exc)})", ref.param) from None
    suffix = MIME_EXTENSIONS.get(mime) or Path(urllib.parse.urlsplit(url).path).suffix.lower()
    if suffix not in MEDIA_EXTENSIONS:
        raise OpenAIError(415, f"{url}: media type {mime!r} is not audio, video or an image", ref.param)
    return part.rename(part.with_suffix(suffix))
