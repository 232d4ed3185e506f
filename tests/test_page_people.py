"""The page's per-person answers in headless Chromium: one box per person drawn over the video, scaled
from the service's frames to the video as shown (letterboxed), following the video's time, in the Clip,
Timeline and Live views; and the task checkboxes built from /v1/tasks.

The page is served as `nanoemox serve` serves it (its static folder), against a small app that answers
/v1/tasks, /v1/analyze, /v1/timeline and the /v1/live WebSocket with fixed answers for two people, and
records what the page sent."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

import nanoemox
from nanoemox.tasks import TASKS
from conftest import CHROMIUM, serving

STATIC_DIR = Path(nanoemox.__file__).parent / "serve" / "static"  # the page as `nanoemox serve` serves it

FRAME = (320, 160)  # the test clip's frames, [W, H]
SECONDS = 2.0
LABELS = ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
SENTIMENTS = ["negative", "neutral", "positive"]
PX = 5  # how far a drawn box may be from where the scaled box lies


def mer(label: str, confidence: float) -> dict:
    rest = (1 - confidence) / (len(LABELS) - 1)
    return {"label": label, "confidence": confidence,
            "probabilities": {name: confidence if name == label else rest for name in LABELS}}


def msa(sentiment: str, valence: float) -> dict:
    return {"sentiment": sentiment, "valence": valence,
            "probabilities": {name: 0.8 if name == sentiment else 0.1 for name in SENTIMENTS}}


# Two people side by side; the first moves right by 10 px a second (the Clip view follows the time).
CLIP_PEOPLE = {
    "frame_size": list(FRAME), "speaker": 0,
    "tracks": [
        {"id": 0, "boxes": [[t, 40 + 10 * t, 30, 80, 100] for t in (0.0, 1.0, 2.0)], "speaking_share": 0.83,
         "speaking": True, "answers": {"mer": mer("happy", 0.8), "msa": msa("positive", 0.6),
                                       "ovmer": {"words": ["joyful", "warm"], "text": "joyful, warm"}}},
        {"id": 1, "boxes": [[t, 200, 40, 70, 90] for t in (0.0, 1.0, 2.0)], "speaking_share": 0.17,
         "speaking": False, "answers": {"mer": mer("sad", 0.6), "msa": msa("negative", -0.4),
                                        "ovmer": {"words": ["gloomy"], "text": "gloomy"}}},
    ],
}

# Windows of 1 s every 0.5 s (centres 0.5, 1, 1.5); in the middle one the second person is not seen.
TIMELINE_PEOPLE = [
    [{"id": 0, "box": [40, 30, 80, 100], "speaking": True, "speaking_share": 0.9, "mer": mer("happy", 0.8)},
     {"id": 1, "box": [200, 40, 70, 90], "speaking": False, "speaking_share": 0.1, "mer": mer("sad", 0.6)}],
    [{"id": 0, "box": [50, 30, 80, 100], "speaking": True, "speaking_share": 1.0, "mer": mer("happy", 0.7)},
     {"id": 1, "box": None, "speaking": False, "speaking_share": 0.0, "mer": mer("sad", 0.5)}],
    [{"id": 0, "box": [60, 20, 90, 110], "speaking": False, "speaking_share": 0.2, "mer": mer("neutral", 0.5)},
     {"id": 1, "box": [190, 40, 80, 100], "speaking": True, "speaking_share": 0.8, "mer": mer("surprise", 0.7)}],
]

LIVE_FRAME = (640, 480)  # Chromium's fake camera
LIVE_PEOPLE = [
    {"id": 0, "box": [80, 120, 160, 200], "speaking": True, "speaking_share": 0.7, "mer": mer("happy", 0.8)},
    {"id": 1, "box": [400, 100, 150, 220], "speaking": False, "speaking_share": 0.3, "mer": mer("fear", 0.6)},
]


def task_listing() -> list[dict]:
    return [{"name": t.name, "description": t.description, "identifier": t.identifier,
             "candidates": list(t.candidates) or None, "takes_candidates": t.takes_candidates,
             "timeline": t.timeline, "reply": t.reply} for t in TASKS.values()]


def fake_app() -> FastAPI:
    """The page and fixed answers; `app.state.sent` collects what the page sent, per route."""
    app = FastAPI()
    app.state.sent = {"analyze": [], "timeline": [], "live": []}
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/")
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/v1/tasks")
    async def tasks():
        return {"tasks": task_listing()}

    @app.post("/v1/analyze")
    async def analyze(request: Request):
        form = await request.form()
        fields = {k: v.filename if hasattr(v, "filename") else v for k, v in form.multi_items()}
        app.state.sent["analyze"].append(fields)
        body = {"input": fields["clip"], "audio_present": False, "faces_found": 20, "frames": 20,
                "answers": {"mer": {"parsed": "happy", "text": "happy", "probabilities": mer("happy", 0.7)["probabilities"]},
                            "msa": {"parsed": "positive", "text": "positive"}}, "errors": {}}
        if fields.get("per_person") == "true":
            body["people"] = CLIP_PEOPLE
        return body

    @app.post("/v1/timeline")
    async def timeline(request: Request):
        form = await request.form()
        fields = {k: v.filename if hasattr(v, "filename") else v for k, v in form.multi_items()}
        app.state.sent["timeline"].append(fields)
        per_person = fields.get("per_person") == "true"
        header = {"type": "header", "duration": SECONDS, "window_count": 3, "window": 1.0, "hop": 0.5,
                  "tasks": ["mer", "msa"], "labels": LABELS, "video_stream": True, "audio_stream": False,
                  "input": fields["clip"], "subtitles": None}
        if per_person:
            header.update(frame_size=list(FRAME), per_person=True)
        lines = [header]
        for index, people in enumerate(TIMELINE_PEOPLE):
            window = {"type": "window", "index": index, "start": 0.5 * index, "end": 0.5 * index + 1.0,
                      "mer": mer("happy", 0.7), "msa": msa("positive", 0.5), "faces_found": 10, "frames": 10}
            if per_person:
                window["people"] = people
            lines.append(window)
        lines.append({"type": "end", "errors": 0, "seconds": 0.1,
                      "segments": [{"start": 0.0, "end": SECONDS, "label": "happy", "confidence": 0.7, "windows": 3}]})
        return StreamingResponse((json.dumps(line) + "\n" for line in lines), media_type="application/x-ndjson")

    @app.websocket("/v1/live")
    async def live(ws: WebSocket):
        """ready, one window with people; a reply request gets a window without people, then the reply."""
        await ws.accept()
        start = json.loads(await ws.receive_text())
        app.state.sent["live"].append(start)
        await ws.send_json({"type": "ready", "window": 4.0, "hop": 1.0, "tasks": start["tasks"], "labels": LABELS,
                            "sentiments": SENTIMENTS, "frame_rate": 4, "video": True, "audio": start["audio"],
                            "csv_header": "start,end\n"})
        window = {"type": "window", "index": 0, "start": 0.0, "end": 4.0, "mer": mer("happy", 0.8),
                  "faces_found": 2, "frames": 8, "audio_present": True, "latency": 0.1, "skipped_total": 0,
                  "csv": "0,4\n"}
        if start.get("per_person"):
            window.update(people=LIVE_PEOPLE, frame_size=list(LIVE_FRAME))
        await ws.send_json(window)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = json.loads(message["text"]) if message.get("text") else {}
                if text.get("type") == "reply":
                    await ws.send_json({**window, "index": 1, "start": 1.0, "end": 5.0, "people": None,
                                        "frame_size": None, "csv": "1,5\n"})
                    await ws.send_json({"type": "reply", "text": "That sounds lovely."})
                elif text.get("type") == "stop":
                    await ws.send_json({"type": "end", "reason": "stopped", "windows": 2, "skipped": 0, "seconds": 5})
                    await ws.close()
                    return
        except (WebSocketDisconnect, asyncio.CancelledError):
            return

    return app


def write_clip(path) -> None:
    """2 s of 320x160 video at 10 fps: two coloured rectangles side by side where the people stand."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = FRAME[0], FRAME[1], "yuv420p"
        for i in range(int(10 * SECONDS)):
            picture = np.full((FRAME[1], FRAME[0], 3), 30, np.uint8)
            picture[30:130, 40 + i // 2:120 + i // 2] = (220, 120, 40)
            picture[40:130, 200:270] = (40, 120, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("people") / "two.mp4"
    write_clip(path)
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A page of the fake app in headless Chromium (fake camera and microphone); `page.app` is the app."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package `chromium`); the browser test needs it")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the Python package `playwright` drives Chromium")
    app = fake_app()
    with serving(app) as url, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM, headless=True,
            viewport={"width": 900, "height": 1400},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"],
        )
        try:
            tab = browser.new_page()
            tab.set_default_timeout(20_000)
            errors = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.app, tab.url_root = app, url
            yield tab
            assert not errors, errors
        finally:
            browser.close()


