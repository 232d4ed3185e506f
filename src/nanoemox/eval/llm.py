"""A small client for OpenAI-compatible chat-completion endpoints, with retries and a reply cache.

Used by the LLM emotion extractor and the EMER judge. Every request is bounded:
a total deadline per attempt (`timeout_s` for the whole reply, however slowly it
trickles in, plus at most one read of `timeout_s`), replies of at most
`MAX_REPLY_BYTES`, at most `max_retries` retries with exponential backoff on timeouts,
connection errors, HTTP 429/5xx and malformed replies (a `Retry-After` header is
honoured up to `max_retry_after_s`), and at most `concurrency` requests in flight.
Nothing a server sends (a broken gzip body, deeply nested JSON, a huge reply) escapes
as anything but an `LLMError` for that request. Replies are cached on disk, one JSON file per
key, where the key hashes (endpoint, model, messages, sampling parameters); a
re-run with the same inputs therefore sends no request and gives the same result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Callable, Sequence

import httpx

from nanoemox.eval import DEFAULT_API_KEY_ENV

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


MAX_REPLY_BYTES = 4 * 1024 * 1024  # a chat reply is text; anything larger is refused


class LLMError(RuntimeError):
    """A request failed for good (after retries, or with a non-retryable status)."""


@dataclass
class LLMConfig:
    """Where and how to ask. `url` is the API base (".../v1") or the full chat URL."""

    url: str
    model: str
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0  # the longest server-requested wait (Retry-After) honoured
    concurrency: int = 4
    cache_dir: str | None = None
    params: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.0, "max_tokens": 512})

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"


class ReplyCache:
    """One JSON file per request key under `root`, written atomically (temp file + rename)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["reply"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable cache entry %s", path)
            return None

    def put(self, key: str, request: dict[str, Any], reply: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"request": request, "reply": reply}, fh, ensure_ascii=False)
        os.replace(tmp, path)


def request_key(endpoint: str, model: str, messages: Messages, params: dict[str, Any]) -> str:
    """Stable hash of everything that determines a reply."""
    blob = json.dumps(
        {"endpoint": endpoint, "model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _reply_text(raw: bytes) -> str:
    """The assistant text of a chat-completion reply body, or _Retryable if it is malformed."""
    try:
        content = json.loads(raw.decode("utf-8"))["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        shown = raw[:200].decode("utf-8", "replace")
        raise _Retryable(f"malformed reply ({type(exc).__name__}): {shown!r}") from None
    if not isinstance(content, str):
        raise _Retryable(f"reply content is not text: {str(content)[:200]!r}")
    return content


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LLMClient:
    """Thread-safe chat client; `requests_sent` counts HTTP requests actually made."""

    def __init__(
        self,
        config: LLMConfig,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config
        self.cache = ReplyCache(config.cache_dir) if config.cache_dir else None
        self.requests_sent = 0
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, config.concurrency))
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(timeout=config.timeout_s, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat(self, messages: Messages, **params: Any) -> str:
        """The reply text for one conversation; cached; raises LLMError on final failure."""
        merged = {**self.config.params, **params}
        key = request_key(self.config.endpoint, self.config.model, messages, merged)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        body = {"model": self.config.model, "messages": messages, **merged}
        with self._slots:
            reply = self._post_with_retries(body)
        if self.cache is not None:
            try:
                self.cache.put(key, body, reply)
            except OSError as exc:  # a full disk costs the cache entry, not the reply
                log.warning("could not cache an LLM reply under %s: %s", self.cache.root, exc)
        return reply

    def _read(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body bytes) of one POST, within the attempt's deadline and size limit."""
        deadline = time.monotonic() + self.config.timeout_s
        chunks, size = [], 0
        with self._http.stream("POST", self.config.endpoint, json=body) as response:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise _Retryable(f"reply larger than {MAX_REPLY_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise _Retryable(f"no complete reply within {self.config.timeout_s:g} s")
            return response.status_code, dict(response.headers), b"".join(chunks)

    def _post_once(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.requests_sent += 1
        try:
            status, headers, raw = self._read(body)
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.config.timeout_s:g} s") from None
        except httpx.HTTPError as exc:  # connection, protocol, and body decoding (e.g. broken gzip) errors
            raise _Retryable(f"request failed ({type(exc).__name__}): {exc}") from None
        text = raw[:300].decode("utf-8", "replace")
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {text[:200]!r}", retry_after_seconds(headers.get("retry-after")))
        if status >= 400:
            raise LLMError(
                f"{self.config.endpoint} refused the request with HTTP {status}: "
                f"{text!r}; check --llm-url, --llm-model and the API key in "
                f"${self.config.api_key_env}"
            )
        return _reply_text(raw)

    def _post_with_retries(self, body: dict[str, Any]) -> str:
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._post_once(body)
            except _Retryable as exc:
                if attempt == attempts - 1:
                    raise LLMError(
                        f"{self.config.endpoint}: giving up after {attempts} attempt(s); last error: {exc}"
                    ) from exc
                delay = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt)
                if exc.retry_after is not None:  # the server said when to come back
                    delay = min(self.config.max_retry_after_s, max(delay, exc.retry_after))
                log.warning("LLM request failed (%s); retry %d in %.2f s", exc, attempt + 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def chat_many(self, conversations: Sequence[Messages], **params: Any) -> list[str | LLMError]:
        """Replies for many conversations, in order; a failed one is returned as its LLMError."""

        def one(messages: Messages) -> str | LLMError:
            try:
                return self.chat(messages, **params)
            except LLMError as exc:
                return exc
            except Exception as exc:  # never let one request end a long job: it becomes that sample's failure
                log.warning("LLM request failed unexpectedly: %s: %s", type(exc).__name__, exc)
                return LLMError(f"unexpected {type(exc).__name__}: {exc}")

        if not conversations:
            return []
        workers = max(1, min(self.config.concurrency, len(conversations)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, conversations))


# ---------------------------------------------------------------- prompt templates
def load_template(name_or_path: str | os.PathLike, required: Sequence[str] = ()) -> Template:
    """A prompt template: a shipped name ("emer_clue_score") or a path to a text file.

    Templates use `$name` placeholders (string.Template), so braces in examples are
    safe. Every name in `required` must appear, so a replaced template cannot
    silently drop the text it is meant to judge.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = Path(str(resources.files("nanoemox").joinpath("resources", "prompts", f"{name_or_path}.txt")))
    if not path.is_file():
        raise FileNotFoundError(f"prompt template not found: {name_or_path} (looked at {path})")
    template = Template(path.read_text(encoding="utf-8"))
    # Template.get_identifiers() needs Python 3.11; read the names from its pattern instead.
    present = {
        m.group("named") or m.group("braced")
        for m in template.pattern.finditer(template.template)
        if m.group("named") or m.group("braced")
    }
    missing = [name for name in required if name not in present]
    if missing:
        raise ValueError(
            f"prompt template {path} lacks placeholder(s) {', '.join('$' + m for m in missing)}; "
            "add them where the text should go"
        )
    return template


def user_message(template: Template, **values: str) -> Messages:
    """A one-turn conversation from a template filled with `values`."""
    return [{"role": "user", "content": template.safe_substitute(**values)}]
