"""`ResultsFile`: a JSON-lines file of results, appended as results finish and read back to resume.

    results = ResultsFile("eval/predictions.jsonl", what="prediction", check=check_prediction)
    done = results.read()            # earlier results; repairs a line cut short by a crash
    with results.appending() as out:
        out.append({"id": "a", ...})  # one line, flushed (and fsynced with fsync=True)

Every long job that can be resumed (evaluation, `nanoemox analyze --out`, timelines)
writes its results through this one class, so a crash is repaired the same way
everywhere: only the last line can have been cut short by a crash in mid-write; if it
does not decode (or fails `check`) it is cut off and that result is simply made again,
and a complete last line that lacks its newline gets one. Any other unreadable line
means the file was not written by an interrupted run: `read` raises `ValueError`
naming the file and line and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from nanoemox.data.manifest import decode_json_line

logger = logging.getLogger(__name__)


class ResultsFile:
    """One results file: `read` earlier results (repairing a cut last line), `appending` new ones.

    `check(obj)` returns the problem of a decoded line or None; `what` names a line in
    messages ("prediction", "window"); `fsync` forces every appended line to disk, not
    only out of the process (flush), for runs where a power cut must lose nothing.
    """

    def __init__(self, path: str | os.PathLike, *, what: str = "result",
                 check: Callable[[Any], str | None] | None = None, fsync: bool = False):
        self.path = Path(path)
        self.what = what
        self.check = check
        self.fsync = fsync

    def read(self) -> list[Any]:
        """The results already written, in order ([] when there is no file); see the module docstring."""
        if not self.path.exists():
            return []
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder, not a results file")
        data = self.path.read_bytes()
        results: list[Any] = []
        good_end, lines = 0, data.split(b"\n")
        for lineno, raw in enumerate(lines, start=1):
            last = lineno == len(lines)  # only a last line without its newline can be a write cut short
            if raw.strip():
                obj, problem = decode_json_line(raw)
                if problem is None and self.check is not None:
                    problem = self.check(obj)
                if problem:
                    if last:
                        logger.warning("%s: cutting off an unfinished last line (%s); that %s is made again",
                                       self.path, problem, self.what)
                        break
                    raise ValueError(f"{self.path}:{lineno}: unreadable {self.what} line ({problem}); fix or delete "
                                     "the file, or choose another output folder")
                results.append(obj)
            good_end += len(raw) + (0 if last else 1)
        if good_end != len(data) or (data and not data.endswith(b"\n")):
            self._repair(data[:good_end])
        return results

    def _repair(self, kept: bytes) -> None:
        """Rewrite the file atomically as its complete lines, each ending in a newline."""
        if kept and not kept.endswith(b"\n"):
            kept += b"\n"
        tmp = self.path.with_name(f".{self.path.name}.repair")
        tmp.write_bytes(kept)
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def appending(self) -> Iterator["ResultsFile.Appender"]:
        """Open for appending (creating folders); a cut last line is repaired first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                ends_whole = fh.read(1) == b"\n"
            if not ends_whole:
                self.read()
        with open(self.path, "a", encoding="utf-8") as fh:
            yield ResultsFile.Appender(fh, self.fsync)

    class Appender:
        """Appends one JSON line per result, flushed so that a crash loses at most the line being written."""

        def __init__(self, fh, fsync: bool):
            self._fh = fh
            self._fsync = fsync

        def append(self, obj: Any) -> None:
            self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self._fh.flush()
            if self._fsync:
                os.fsync(self._fh.fileno())