def open_view(page, view: str) -> None:
    page.goto(page.url_root + "/")
    page.wait_for_selector("#tasks input[value=erg]")
    page.click(f"#view-{view}")


def seek(page, video: str, seconds: float) -> None:
    page.eval_on_selector(video, """(v, s) => new Promise((done) => {
        v.addEventListener("seeked", () => requestAnimationFrame(() => done()), { once: true });
        v.currentTime = s; })""", seconds)


def drawn_boxes(page, view: str) -> dict[int, dict]:
    """The person boxes over the view's video: {id: {text, left, top, width, height}} in page pixels."""
    boxes = page.evaluate("""(view) => [...document.querySelectorAll(`#${view}-view .person-box`)].map((n) => {
        const r = n.getBoundingClientRect();
        return { id: +n.dataset.person, text: n.querySelector(".person-label").textContent,
                 left: r.left, top: r.top, width: r.width, height: r.height }; })""", view)
    return {box.pop("id"): box for box in boxes}


def scaled(page, video: str, frame, box, mirrored=False) -> dict:
    """Where box [x, y, w, h] of a frame of size `frame` lies on the page: object-fit contain, centred."""
    v = page.eval_on_selector(video, """v => { const r = v.getBoundingClientRect();
        return { left: r.left, top: r.top, width: v.clientWidth, height: v.clientHeight,
                 natural: [v.videoWidth, v.videoHeight] }; }""")
    natural = v["natural"]
    scale = min(v["width"] / natural[0], v["height"] / natural[1])
    shown = (natural[0] * scale, natural[1] * scale)
    sx, sy = shown[0] / frame[0], shown[1] / frame[1]
    x, y, w, h = box
    left = (frame[0] - x - w) * sx if mirrored else x * sx
    return {"left": v["left"] + (v["width"] - shown[0]) / 2 + left, "top": v["top"] + (v["height"] - shown[1]) / 2 + y * sy,
            "width": w * sx, "height": h * sy}


