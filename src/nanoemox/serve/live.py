"""WS /v1/live: live analysis over one WebSocket (the protocol: docs/live.md).

Why a WebSocket: media flow from the client and answers flow back on their own clocks, for
minutes, over one connection that every browser opens without extensions and any proxy
passes; Server-Sent Events would only carry the answers, WebRTC would need a media stack on
the server and gives no control over which frames arrive.

A page of another site (an `Origin` header whose host is not this service's) is refused
before the WebSocket opens. A session takes one model slot of the service's gate (`ModelGate`, as a timeline does)
after its `start` message and holds it until it ends; a service whose slots stay taken for
the queue timeout answers `busy` and closes (1013, try again later). Two coroutines share a
session: one receives (media are added as they come, so the client is never held up), one
answers the newest window whose media are all in (`LiveSession.due`), each in one step in
the gate's pool. However a session ends (a `stop`, the session limit, an idle client, a
refused message, a dropped connection) the answering coroutine is cancelled and the slot is
given back once a step still running is over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from nanoemox.live.protocol import CLOSE_BUSY, CLOSE_ERROR, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, ProtocolError, unpack
from nanoemox.live.session import AUDIO_RATES, LiveSession, check_start
from nanoemox.serve.limits import Held, ModelGate
from nanoemox.serve.settings import MAX_WINDOW_SECONDS, MIN_HOP_SECONDS, ServeSettings, labels_problem, span_problem

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 64 * 1024  # a control message


def live_router(predictor, gate: ModelGate, settings: ServeSettings) -> APIRouter:
    """The /v1/live WebSocket around one predictor."""
    router = APIRouter()

    @router.websocket("/v1/live")
    async def live(websocket: WebSocket):
        await LiveConnection(websocket, predictor, gate, settings).run()

    return router


def limits_of(settings: ServeSettings) -> dict[str, Any]:
    """The limits a session runs under, as the `ready` message states them."""
    return {"max_seconds": settings.max_live_seconds, "idle_timeout": settings.live_idle_timeout,
            "max_frame_bytes": settings.max_frame_bytes, "max_frame_side": settings.max_frame_side,
            "max_fps": settings.max_live_fps, "audio_rates": list(AUDIO_RATES),
            "max_window": MAX_WINDOW_SECONDS, "min_hop": MIN_HOP_SECONDS}


class LiveConnection:
    """One WebSocket connection: the start, the session, its end (see the module docstring)."""

    def __init__(self, websocket: WebSocket, predictor, gate: ModelGate, settings: ServeSettings):
        self.ws, self.predictor, self.gate, self.settings = websocket, predictor, gate, settings
        self.send_lock = asyncio.Lock()
        self.wake = asyncio.Event()  # media made a window due, a reply was asked for, or the session ends
        self.stopping = False
        self.reply_wanted = False
        self.started = time.monotonic()

    async def run(self) -> None:
        origin = self.ws.headers.get("origin")
        if origin and urlsplit(origin).netloc != self.ws.headers.get("host"):
            # A page of another site that the user happens to visit must not use the camera's service
            # (browsers do not apply CORS to WebSockets). Clients other than browsers send no Origin.
            logger.warning("live session from another site's page refused: Origin %s", origin)
            await self.ws.close(CLOSE_POLICY, reason="cross-site")
            return
        await self.ws.accept()
        held: Held | None = None
        worker: asyncio.Task | None = None
        try:
            options = check_start(await self._first_message())
            if problem := span_problem(options.window, options.hop) or labels_problem(options.labels):
                raise ProtocolError(problem)
            try:
                held = await self.gate.acquire()
            except HTTPException as exc:  # every slot stayed taken
                raise ProtocolError(str(exc.detail), code="busy", close=CLOSE_BUSY) from None
            try:
                session = LiveSession(self.predictor, options, self.settings.live_limits())
            except ValueError as exc:  # labels the model cannot offer (repeated, empty once cleaned)
                raise ProtocolError(str(exc)) from None
            await self._send({"type": "ready", **session.describe(), "limits": limits_of(self.settings)})
            self.started = time.monotonic()
            worker = asyncio.create_task(self._answer(session, held))
            reason = await self._receive(session, worker)
            self.stopping = True
            self.wake.set()
            await worker  # answers the window that is due, if any
            await self._send({"type": "end", "reason": reason, "windows": session.answered, "skipped": session.skipped,
                              "dropped_frames": session.media.dropped_frames,
                              "seconds": round(time.monotonic() - self.started, 3)})
            await self.ws.close(CLOSE_NORMAL)
        except ProtocolError as exc:
            await self._fail(exc.code, str(exc), exc.close)
        except WebSocketDisconnect:
            pass  # the client went away: nothing to tell it
        except HTTPException as exc:  # a step over the service's time limit
            await self._fail("timeout", str(exc.detail), CLOSE_ERROR)
        except Exception as exc:  # noqa: BLE001 - a failure of the model: say so and close
            logger.exception("live session failed")
            await self._fail("server_error", f"the session failed: {type(exc).__name__}: {exc}", CLOSE_ERROR)
        finally:
            if worker is not None and not worker.done():
                worker.cancel()
            if held is not None:
                held.release()  # once a step still running is over

    async def _first_message(self) -> dict[str, Any]:
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.settings.live_idle_timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no start message within {self.settings.live_idle_timeout:g} s", code="idle") from None
        body = self._control(message)
        if body.get("type") != "start":
            raise ProtocolError('the first message must be the JSON text {"type": "start", ...}')
        return body

    def _control(self, message: dict[str, Any]) -> dict[str, Any]:
        """The JSON object of a text message (`ProtocolError` for anything else)."""
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            raise ProtocolError("expected a JSON text message here, got a binary one")
        if len(text) > MAX_TEXT_CHARS:
            raise ProtocolError(f"a text message of {len(text)} characters is longer than {MAX_TEXT_CHARS}",
                                close=CLOSE_TOO_BIG)
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"a text message is not JSON ({str(exc)[:80]})") from None
        if not isinstance(body, dict):
            raise ProtocolError("a text message must be a JSON object with a `type`")
        return body

    async def _receive(self, session: LiveSession, worker: asyncio.Task) -> str:
        """Take messages until the session ends; returns why it ended ("stopped" or "limit")."""
        idle = self.settings.live_idle_timeout
        while True:
            if time.monotonic() - self.started > self.settings.max_live_seconds:
                return "limit"
            receiving = asyncio.ensure_future(self.ws.receive())
            done, _ = await asyncio.wait({receiving, worker}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            if receiving not in done:
                receiving.cancel()
                if worker in done:
                    worker.result()  # raises what stopped the answering
                raise ProtocolError(f"no message for {idle:g} s; the session is closed", code="idle")
            message = receiving.result()
            data = message.get("bytes")
            if message["type"] == "websocket.receive" and data is not None:
                if not session.receive(*unpack(data)):  # media past the session's length
                    return "limit"
                if session.due() is not None:
                    self.wake.set()
                continue
            body = self._control(message)
            kind = body.get("type")
            if kind == "stop":
                return "stopped"
            if kind == "reply":
                self.reply_wanted = True
                self.wake.set()
            else:
                raise ProtocolError(f"unknown message type {kind!r}; after start: binary media, reply or stop")

    async def _answer(self, session: LiveSession, held: Held) -> None:
        """Answer the newest due window whenever there is one; replies when asked; until the session stops."""
        while True:
            if self.reply_wanted:
                self.reply_wanted = False
                asked = time.monotonic()
                try:
                    reply = await held.step(session.reply)
                except ProtocolError as exc:  # no window yet: say so, the session goes on
                    await self._send({"type": "error", "code": exc.code, "error": str(exc), "fatal": False})
                else:
                    await self._send({"type": "reply", **reply, "latency": round(time.monotonic() - asked, 4)})
                continue
            index = session.due()
            if index is None:
                if self.stopping:
                    return
                self.wake.clear()
                await self.wake.wait()
                continue
            picked, skipped = session.pick(index)
            result = await held.step(lambda: session.answer(picked))
            await self._send({"type": "window", **result, "latency": session.latency(index), "skipped": skipped,
                              "skipped_total": session.skipped, "csv": session.csv_line(result)})

    async def _send(self, message: dict[str, Any]) -> None:
        """Send one JSON message; a connection that cannot take it is a client gone (`WebSocketDisconnect`)."""
        async with self.send_lock:
            try:
                await self.ws.send_text(json.dumps(message, ensure_ascii=False))
            except WebSocketDisconnect:
                raise
            except (RuntimeError, OSError) as exc:  # closed underneath us (the server's own exception types vary)
                raise WebSocketDisconnect(1006, str(exc)) from None

    async def _fail(self, code: str, error: str, close: int) -> None:
        """Tell the client what ended the session, then close; a client already gone is left alone."""
        try:
            await self._send({"type": "error", "code": code, "error": error, "fatal": True})
            await self.ws.close(close, reason=code)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # already gone
