"""LLM client and EMER judge against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import time

import pytest

from nanoemox.eval.judge import EmerJudge, parse_score
from nanoemox.eval.llm import LLMClient, LLMConfig, LLMError, load_template
from nanoemox.eval.testing import FakeChatServer, Raw

MSG = [{"role": "user", "content": "hello"}]


def _client(server, tmp_path=None, **kw) -> LLMClient:
    opts = dict(url=server.url, model="m", timeout_s=2.0, max_retries=2, backoff_s=0.01,
                cache_dir=str(tmp_path / "cache") if tmp_path else None)
    opts.update(kw)
    return LLMClient(LLMConfig(**opts))


# ---------------------------------------------------------------- client
def test_cache_makes_second_run_free(tmp_path):
    with FakeChatServer(lambda body, i: "reply to " + body["messages"][0]["content"]) as server:
        convs = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
        with _client(server, tmp_path) as first:
            out1 = first.chat_many(convs)
        assert out1 == ["reply to q0", "reply to q1", "reply to q2"]
        assert len(server.requests) == 3 and first.requests_sent == 3
        with _client(server, tmp_path) as second:
            out2 = second.chat_many(convs)
        assert out2 == out1
        assert second.requests_sent == 0 and len(server.requests) == 3
        # Different sampling parameters are a different key.
        with _client(server, tmp_path) as third:
            third.chat(convs[0], temperature=0.7)
        assert len(server.requests) == 4
    # The request carried the model, messages and default temperature 0.
    assert server.requests[0]["model"] == "m" and server.requests[0]["temperature"] == 0.0


def test_slow_reply_times_out_then_retry_succeeds():
    def respond(body, i):
        if i == 0:
            time.sleep(1.0)
        return "ok"

    with FakeChatServer(respond) as server, _client(server, timeout_s=0.3) as client:
        assert client.chat(MSG) == "ok"
        assert client.requests_sent == 2


def test_server_error_then_success_and_permanent_failure():
    with FakeChatServer(lambda body, i: (500, "boom") if i == 0 else "fine") as server:
        with _client(server) as client:
            assert client.chat(MSG) == "fine"
            assert client.requests_sent == 2
    with FakeChatServer(lambda body, i: (503, "down")) as server:
        with _client(server, max_retries=3) as client:
            with pytest.raises(LLMError, match="giving up after 4 attempt"):
                client.chat(MSG)
        assert len(server.requests) == 4  # bounded: 1 try + 3 retries


def test_client_error_is_not_retried():
    with FakeChatServer(lambda body, i: (401, '{"error": "bad key"}')) as server:
        with _client(server) as client, pytest.raises(LLMError, match="HTTP 401"):
            client.chat(MSG)
        assert len(server.requests) == 1


def test_malformed_reply_becomes_error_not_crash(tmp_path):
    replies = [Raw(200, "not json"), Raw(200, '{"choices": []}'), Raw(200, '{"choices": [{"message": {}}]}')]
    with FakeChatServer(lambda body, i: replies[i % 3]) as server:
        with _client(server, tmp_path) as client:
            out = client.chat_many([MSG])
        assert isinstance(out[0], LLMError) and "malformed" in str(out[0])
        assert len(server.requests) == 3
    # Failures are not cached.
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_concurrency_limit_and_api_key(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sekret")

    def respond(body, i):
        time.sleep(0.15)
        return "x"

    with FakeChatServer(respond) as server:
        with _client(server, concurrency=2, api_key_env="MY_JUDGE_KEY") as client:
            client.chat_many([[{"role": "user", "content": str(i)}] for i in range(6)])
    assert server.peak_in_flight == 2
    assert set(server.auth_headers) == {"Bearer sekret"}


def test_template_lookup_and_placeholder_check(tmp_path):
    assert "$text" in load_template("extract_emotions", ["text"]).template
    bad = tmp_path / "mine.txt"
    bad.write_text("Rate these {braces} without placeholders")
    with pytest.raises(ValueError, match=r"\$reference"):
        load_template(bad, ["reference"])
    with pytest.raises(FileNotFoundError):
        load_template("no_such_template")


# ---------------------------------------------------------------- judge
@pytest.mark.parametrize(
    "reply, expected",
    [("7", 7.0), ("Score: 8/10", 8.0), ("10.", 10.0), ("I'd say 6.5 overall", 6.5),
     ("0", None), ("85", None), ("no idea", None), ("", None), (None, None)],
)
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


def _judge_server():
    """Summaries echo the text; clue scores are 9 when both summaries mention joy, else 3;
    labels are the first word after 'feels'; label scores 10 when equal, 2 otherwise,
    and garbage for the word 'weird'."""

    def respond(body, i):
        prompt = body["messages"][0]["content"]
        assert body["temperature"] == 0.0
        if "Summary:" in prompt:
            return "SUMMARY " + prompt.split("Description:")[1].split("Summary:")[0].strip()
        if "Reference summary:" in prompt:
            ref, pred = prompt.split("Reference summary:")[1].split("Model summary:")
            return "9" if "joy" in ref and "joy" in pred else "Score: 3"
        if "Emotion:" in prompt:
            return prompt.split("feels ")[1].split()[0].strip(".,") + "\n"
        ref = prompt.split("Reference label:")[1].split("\n")[0].strip()
        pred = prompt.split("Model label:")[1].split("\n")[0].strip()
        if pred == "weird":
            return "cannot tell"
        return "10" if ref == pred else "2"

    return FakeChatServer(respond)


def test_emer_judge_two_step_scores_and_failures(tmp_path):
    refs = ["She feels happy, full of joy.", "He feels sad.", "He feels angry."]
    preds = ["She feels happy and joy shows.", "He feels calm.", "He feels weird."]
    with _judge_server() as server, _client(server, tmp_path) as client:
        result = EmerJudge(client).score(preds, refs)
    # Clue: 9, 3, 3 -> mean 5. Label: happy/happy 10, sad/calm 2, weird unparseable.
    assert result["clue_overlap"] == pytest.approx(5.0)
    assert result["label_overlap"] == pytest.approx(6.0)
    assert result["clue_failures"] == 0 and result["label_failures"] == 1
    assert result["samples"][0]["labels"] == ("happy", "happy")
    assert result["samples"][2]["errors"]
    # 6 summaries + 3 clue scores + 6 labels + 3 label scores.
    assert len(server.requests) == 18


def test_emer_judge_survives_a_dead_endpoint():
    with FakeChatServer(lambda body, i: (500, "down")) as server:
        with _client(server, max_retries=0) as client:
            result = EmerJudge(client).score(["a"], ["b"])
    assert result["clue_overlap"] is None and result["label_overlap"] is None
    assert result["clue_failures"] == 1 and result["label_failures"] == 1
