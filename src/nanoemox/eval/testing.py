"""A scripted OpenAI-compatible chat server on loopback, for offline tests and dry runs.

    def respond(body, index):           # decoded request JSON, 0-based request number
        return "happy, calm"            # reply text (HTTP 200, chat-completion JSON)
        # or (500, "oops")              # any status with a raw body
        # or Raw(200, "not json")       # a raw 200 body (malformed reply)
        # or Raw(429, "", headers=(("Retry-After", "2"),), trickle=0.5)

    with FakeChatServer(respond) as server:
        client = LLMClient(LLMConfig(url=server.url, model="judge"))

The server listens on 127.0.0.1 with an ephemeral port, in a daemon thread, and
records every request body, the Authorization header and the peak number of
requests in flight.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Raw:
    """A reply sent verbatim with the given status, extra headers, and optionally trickled.

    `trickle` > 0 sends the body one byte at a time with that many seconds between bytes.
    """

    status: int
    body: str | bytes
    headers: tuple[tuple[str, str], ...] = ()
    trickle: float = 0.0


Reply = Union[str, tuple, Raw]


def completion(content: str, model: str = "fake") -> dict[str, Any]:
    """A minimal chat-completion response body."""
    return {
        "id": "fake-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


class FakeChatServer:
    """Loopback chat-completions server driven by a `respond(body, index)` function."""

    def __init__(self, respond: Callable[[dict, int], Reply]):
        self.respond = respond
        self.requests: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.peak_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _record(self, body: dict, auth: str | None) -> int:
        with self._lock:
            self.requests.append(body)
            self.auth_headers.append(auth)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return len(self.requests) - 1

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                index = server._record(body, self.headers.get("Authorization"))
                try:
                    reply = server.respond(body, index)
                    headers, trickle = (), 0.0
                    if isinstance(reply, Raw):
                        status, text, headers, trickle = reply.status, reply.body, reply.headers, reply.trickle
                    elif isinstance(reply, tuple):
                        status, text = reply
                    else:
                        status, text = 200, json.dumps(completion(reply, body.get("model", "fake")))
                    data = text if isinstance(text, bytes) else text.encode("utf-8")
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers:
                        self.send_header(name, value)
                    self.end_headers()
                    if trickle > 0:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(trickle)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); nothing to answer
                finally:
                    server._done()

        return Handler
