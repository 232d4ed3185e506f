"""The LLM client against a hostile server: nothing it sends crashes the caller, waits are bounded."""

from __future__ import annotations

import gzip
import json
import time

from nanoemox.eval.llm import LLMClient, LLMConfig, LLMError, retry_after_seconds
from nanoemox.eval.testing import FakeChatServer, Raw, completion

MSG = [{"role": "user", "content": "hello"}]


def _client(server, **kw) -> LLMClient:
    opts = dict(url=server.url, model="m", timeout_s=2.0, max_retries=1, backoff_s=0.01)
    opts.update(kw)
    return LLMClient(LLMConfig(**opts))


def test_broken_gzip_and_deep_nesting_are_failures_of_that_request():
    good = json.dumps(completion("fine")).encode()
    broken_gzip = Raw(200, gzip.compress(good)[:-8] + b"garbage!", headers=(("Content-Encoding", "gzip"),))
    nested = Raw(200, "[" * 100_000 + "]" * 100_000)
    replies = {"gz": broken_gzip, "deep": nested, "ok": "fine"}
    with FakeChatServer(lambda body, i: replies[body["messages"][0]["content"]]) as server, _client(server) as client:
        out = client.chat_many([[{"role": "user", "content": k}] for k in ("gz", "deep", "ok")])
    assert isinstance(out[0], LLMError) and isinstance(out[1], LLMError) and out[2] == "fine"
    assert "malformed reply (RecursionError)" in str(out[1])


def test_a_trickling_server_is_cut_at_the_deadline():
    slow = Raw(200, json.dumps(completion("x" * 200)), trickle=0.05)  # ~250 bytes: 12 s if waited out
    with FakeChatServer(lambda body, i: slow) as server, _client(server, timeout_s=0.5, max_retries=0) as client:
        start = time.monotonic()
        out = client.chat_many([MSG])
        took = time.monotonic() - start
    assert isinstance(out[0], LLMError) and "no complete reply within 0.5 s" in str(out[0])
    assert took < 2.0


def test_retry_after_is_honoured_up_to_the_cap():
    waits = []
    with FakeChatServer(lambda body, i: Raw(429, "slow down", headers=(("Retry-After", "7"),)) if i == 0
                        else "fine") as server:
        client = LLMClient(LLMConfig(url=server.url, model="m", max_retries=2, backoff_s=0.01),
                           sleep=waits.append)
        assert client.chat(MSG) == "fine"
    assert waits == [7.0]
    waits.clear()
    with FakeChatServer(lambda body, i: Raw(503, "", headers=(("Retry-After", "9999"),)) if i == 0
                        else "fine") as server:
        client = LLMClient(LLMConfig(url=server.url, model="m", max_retries=2, backoff_s=0.01,
                                     max_retry_after_s=30), sleep=waits.append)
        assert client.chat(MSG) == "fine"
    assert waits == [30]
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and retry_after_seconds("soon") is None
