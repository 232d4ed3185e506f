"""The service under bad requests: no 5xx for any client input, every status in the OpenAPI spec."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from conftest import SchemathesisRun
from nanoemox.inference import Prediction
from nanoemox.serve import create_app


class EchoPredictor:
    """Answers instantly (the model is not what these tests are about)."""

    device = "cpu"

    def predict_records(self, records, root, progress=None, decode="generate"):
        for record in records:
            yield Prediction(record, "happy", None)

    def generate(self, samples, task=None, max_new_tokens=None):
        return ["<think>the emotion of the speaker is sad</think> I am here for you."] * len(samples)

    def sample(self, task, **kw):
        import torch

        return {"audio_present": torch.tensor(False), "video_present": torch.tensor(False),
                "faces_found": torch.zeros(8, dtype=torch.bool)}


@pytest.fixture()
def client(tmp_path):
    from nanoemox.serve import ServeSettings

    with TestClient(create_app(EchoPredictor(), ServeSettings(tmp_dir=str(tmp_path)))) as c:
        yield c


def test_bad_bodies_are_422_not_500(client):
    deep = "[" * 100_000 + "]" * 100_000
    cases = [
        client.post("/v1/chat", content=deep, headers={"content-type": "application/json"}),
        client.post("/v1/chat", data={"message": "hi"}, files={"history": ("h.json", io.BytesIO(b"[]"), "text/plain")}),
        client.post("/v1/chat", data={"message": "hi", "history": deep}),
        client.post("/v1/analyze"),
        client.post("/v1/analyze", json={"subtitle": "hello"}),
        client.post("/v1/analyze", content="just text", headers={"content-type": "text/plain"}),
        client.post("/v1/analyze", data={"tasks": "mer"}),
        client.post("/v1/analyze", data={"tasks": "mer"}, files={"subtitle": ("s.txt", io.BytesIO(b"x"), "text/plain")}),
    ]
    assert [r.status_code for r in cases] == [422] * len(cases), [r.text[:80] for r in cases]
    assert "nested too deeply" in cases[0].json()["detail"]
    assert "history must be a text field" in cases[1].json()["detail"]
    assert "nothing to analyze" in cases[6].json()["detail"]
    ok = client.post("/v1/analyze", data={"tasks": "mer", "subtitle": "I passed!"})
    assert ok.status_code == 200 and ok.json()["answers"]["mer"]["text"] == "happy"


def test_openapi_lists_every_status_returned(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/analyze", "/v1/chat"):
        codes = set(spec["paths"][path]["post"]["responses"])
        assert {"200", "413", "415", "422", "503", "504"} <= codes, (path, codes)


def test_schemathesis_finds_no_server_error(tmp_path):
    """Generated requests (a bounded number per operation) against the live app and its own spec."""
    from nanoemox.serve import ServeSettings

    run = SchemathesisRun(create_app(EchoPredictor(), ServeSettings(tmp_dir=str(tmp_path))))
    # /v1/chat/completions is answered by a real model: test_serve_openai runs schemathesis on it
    run.generate(lambda path: path != "/v1/chat/completions", max_examples=30)
    assert run.statuses and max(run.statuses) < 500
    assert not run.failures, run.failures
