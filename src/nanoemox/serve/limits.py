"""Guards of the HTTP service: request body size, and a gate that runs model calls in a
thread pool with a concurrency limit, a queue timeout and a per-request timeout.

The gate keeps a slot taken until the model call has really finished, even when the
client has already been answered 504: a timed-out call cannot be interrupted, and
counting it keeps the device from being oversubscribed. Clean-up of a request's
temporary files runs at that same moment, so they are removed whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import HTTPException

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The request body passed the configured limit while it was being received."""


class BodyLimitMiddleware:
    """ASGI middleware answering 413 to bodies over `limit` bytes, before they are stored.

    A declared Content-Length is checked up front; a body without one (chunked) is
    counted as it arrives and cut off as soon as it passes the limit.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _send_413(send, self.limit)
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
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
                await _send_413(send, self.limit)


async def _send_413(send, limit: int) -> None:
    body = ('{"detail": "request body larger than the limit of %d bytes; send a shorter clip"}' % limit).encode()
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

    async def run(self, fn: Callable[[], Any], cleanup: Callable[[], None] | None = None) -> Any:
        """Result of `fn()` run in the pool; `cleanup()` runs once `fn` is over (or never started)."""
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), self.queue_timeout)
        except asyncio.TimeoutError:
            if cleanup is not None:
                cleanup()
            raise HTTPException(503, f"the model is busy; all {self.limit} slot(s) stayed taken for {self.queue_timeout:g} s, retry later")
        self.running += 1
        future = asyncio.get_running_loop().run_in_executor(self.pool, fn)

        def finished(_):
            self.running -= 1
            slots.release()
            if cleanup is not None:
                cleanup()

        future.add_done_callback(finished)
        try:
            # shield: a timeout answers the client but leaves the call to finish and clean up.
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"the model did not answer within {self.timeout:g} s") from None

    def close(self) -> None:
        self.pool.shutdown(wait=True)
