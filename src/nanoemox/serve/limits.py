"""Guards of the HTTP service: request body size, and a gate that runs model calls in a
thread pool with a concurrency limit, a queue timeout and a per-request timeout.

The gate keeps a slot taken until the model call has really finished, even when the
client has already been answered 504: a timed-out call cannot be interrupted, and
counting it keeps the device from being oversubscribed. Clean-up of a request's
temporary files runs at that same moment, so they are removed whatever happened.

A request that makes several blocking calls (a streamed timeline: open the video, then
one call per batch of windows) takes one slot with `ModelGate.acquire` and runs each
call with `Held.step`, the per-request timeout applying to each step on its own.
`Held.release` gives the slot back (and cleans up) only once the last step has ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The request body passed the configured limit while it was being received."""


class BodyLimitMiddleware:
    """ASGI middleware answering 413 to bodies over `limit` bytes, before they are stored.

    A declared Content-Length is checked up front; a body without one (chunked) is
    counted as it arrives and cut off as soon as it passes the limit.
    """

    def __init__(self, app, limit: int, path_limits: dict[str, int] | None = None, openai_paths: tuple[str, ...] = ()):
        self.app = app
        self.limit = int(limit)
        self.path_limits = dict(path_limits or {})  # a route's own limit (base64 media in JSON)
        self.openai_paths = tuple(openai_paths)  # routes whose errors take OpenAI's shape

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = self.path_limits.get(path, self.limit)
        openai_shape = path.startswith(self.openai_paths) if self.openai_paths else False
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_413(send, limit, openai_shape)
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_413(send, limit, openai_shape)


async def _send_413(send, limit: int, openai_shape: bool = False) -> None:
    message = "request body larger than the limit of %d bytes; send a shorter clip" % limit
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
                      if openai_shape else {"detail": message}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class ModelGate:
    """Runs blocking model calls in a thread pool: at most `limit` at once, the rest wait.

    A request that waits longer than `queue_timeout` seconds for a slot gets 503; one
    whose call takes longer than `timeout` seconds gets 504.
    """

    def __init__(self, limit: int = 1, queue_timeout: float = 10.0, timeout: float = 300.0):
        if limit < 1:
            raise ValueError(f"the concurrency limit must be at least 1, got {limit}")
        self.limit = int(limit)
        self.queue_timeout = float(queue_timeout)
        self.timeout = float(timeout)
        self.pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="nanoemox-model")
        self._slots: asyncio.Semaphore | None = None
        self.running = 0

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # created inside the server's event loop
            self._slots = asyncio.Semaphore(self.limit)
        return self._slots

    async def acquire(self, cleanup: Callable[[], None] | None = None) -> "Held":
        """One slot, held until `Held.release`; 503 after `queue_timeout` s (then `cleanup()` runs)."""
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), self.queue_timeout)
        except asyncio.TimeoutError:
            if cleanup is not None:
                cleanup()
            raise HTTPException(503, f"the model is busy; all {self.limit} slot(s) stayed taken for {self.queue_timeout:g} s, retry later")
        self.running += 1
        return Held(self, slots, cleanup)

    async def run(self, fn: Callable[[], Any], cleanup: Callable[[], None] | None = None) -> Any:
        """Result of `fn()` run in the pool; `cleanup()` runs once `fn` is over (or never started)."""
        held = await self.acquire(cleanup)
        try:
            return await held.step(fn)
        finally:
            held.release()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class Held:
    """One slot of a `ModelGate`, kept across several blocking steps run in the gate's pool.

    Steps run one at a time. `release` never blocks and may be called more than once (the
    first call counts): it waits for a step still running (one that timed out, or whose
    client went away), then runs `last()` in the pool, then frees the slot and runs the
    gate's `cleanup()`.
    """

    def __init__(self, gate: ModelGate, slots: asyncio.Semaphore, cleanup: Callable[[], None] | None):
        self.gate = gate
        self._slots = slots
        self._cleanup = cleanup
        self._loop = asyncio.get_running_loop()
        self._pending: asyncio.Future | None = None
        self.released = False

    async def step(self, fn: Callable[[], Any]) -> Any:
        """Result of `fn()` run in the pool; 504 after the gate's timeout (the call still runs to its end)."""
        if self.released:
            raise RuntimeError("this slot was already released")
        if self._pending is not None and not self._pending.done():
            raise RuntimeError("the previous step of this slot is still running")
        future = self._loop.run_in_executor(self.gate.pool, fn)
        self._pending = future
        try:
            # shield: a timeout (or a cancelled request) leaves the call to finish; release waits for it.
            return await asyncio.wait_for(asyncio.shield(future), self.gate.timeout)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"the model did not answer within {self.gate.timeout:g} s") from None

    def release(self, last: Callable[[], Any] | None = None) -> None:
        """Free the slot once the running step is over and `last()` has run (see the class docstring)."""
        if self.released:
            return
        self.released = True

        def free(future: asyncio.Future | None = None) -> None:
            if future is not None and not future.cancelled() and future.exception() is not None:
                logger.warning("clean-up of a held model slot failed: %r", future.exception())
            self.gate.running -= 1
            self._slots.release()
            if self._cleanup is not None:
                self._cleanup()

        def after_step(_: asyncio.Future | None = None) -> None:
            if last is None:
                return free()
            try:
                self._loop.run_in_executor(self.gate.pool, last).add_done_callback(free)
            except RuntimeError:  # the pool is shut down (the server is stopping): run it here
                try:
                    last()
                finally:
                    free()

        if self._pending is None or self._pending.done():
            after_step()
        else:
            self._pending.add_done_callback(after_step)


class ClosingStream(StreamingResponse):
    """A streamed response that calls `on_close()` however it ends, even when the body never started.

    The streamed routes give their held model slot back there (`Held.release`).
    """

    def __init__(self, content, status_code: int = 200, on_close: Callable[[], None] | None = None, **kwargs):
        super().__init__(content, status_code, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()
