"""Subtitle files (SRT, WebVTT) for timelines, read with `pysubs2`.

`Subtitles.load(path)` reads the file (format detected from its content; UTF-8, with a
byte-order mark or without); `between(start, end)` gives the lines that overlap a
window, in time order, joined by spaces, with markup (`<b>`, `{\\i1}`) removed and line
breaks turned into spaces. A file that is missing, empty, not a subtitle file or holds
no timed line raises `SubtitleError` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pysubs2

from nanoemox.media.errors import FileProblem

SUFFIXES = (".srt", ".vtt")


class SubtitleError(FileProblem, ValueError):
    """A subtitle file that cannot be used."""

    advice = "give an SRT or WebVTT file in UTF-8"


@dataclass(frozen=True)
class Line:
    start: float  # seconds
    end: float
    text: str


class Subtitles:
    """Timed lines of one subtitle file."""

    def __init__(self, lines: list[Line], path: Path | None = None):
        self.lines = sorted(lines, key=lambda line: (line.start, line.end))
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Subtitles":
        path = Path(path)
        if not path.is_file():
            raise SubtitleError(path, "no such subtitle file" if not path.exists() else "not a regular file (a folder?)")
        try:
            loaded = pysubs2.load(str(path), encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SubtitleError(path, f"not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None
        except (pysubs2.exceptions.Pysubs2Error, ValueError) as exc:
            raise SubtitleError(path, f"not a subtitle file pysubs2 can read as SRT or WebVTT ({exc})") from None
        lines = [Line(event.start / 1000.0, event.end / 1000.0, " ".join(event.plaintext.split()))
                 for event in loaded if not event.is_comment]
        lines = [line for line in lines if line.text and line.end > line.start]
        if not lines:
            raise SubtitleError(path, "the file holds no timed subtitle line")
        return cls(lines, path)

    def between(self, start: float, end: float) -> str | None:
        """The lines overlapping [start, end] (by more than an instant), joined; None when there is none."""
        texts = [line.text for line in self.lines if line.start < end and line.end > start]
        return " ".join(texts) or None
