"""POST /v1/timeline: the NDJSON stream (header, windows as they are answered, end), its
refusals (413, 415, 422, 503), subtitles, clean-up after a disconnect or a failure midway,
and the timeline view of the web page driven through headless Chromium."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from nanoemox.inference import Predictor
from nanoemox.media.errors import CorruptMedia
from nanoemox.media.synth import write_video
from nanoemox.serve import ServeSettings, create_app
from nanoemox.serve import timeline as serve_app
from nanoemox.timeline import WindowAnswerer
from nanoemox.inference.windows import result_of
from conftest import CHROMIUM, serving, wait_until

SECONDS = 10.0  # with the default 4 s windows every 2 s: 4 windows
WINDOWS = 4


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_pretrained(model_dir, max_new_tokens=6)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "long.mp4", seconds=SECONDS, fps=10, size=(32, 32),
                       audio_rate=16000)


@pytest.fixture()
def uploads(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def _files(video: Path, name: str = "long.mp4", content_type: str = "video/mp4", subtitles=None) -> dict:
    files = {"clip": (name, video.read_bytes(), content_type)}
    if subtitles is not None:
        files["subtitles"] = subtitles
    return files


def _post(client, video: Path, name: str = "long.mp4", content_type: str = "video/mp4", subtitles=None, **fields):
    return client.post("/v1/timeline", files=_files(video, name, content_type, subtitles), data=fields)


def _lines(text: str) -> list[dict]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


class Gate:
    """Makes `WindowAnswerer.answer` wait before window `at` until `open()` (and counts calls):
    the test knows which windows exist at any moment without timing anything. Leaving its
    `with` block opens it, so a failing test does not leave a server thread waiting."""

    def __init__(self, monkeypatch, at: int = 1):
        self.opened = threading.Event()
        self.calls: list[int] = []
        self.at = at
        answer = WindowAnswerer.answer

        def gated(answerer, batch):
            first = batch[0].window.index
            self.calls.append(first)
            if first >= self.at:
                assert self.opened.wait(30), "the test never opened the gate"
            return answer(answerer, batch)

        monkeypatch.setattr(WindowAnswerer, "answer", gated)

    def open(self) -> None:
        self.opened.set()

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc) -> None:
        self.open()


def test_stream_lines_and_subtitles(predictor, video, uploads):
    srt = b"1\n00:00:00,500 --> 00:00:01,500\nI <b>finally</b> made it\n"
    with TestClient(create_app(predictor, ServeSettings(tmp_dir=str(uploads)))) as client:
        response = _post(client, video, subtitles=("mine.srt", srt, "application/x-subrip"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = _lines(response.text)
    header, windows, end = lines[0], lines[1:-1], lines[-1]
    assert header["type"] == "header" and header["input"] == "long.mp4" and header["subtitles"] == "mine.srt"
    assert header["window_count"] == WINDOWS and header["duration"] == pytest.approx(SECONDS, abs=0.1)
    assert header["tasks"] == ["mer", "msa"] and len(header["labels"]) == 7
    assert [w["type"] for w in windows] == ["window"] * WINDOWS
    assert [w["index"] for w in windows] == list(range(WINDOWS))
    for w in windows:
        assert "error" not in w and w["video_present"] and w["audio_present"]
        assert set(w["mer"]["probabilities"]) == set(header["labels"])
        assert sum(w["mer"]["probabilities"].values()) == pytest.approx(1.0)
        assert w["mer"]["confidence"] == max(w["mer"]["probabilities"].values())
        assert sum(w["msa"]["probabilities"].values()) == pytest.approx(1.0) and -1 <= w["msa"]["valence"] <= 1
    assert windows[0]["text"] == "I finally made it" and windows[1]["text"] is None  # 0.5-1.5 s is in window 0 only
    assert end["type"] == "end" and end["errors"] == 0 and end["seconds"] >= 0
    segments = end["segments"]
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(header["duration"])
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))  # they tile [0, duration]
    assert sum(s["windows"] for s in segments) == WINDOWS
    assert os.listdir(uploads) == []


def test_refusals_keep_their_status(predictor, video, uploads):
    settings = ServeSettings(tmp_dir=str(uploads), max_upload_bytes=video.stat().st_size + 3 * 1024 * 1024,
                             max_timeline_seconds=SECONDS - 2)
    with TestClient(create_app(predictor, settings)) as client:
        def status(**kw):
            fields = kw.pop("fields", {})
            return _post(client, video, **kw, **fields).status_code

        big = client.post("/v1/timeline", files={"clip": ("big.mp4", b"\0" * (settings.max_upload_bytes + 1), "video/mp4")})
        assert big.status_code == 413
        assert status(subtitles=("big.srt", b"x" * (2 * 1024 * 1024 + 1), "text/plain")) == 413
        assert status(name="long.txt") == 415
        assert status(content_type="text/html") == 415
        assert status(subtitles=("notes.txt", b"hello", "text/plain")) == 415
        for fields in ({"tasks": "mer,dreams"}, {"tasks": "erg"}, {"window": "abc"}, {"window": "0"}, {"hop": "-1"},
                       {"window": "inf"}, {"window": "nan"}, {"window": "3", "hop": "4"}, {"hop": "0.01"},
                       {"window": "600"}, {"labels": ",".join(f"l{i}" for i in range(40))}, {"speech_clips": "nearest"}):
            assert status(fields=fields) == 422, fields
        assert client.post("/v1/timeline", data={"window": "4"}).status_code == 422  # no clip
        assert client.post("/v1/timeline", json={"clip": "long.mp4"}).status_code == 422
        assert client.post("/v1/timeline", data={"clip": "long.mp4"},
                           files={"x": ("x.srt", b"1", "text/plain")}).status_code == 422  # text in place of the file
        broken = client.post("/v1/timeline", files={"clip": ("broken.mp4", b"garbage bytes", "video/mp4")})
        assert broken.status_code == 422 and broken.json()["detail"].startswith("broken.mp4: ")
        assert str(uploads) not in broken.text
        bad_subtitles = _post(client, video, subtitles=("words.vtt", b"not subtitles at all", "text/vtt"))
        assert bad_subtitles.status_code == 422 and bad_subtitles.json()["detail"].startswith("words.vtt: ")
        assert str(uploads) not in bad_subtitles.text
        too_long = _post(client, video)
        assert too_long.status_code == 422 and "long.mp4" in too_long.text and "8 s" in too_long.text
        spec = client.get("/openapi.json").json()["paths"]["/v1/timeline"]["post"]
        assert "application/x-ndjson" in spec["responses"]["200"]["content"]
        assert {"200", "413", "415", "422", "503", "504"} <= set(spec["responses"])
        assert spec["requestBody"]["content"]["multipart/form-data"]["schema"]["required"] == ["clip"]
    assert os.listdir(uploads) == []


def test_lines_arrive_while_later_windows_wait_and_the_slot_is_held(predictor, video, uploads, monkeypatch):
    """Window 1 cannot be answered before `gate.open()`: header and window 0 must have come before it."""
    gate = Gate(monkeypatch, at=1)
    settings = ServeSettings(tmp_dir=str(uploads), queue_timeout=0.3, timeline_batch_size=1)
    with serving(create_app(predictor, settings)) as url, httpx.Client(base_url=url, timeout=60) as client, gate:
        with client.stream("POST", "/v1/timeline", files=_files(video)) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert json.loads(next(lines))["type"] == "header"
            assert json.loads(next(lines))["index"] == 0
            assert wait_until(lambda: gate.calls == [0, 1])  # window 1 is being computed, and waits
            assert client.get("/health").json()["running"] == 1
            busy = client.post("/v1/timeline", files=_files(video))  # waits 0.3 s for the only slot
            assert busy.status_code == 503 and "busy" in busy.text
            gate.open()
            rest = [json.loads(line) for line in lines]
        assert [line.get("index") for line in rest] == [1, 2, 3, None] and rest[-1]["type"] == "end"
        assert wait_until(lambda: client.get("/health").json()["running"] == 0)
        assert wait_until(lambda: os.listdir(uploads) == [])


def test_disconnect_removes_the_upload_and_frees_the_slot(predictor, video, uploads, monkeypatch):
    """The client reads the header and goes away while window 0 is being computed."""
    gate = Gate(monkeypatch, at=0)
    closed = threading.Event()  # set when the server has seen the client go
    close = serve_app._TimelineStream.close
    monkeypatch.setattr(serve_app._TimelineStream, "close", lambda stream: (closed.set(), close(stream))[1])
    settings = ServeSettings(tmp_dir=str(uploads), queue_timeout=30, timeline_batch_size=1)
    with serving(create_app(predictor, settings)) as url, httpx.Client(base_url=url, timeout=60) as client, gate:
        with client.stream("POST", "/v1/timeline", files=_files(video)) as response:
            assert json.loads(next(response.iter_lines()))["type"] == "header"
        assert closed.wait(30)
        # The running step cannot be interrupted: it keeps the slot and the upload until it ends.
        assert wait_until(lambda: gate.calls == [0]) and len(os.listdir(uploads)) == 1
        assert client.get("/health").json()["running"] == 1
        gate.open()
        assert wait_until(lambda: os.listdir(uploads) == [])
        assert wait_until(lambda: client.get("/health").json()["running"] == 0)
        assert gate.calls == [0]  # nothing after the step that was running
        after = client.post("/v1/timeline", files=_files(video))
        assert after.status_code == 200 and _lines(after.text)[-1]["type"] == "end"
    assert os.listdir(uploads) == []


@pytest.mark.parametrize("failure", ["model", "media"])
def test_failure_midway_is_the_last_line(predictor, video, uploads, monkeypatch, failure):
    def problem() -> Exception:
        if failure == "model":
            return RuntimeError("the device fell over")
        # A media error naming the server's copy of the upload: the client must see its own name.
        return CorruptMedia(next(uploads.glob("*/clip.mp4")), "packets went missing")

    answer = WindowAnswerer.answer

    def failing(answerer, batch):
        if batch[0].window.index == 1:
            raise problem()
        return answer(answerer, batch)

    monkeypatch.setattr(WindowAnswerer, "answer", failing)
    settings = ServeSettings(tmp_dir=str(uploads), timeline_batch_size=1)
    with TestClient(create_app(predictor, settings)) as client:
        response = _post(client, video)
        assert response.status_code == 200
        lines = _lines(response.text)
        assert [line["type"] for line in lines] == ["header", "window", "error"]
        message = lines[-1]["error"]
        assert str(uploads) not in message
        if failure == "model":
            assert message == "window 1 failed: RuntimeError: the device fell over"
        else:
            assert message.startswith("long.mp4: packets went missing (at window 1); ")
        assert _post(client, video, tasks="msa").status_code == 200  # the slot was given back
    assert os.listdir(uploads) == []


def test_timeout_applies_per_step(predictor, video, uploads, monkeypatch):
    """A window slower than request_timeout ends the stream with an error line; the call keeps its slot
    and the upload until it really ends."""
    gate = Gate(monkeypatch, at=2)
    settings = ServeSettings(tmp_dir=str(uploads), request_timeout=1.0, timeline_batch_size=1)
    with TestClient(create_app(predictor, settings)) as client, gate:
        lines = _lines(_post(client, video).text)
        assert [line["type"] for line in lines] == ["header", "window", "window", "error"]
        assert lines[-1]["error"] == "window 2: the model did not answer within 1 s"
        assert client.get("/health").json()["running"] == 1 and len(os.listdir(uploads)) == 1
        gate.open()
        assert wait_until(lambda: client.get("/health").json()["running"] == 0)
    assert os.listdir(uploads) == []


def _scripted_answer(answerer, batch):
    """Windows 0-1 clearly happy, 2-3 clearly sad (two segments of 5 s): the page test's model."""
    results = []
    for prepared in batch:
        happy = prepared.window.index < 2
        probabilities = {label: 0.01 for label in answerer.labels}
        probabilities["happy" if happy else "sad"] = 1 - 0.01 * (len(answerer.labels) - 1)
        label = max(probabilities, key=probabilities.get)
        sentiments = {"negative": 0.1, "neutral": 0.2, "positive": 0.7} if happy else \
                     {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
        answers = {"mer": {"label": label, "confidence": probabilities[label], "probabilities": probabilities},
                   "msa": {"sentiment": max(sentiments, key=sentiments.get),
                           "valence": sentiments["positive"] - sentiments["negative"], "probabilities": sentiments}}
        results.append(result_of(prepared, answers))
    return results


def test_timeline_view_in_chromium(predictor, video, uploads, tmp_path, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package `chromium`); the browser test needs it")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the Python package `playwright` drives Chromium")
    monkeypatch.setattr(WindowAnswerer, "answer", _scripted_answer)
    gate = Gate(monkeypatch, at=2)  # windows 2 and 3 wait: the page must show 0 and 1 meanwhile
    app = create_app(predictor, ServeSettings(tmp_dir=str(uploads), timeline_batch_size=1))
    with serving(app) as url, playwright_api.sync_playwright() as pw, gate:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url + "/")
            assert page.is_hidden("#timeline-view") and page.is_visible("#analyze-form")
            page.click("#view-timeline")
            assert page.is_visible("#timeline-view") and page.is_hidden("#analyze-form")
            page.set_input_files("#timeline-video", str(video))
            page.wait_for_function("document.getElementById('timeline-player').readyState >= 1")
            assert page.eval_on_selector("#timeline-player", "v => v.src.startsWith('blob:')")
            page.click("#timeline-start")
            page.wait_for_selector("#timeline-chart [data-index='1']")
            assert page.inner_text("#timeline-status") == "long.mp4: window 2 of 4"
            assert page.locator("#timeline-chart [data-index]").count() == 2
            assert page.locator("#timeline-segments .segment").count() == 0
            gate.open()
            page.wait_for_selector("#timeline-segments .segment")
            assert page.eval_on_selector_all("#timeline-chart [data-index]", "ns => ns.map(n => +n.dataset.index)") \
                == list(range(WINDOWS))
            assert page.locator("#timeline-chart .valence").get_attribute("d").count("L") == WINDOWS - 1
            assert "4 windows" in page.inner_text("#timeline-status") and "happy" in page.inner_text("#timeline-legend")
            segments = page.eval_on_selector_all(
                "#timeline-segments .segment", "ns => ns.map(n => [+n.dataset.start, +n.dataset.end, n.dataset.label])")
            assert segments == [[0, 5, "happy"], [5, SECONDS, "sad"]]
            # Clicking a segment seeks to its start and plays it, pausing at its end.
            page.eval_on_selector("#timeline-player", "v => { v.currentTime = 8; v.playbackRate = 4; }")
            page.click("#timeline-segments .segment[data-label=happy]")
            page.wait_for_function("document.getElementById('timeline-player').paused === false")
            assert page.eval_on_selector("#timeline-player", "v => v.currentTime") < 2  # back near 0
            page.wait_for_function("document.getElementById('timeline-player').paused")
            assert 4.9 <= page.eval_on_selector("#timeline-player", "v => v.currentTime") < 6
            page.click("#timeline-segments .segment[data-label=sad]")
            assert page.eval_on_selector("#timeline-player", "v => v.currentTime") == pytest.approx(5, abs=0.6)
            assert page.eval_on_selector("#timeline-player", "v => v.error") is None  # the file really decodes
            # A refused video shows the server's message as an error.
            page.set_input_files("#timeline-video", {"name": "broken.mp4", "mimeType": "video/mp4", "buffer": b"junk"})
            page.click("#timeline-start")
            page.wait_for_selector("#timeline-status.error")
            assert page.inner_text("#timeline-status").startswith("broken.mp4: ")
        finally:
            browser.close()
    assert wait_until(lambda: os.listdir(uploads) == [])