def assert_placed(drawn: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert drawn[key] == pytest.approx(value, abs=PX), (key, drawn, expected)


def test_task_boxes_come_from_the_service(page):
    page.goto(page.url_root + "/")
    page.wait_for_selector("#tasks input[value=erg]")
    boxes = page.eval_on_selector_all("#tasks label", """ls => ls.map((l) => {
        const box = l.querySelector("input"); return [box.value, l.textContent.trim(), box.checked]; })""")
    assert boxes == [[t.name, t.description, not t.reply] for t in TASKS.values()]
    assert not page.is_checked("#per-person") and not page.is_checked("#timeline-per-person")


def test_clip_view_boxes_each_person_over_the_clip(page, clip):
    open_view(page, "clip")
    page.set_input_files("#clip", str(clip))
    for task in ("eri", "mir"):
        page.uncheck(f"#tasks input[value={task}]")
    page.check("#per-person")
    page.click("#submit")
    page.wait_for_selector("#people tr[data-person='1']")
    sent = page.app.state.sent["analyze"][-1]
    assert sent["per_person"] == "true" and sent["tasks"] == "msa,mer,ovmer" and sent["clip"] == "two.mp4"
    rows = page.eval_on_selector_all("#people tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert rows == [["#1 · speaking", "83%", "happy 80%", "positive (valence 0.60)", "joyful, warm"],
                    ["#2", "17%", "sad 60%", "negative (valence -0.40)", "gloomy"]]
    page.wait_for_function("document.getElementById('clip-player').readyState >= 1")
    assert page.is_visible("#clip-player")
    for seconds, t in ((1.0, 1.0), (1.8, 2.0), (0.3, 0.0)):  # the box of the nearest time
        seek(page, "#clip-player", seconds)
        drawn = drawn_boxes(page, "clip")
        assert sorted(drawn) == [0, 1]
        assert drawn[0]["text"] == "#1 happy 80% · speaking" and drawn[1]["text"] == "#2 sad 60%"
        for track in CLIP_PEOPLE["tracks"]:
            box = next(b[1:] for b in track["boxes"] if b[0] == t)
            assert_placed(drawn[track["id"]], scaled(page, "#clip-player", FRAME, box))
    # the clip is letterboxed (2:1 in a box at most 22rem high): the boxes lie inside the picture
    frame = page.eval_on_selector("#clip-player", "v => [v.clientWidth, v.clientHeight]")
    assert frame[0] / frame[1] > FRAME[0] / FRAME[1] + 0.1


def test_clip_view_without_people_draws_no_boxes(page, clip):
    open_view(page, "clip")
    page.set_input_files("#clip", str(clip))
    page.click("#submit")
    page.wait_for_selector("#answers tr[data-task=mer]")
    assert "per_person" not in page.app.state.sent["analyze"][-1]
    assert page.locator("#people").count() == 0 and page.locator(".person-box").count() == 0
    assert page.is_hidden("#clip-frame")
    assert page.eval_on_selector_all("#answers tr", "rs => rs.map(r => r.dataset.task)") == ["mer", "msa"]
    assert page.inner_text("#answers tr[data-task=mer] th") == "multimodal emotion recognition"


def test_timeline_view_boxes_the_people_of_the_window_at_the_playhead(page, clip):
    open_view(page, "timeline")
    page.set_input_files("#timeline-video", str(clip))
    page.wait_for_function("document.getElementById('timeline-player').readyState >= 1")
    page.check("#timeline-per-person")
    page.click("#timeline-start")
    page.wait_for_selector("#timeline-segments .segment")
    assert page.app.state.sent["timeline"][-1]["per_person"] == "true"
    assert page.eval_on_selector_all("#timeline-chart [data-index]", "ns => ns.length") == 3
    for seconds, index in ((0.2, 0), (1.1, 1), (1.4, 2), (2.0, 2)):  # the window whose centre is nearest
        seek(page, "#timeline-player", seconds)
        drawn = drawn_boxes(page, "timeline")
        people = [p for p in TIMELINE_PEOPLE[index] if p["box"] is not None]
        assert sorted(drawn) == [p["id"] for p in people], seconds
        for person in people:
            label = person["mer"]
            text = f"#{person['id'] + 1} {label['label']} {round(100 * label['confidence'])}%"
            assert drawn[person["id"]]["text"] == text + (" · speaking" if person["speaking"] else "")
            assert_placed(drawn[person["id"]], scaled(page, "#timeline-player", FRAME, person["box"]))


def test_timeline_view_without_people_draws_no_boxes(page, clip):
    open_view(page, "timeline")
    page.set_input_files("#timeline-video", str(clip))
    page.click("#timeline-start")
    page.wait_for_selector("#timeline-segments .segment")
    assert "per_person" not in page.app.state.sent["timeline"][-1]
    seek(page, "#timeline-player", 1.0)
    assert page.locator(".person-box").count() == 0
    assert "happy" in page.inner_text("#timeline-legend")


def test_live_view_boxes_the_latest_answers_people_on_the_mirrored_preview(page):
    page.goto(page.url_root + "/")
    page.wait_for_selector("#tasks input[value=erg]")
    assert page.evaluate("liveTasks()") is None  # boxes as they came: the service's default window tasks
    page.uncheck("#tasks input[value=msa]")
    page.click("#view-live")
    page.check("#live-per-person")
    page.click("#live-start")
    page.wait_for_selector("#live-view .person-box[data-person='1']")
    start = page.app.state.sent["live"][-1]
    assert start["per_person"] is True
    assert start["tasks"] == [t.name for t in TASKS.values() if t.timeline and t.name != "msa"]  # the ticked window tasks
    # the camera's picture may come after the answer: the boxes follow its size (two frames to draw)
    page.wait_for_function("document.getElementById('live-preview').videoWidth > 0")
    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    drawn = drawn_boxes(page, "live")
    assert drawn[0]["text"] == "#1 happy 80% · speaking" and drawn[1]["text"] == "#2 fear 60%"
    for person in LIVE_PEOPLE:  # the preview is mirrored, the frames sent are not
        assert_placed(drawn[person["id"]], scaled(page, "#live-preview", LIVE_FRAME, person["box"], mirrored=True))
    # a later answer without people takes the boxes away
    page.click("#live-reply")
    page.wait_for_function("document.getElementById('live-reply-text').textContent.length > 0")
    assert page.locator(".person-box").count() == 0
    page.click("#live-stop")
    page.wait_for_selector("#live-download-csv:not([hidden])")
