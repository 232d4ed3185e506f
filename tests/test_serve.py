"""HTTP service: analyze and chat endpoints, limits (413, 415, 503, 504), temp-file clean-up,
OpenAPI, and the web page driven through headless Chromium."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import CHROMIUM, serving, wait_until
from nanoemox.inference import Prediction, Predictor
from nanoemox.media.synth import write_video
from nanoemox.serve import ServeSettings, create_app

@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_pretrained(model_dir, max_new_tokens=6)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "hello.mp4", seconds=0.6, fps=10, size=(32, 32), audio_rate=16000)


@pytest.fixture()
def uploads(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def _post_clip(client, clip, name="hello.mp4", content_type="video/mp4", **fields):
    with open(clip, "rb") as fh:
        return client.post("/v1/analyze", files={"clip": (name, fh, content_type)}, data=fields)


def test_analyze_and_limits(predictor, clip, uploads):
    app = create_app(predictor, ServeSettings(tmp_dir=str(uploads), max_upload_bytes=clip.stat().st_size + 10))
    with TestClient(app) as client:
        ok = _post_clip(client, clip, tasks="msa,mer,erg", subtitle="I made it")
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["input"] == "hello.mp4" and set(body["answers"]) == {"msa", "mer", "erg"}
        assert body["audio_present"] is True and body["faces_found"] == 8
        scored = _post_clip(client, clip, tasks="mer", decode="score", candidates="glad,gloomy").json()
        assert scored["answers"]["mer"]["parsed"] in ("glad", "gloomy")
        assert sum(scored["answers"]["mer"]["probabilities"].values()) == pytest.approx(1.0)
        assert _post_clip(client, clip, name="hello.txt").status_code == 415
        assert _post_clip(client, clip, content_type="text/html").status_code == 415
        assert _post_clip(client, clip, tasks="msa,dreams").status_code == 422
        assert _post_clip(client, clip, decode="guess").status_code == 422
        big = client.post("/v1/analyze", files={"clip": ("big.mp4", b"\0" * (clip.stat().st_size + 11), "video/mp4")})
        assert big.status_code == 413
        huge = client.post("/v1/analyze", files={"clip": ("huge.mp4", b"\0" * 200_000, "video/mp4")})
        assert huge.status_code == 413  # stopped by the body limit before any parsing
        broken = client.post("/v1/analyze", files={"clip": ("broken.mp4", b"garbage bytes", "video/mp4")}, data={"tasks": "msa"})
        assert broken.status_code == 422
        assert "broken.mp4" in broken.json()["error"] and str(uploads) not in broken.text
    assert os.listdir(uploads) == []


def test_chat_json_and_multipart(predictor, clip, uploads):
    app = create_app(predictor, ServeSettings(tmp_dir=str(uploads)))
    with TestClient(app) as client:
        first = client.post("/v1/chat", json={"message": "I failed my exam", "history": []})
        assert first.status_code == 200, first.text
        body = first.json()
        assert set(body) >= {"reply", "think", "emotion", "text", "history"}
        assert body["history"] == [{"role": "speaker", "text": "I failed my exam"}, {"role": "listener", "text": body["reply"]}]
        with open(clip, "rb") as fh:
            second = client.post("/v1/chat", data={"message": "It hurts", "history": json.dumps(body["history"])},
                                 files={"clip": ("me.mp4", fh, "video/mp4")})
        assert second.status_code == 200, second.text
        assert len(second.json()["history"]) == 4 and second.json()["flags"]["video_present"] is True
        assert client.post("/v1/chat", json={"message": "  "}).status_code == 422
        bad_turn = client.post("/v1/chat", json={"message": "x", "history": [{"role": "robot", "text": "y"}]})
        assert bad_turn.status_code == 422 and "history turn 0" in bad_turn.text
        broken = client.post("/v1/chat", data={"message": "x"}, files={"clip": ("me.mp4", b"nope", "video/mp4")})
        assert broken.status_code == 422 and "me.mp4" in broken.text
    assert os.listdir(uploads) == []


def test_chunked_body_over_the_limit_is_cut_off(uploads):
    """Without a Content-Length the body is counted as it arrives."""
    def body():
        yield b'--b\r\nContent-Disposition: form-data; name="clip"; filename="a.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        for _ in range(500):
            yield b"\0" * 1000
        yield b"\r\n--b--\r\n"

    app = create_app(SlowPredictor(0.0), ServeSettings(tmp_dir=str(uploads), max_upload_bytes=1000))
    with TestClient(app) as client:
        response = client.post("/v1/analyze", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and "transfer-encoding" in response.request.headers
    assert os.listdir(uploads) == []


def test_health_openapi_and_page(predictor):
    with TestClient(create_app(predictor, model_name="tiny")) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model"] == "tiny" and health["running"] == 0
        spec = client.get("/openapi.json").json()
        assert {"/v1/analyze", "/v1/chat", "/health"} <= set(spec["paths"])
        assert "multipart/form-data" in spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
        page = client.get("/")
        assert page.status_code == 200 and 'id="analyze-form"' in page.text and "http" not in page.text.split("<body>")[1]
        assert client.get("/static/app.js").status_code == 200


class SlowPredictor:
    """Stands in for the model: answers after `delay` seconds and notes whether the upload existed."""

    device = "cpu"

    def __init__(self, delay: float):
        self.delay = delay
        self.saw_file: list[bool] = []

    def predict_records(self, records, root, progress=None, decode="generate"):
        records = list(records)
        self.saw_file.append(all(Path(r.media["video"]).is_file() for r in records))
        time.sleep(self.delay)
        for r in records:
            yield Prediction(r, "positive", None, {"audio_present": True, "video_present": True, "faces_found": 8, "frames": 8})


def test_busy_server_answers_503_and_slow_calls_504(clip, uploads):
    slow = SlowPredictor(delay=1.5)
    settings = ServeSettings(tmp_dir=str(uploads), max_concurrency=1, queue_timeout=0.3, request_timeout=0.8)
    with serving(create_app(slow, settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        results = {}
        first = threading.Thread(target=lambda: results.setdefault("first", _post_clip(client, clip, tasks="msa")))
        first.start()
        assert wait_until(lambda: client.get("/health").json()["running"] == 1)
        assert _post_clip(client, clip, tasks="msa").status_code == 503  # waited 0.3 s for the only slot
        first.join(10)
        assert results["first"].status_code == 504  # 1.5 s of work, 0.8 s allowed
        assert slow.saw_file == [True]
        # The timed-out call still holds its upload until it really ends; then both are gone.
        assert wait_until(lambda: client.get("/health").json()["running"] == 0)
        assert wait_until(lambda: os.listdir(uploads) == [])
        slow.delay = 0.0
        assert _post_clip(client, clip, tasks="msa").status_code == 200


def test_web_page_upload_in_chromium(predictor, clip, uploads, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package `chromium`); the browser test needs it")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the Python package `playwright` drives Chromium")
    app = create_app(predictor, ServeSettings(tmp_dir=str(uploads)))
    with serving(app) as url, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url + "/")
            page.set_input_files("#clip", str(clip))
            page.fill("#subtitle", "I finally passed")
            for task in ("ovmer", "eri", "mir"):  # fewer tasks keep the run short
                page.uncheck(f"input[name=task][value={task}]")
            page.select_option("#decode", "score")
            page.click("#submit")
            page.wait_for_selector("#answers tr[data-task=mer]")
            rows = page.eval_on_selector_all("#answers tr", "rows => rows.map(r => r.dataset.task)")
            assert rows == ["msa", "mer"]
            assert page.inner_text("#answers tr[data-task=msa] .answer") in ("positive", "negative", "neutral")
            assert "%" in page.inner_text("#answers tr[data-task=mer]")  # scored probabilities shown
            assert "hello.mp4" in page.inner_text("#status")
            assert "faces in 8 of 8 frames" in page.inner_text(".flags")
        finally:
            browser.close()
    assert wait_until(lambda: os.listdir(uploads) == [])
