"""A live client for files and scripts: stream a video to `/v1/live` at its own pace (`stream_file`).

The file is read as a camera and a microphone would hand it over
(`WindowReader.media_events`): every frame at its time, as PNG by default (lossless,
so the service sees the pixels a timeline of the file sees), and the audio in 100 ms
chunks of 16 kHz mono, each sent once its last sample "has been captured". `speed` 2
sends twice as fast as real time; Ctrl-C stops sending, ends the session with `stop` and
keeps what came back. Answers are collected by a second thread as they
arrive; for each window the client also measures its own latency: the time from the
moment the window's end was sent (at the stream's pace) to the moment its answer came.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from nanoemox.live.protocol import pack_audio, pack_frame
from nanoemox.media.stream import WindowReader
from nanoemox.tasks import DEFAULT_WINDOW_TASKS

logger = logging.getLogger(__name__)

AUDIO_CHUNK_SECONDS = 0.1
FRAME_FORMATS = ("png", "jpeg")


class LiveClientError(RuntimeError):
    """The service refused the session or ended it with an error (the service's message), or is unreachable."""


def live_url(url: str) -> str:
    """ws(s)://HOST/v1/live from a ws, wss, http or https URL, with or without the path."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"{url}: not a service address; give ws://HOST:PORT/v1/live or http://HOST:PORT")
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, path if path.endswith("/v1/live") else path + "/v1/live", parts.query, ""))


@dataclass
class LiveRun:
    """What one streamed file gave: the `ready` message, the window answers in order, replies, the end."""

    ready: dict[str, Any] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    sent_seconds: float = 0.0  # media time sent
    interrupted: bool = False  # stopped early with Ctrl-C

    def summary(self) -> dict[str, Any]:
        latencies = [w["client_latency"] for w in self.windows if w.get("client_latency") is not None]
        return {"windows": len(self.windows), "skipped": self.windows[-1]["skipped_total"] if self.windows else 0,
                "errors": sum("error" in w for w in self.windows), "sent_seconds": round(self.sent_seconds, 3),
                "latency_median": round(float(np.median(latencies)), 4) if latencies else None,
                "latency_p95": round(float(np.percentile(latencies, 95)), 4) if latencies else None,
                "interrupted": self.interrupted, "end": self.end}


def encode_frame(rgb: np.ndarray, kind: str = "png", limit: int | None = None) -> bytes:
    """PNG (lossless) or JPEG bytes of an RGB frame; a PNG over `limit` bytes is sent as JPEG instead."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if kind == "png":
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if ok and (limit is None or data.size <= limit):
            return data.tobytes()
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("a frame could not be encoded")
    return data.tobytes()


def stream_file(
    url: str,
    video: str | os.PathLike,
    *,
    window: float = 4.0,
    hop: float = 1.0,
    tasks: Sequence[str] = DEFAULT_WINDOW_TASKS,
    labels: Sequence[str] | None = None,
    speed: float = 1.0,
    frame_format: str = "png",
    seconds: float | None = None,
    reply_every: float | None = None,
    on_message: Callable[[dict[str, Any]], Any] | None = None,
    timeout: float = 60.0,
    per_person: bool = False,
) -> LiveRun:
    """Stream `video` to the service at `url` (see the module docstring) and return what came back.

    `seconds`: stop after this much of the file; `reply_every`: ask for an empathetic reply
    every so many seconds of media; `on_message(message)`: called with each message as it
    arrives (in the receiving thread); `timeout`: seconds to wait for the service to answer
    the start and to end the session after the last media; `per_person`: answer each person
    in view (docs/people.md). Raises `LiveClientError` when
    the service refuses the session or ends it with an error, `MediaError` for a file that
    cannot be read, `ValueError` for bad settings.
    """
    # imported when a file is streamed: only this client needs the WebSocket library
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
    from websockets.sync.client import connect

    if not speed > 0 or frame_format not in FRAME_FORMATS:
        raise ValueError(f"speed must be positive and frame_format one of {', '.join(FRAME_FORMATS)}; "
                         f"got {speed} and {frame_format!r}")
    reader = WindowReader(video, window, hop, max_bytes=None)
    start = {"type": "start", "window": window, "hop": hop, "tasks": list(tasks), "video": reader.has_video,
             "audio": reader.has_audio, "sample_rate": reader.sample_rate}
    if labels:
        start["labels"] = list(labels)
    if per_person:
        start["per_person"] = True
    run = LiveRun()
    address = live_url(url)
    try:
        connection = connect(address, max_size=None, open_timeout=timeout, close_timeout=5)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise LiveClientError(f"{address}: cannot open a live session ({type(exc).__name__}: {exc})") from None
    with connection:
        connection.send(json.dumps(start))
        first = json.loads(connection.recv(timeout=timeout))
        if first.get("type") != "ready":
            raise LiveClientError(f"{address}: the service refused the session: {first.get('error', first)}")
        run.ready = first
        limit = first.get("limits", {}).get("max_frame_bytes")
        started = time.monotonic()
        receiver = threading.Thread(target=_receive, args=(connection, run, started, speed, on_message),
                                    name="nanoemox-live-receive", daemon=True)
        receiver.start()
        next_reply = reply_every
        try:
            for kind, at, data in reader.media_events(AUDIO_CHUNK_SECONDS):
                if seconds is not None and at >= seconds:
                    break
                if run.error is not None or run.end is not None:
                    break
                due = at + (AUDIO_CHUNK_SECONDS if kind == "audio" else 0.0)  # audio: once its last sample is in
                pause = started + due / speed - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if kind == "frame":
                    connection.send(pack_frame(at, encode_frame(data, frame_format, limit)))
                else:
                    connection.send(pack_audio(at, data))
                run.sent_seconds = max(run.sent_seconds, due)
                if next_reply is not None and due >= next_reply:
                    connection.send(json.dumps({"type": "reply"}))
                    next_reply += reply_every
        except KeyboardInterrupt:  # Ctrl-C: end the session properly and keep what came back
            run.interrupted = True
        except ConnectionClosed:
            pass  # the service closed: its message (error or end) says why
        try:
            if run.error is None and run.end is None:
                connection.send(json.dumps({"type": "stop"}))
        except ConnectionClosed:
            pass
        receiver.join(timeout)
    if run.error is not None:
        raise LiveClientError(f"{address}: {run.error.get('code')}: {run.error.get('error')}")
    if run.end is None:
        raise LiveClientError(f"{address}: the session ended without its `end` message")
    return run


def _receive(connection, run: LiveRun, started: float, speed: float, on_message) -> None:
    from websockets.exceptions import ConnectionClosed  # with the client, as above

    try:
        for text in connection:
            message = json.loads(text)
            kind = message.get("type")
            if kind == "window":
                # the client's latency: from the moment the window's end was sent, at the stream's pace
                message["client_latency"] = round(time.monotonic() - (started + message["end"] / speed), 4)
                run.windows.append(message)
            elif kind == "reply":
                run.replies.append(message)
            elif kind == "end":
                run.end = message
            elif kind == "error":
                if message.get("fatal", True):
                    run.error = message
                else:
                    logger.warning("the service: %s", message.get("error"))
            if on_message is not None:
                on_message(message)
    except ConnectionClosed:
        pass


def write_run(run: LiveRun, out: str | os.PathLike) -> list[Path]:
    """windows.jsonl, timeline.csv (the columns of `nanoemox timeline`) and live.json into `out`."""
    # imported here: only the command's output needs it
    from nanoemox.utils import atomic_write_bytes, atomic_write_json

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(w, ensure_ascii=False) + "\n" for w in run.windows)
    atomic_write_bytes(out / "windows.jsonl", lines.encode("utf-8"))
    table = run.ready["csv_header"] + "".join(w["csv"] for w in run.windows)  # the service's timeline.csv rows
    atomic_write_bytes(out / "timeline.csv", table.encode("utf-8"))
    atomic_write_json({"settings": run.ready, "summary": run.summary(), "replies": run.replies}, out / "live.json")
    return [out / "windows.jsonl", out / "timeline.csv", out / "live.json"]
