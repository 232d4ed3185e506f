"""Opening media files with PyAV and turning FFmpeg failures into `MediaError`s.

`open_container` checks existence and size first (cheap, and a 40 GB file should
never reach the demuxer), then opens the file and maps PyAV's exceptions onto the
typed errors of `nanoemox.media.errors`. A file that fails to open is probed for
an ISO-BMFF (mp4/mov/m4a) box running past the end of the file, which tells a
truncated download apart from garbage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from pathlib import Path
from typing import Iterator

import av

from nanoemox.media.errors import (
    CorruptMedia,
    MediaNotFound,
    MediaTooLarge,
    NoAudioStream,
    NoVideoStream,
    TruncatedMedia,
    UnsupportedCodec,
    ZeroDuration,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB

# FFmpeg prints to stderr for every damaged packet; the pipeline reports problems itself.
av.logging.set_level(av.logging.PANIC)


def check_file(path: str | os.PathLike, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES) -> Path:
    """Raise unless `path` is an existing, non-empty regular file of at most `max_bytes`."""
    path = Path(path)
    if not path.exists():
        raise MediaNotFound(path, "no such file")
    if not path.is_file():
        raise MediaNotFound(path, "not a regular file (a folder?)")
    size = path.stat().st_size
    if size == 0:
        raise CorruptMedia(path, "the file is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise MediaTooLarge(path, f"{size} bytes is above the limit of {max_bytes} bytes")
    return path


def isobmff_truncated(path: str | os.PathLike) -> bool:
    """True when the file looks like mp4/mov and a top-level box extends past its end."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return False
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            box_size, _ = struct.unpack(">I4s", fh.read(8))
            if box_size == 1:  # 64-bit size follows the type
                extra = fh.read(8)
                if len(extra) < 8:
                    return True
                box_size = struct.unpack(">Q", extra)[0]
            elif box_size == 0:  # box runs to the end of the file
                return False
            if box_size < 8:
                return False  # not a box structure we understand; let the caller call it corrupt
            offset += box_size
        return offset > size


@contextlib.contextmanager
def open_container(path: str | os.PathLike, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES) -> Iterator[av.container.InputContainer]:
    """Open `path` for reading; always closes it; raises typed `MediaError`s."""
    path = check_file(path, max_bytes)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FileNotFoundError:
        raise MediaNotFound(path, "no such file") from None
    except (av.error.DecoderNotFoundError, av.error.DemuxerNotFoundError) as exc:
        raise UnsupportedCodec(path, f"no demuxer or decoder for it ({exc})") from None
    except (av.error.InvalidDataError, av.error.EOFError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        if isobmff_truncated(path):
            raise TruncatedMedia(path, "the mp4/mov structure runs past the end of the file") from None
        raise CorruptMedia(path, f"FFmpeg cannot read the container ({type(exc).__name__})") from None
    try:
        yield container
    finally:
        container.close()


def first_stream(container, path: Path, kind: str):
    """The first `kind` ("audio" or "video") stream, or the typed error saying why there is none."""
    if not list(container.streams):
        raise ZeroDuration(path, "the container holds no streams at all")
    streams = getattr(container.streams, kind)
    if not streams:
        raise (NoAudioStream if kind == "audio" else NoVideoStream)(path, f"the file has no {kind} stream")
    stream = streams[0]
    if stream.codec_context is None or stream.codec_context.codec is None:
        raise UnsupportedCodec(path, f"no decoder for the {kind} codec")
    return stream
