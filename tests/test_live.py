"""Live analysis: windows made from received media (`LiveMedia`) equal a timeline's, the /v1/live
WebSocket through the file client (answers equal the timeline's, stale windows skipped when the
model is slow, limits and disconnects), `nanoemox live`."""

from __future__ import annotations

import json
import socket
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from nanoemox.cli import main
from nanoemox.inference import Predictor
from nanoemox.live import LiveSession
from nanoemox.live.client import LiveClientError, encode_frame, live_url, stream_file
from nanoemox.live.protocol import AUDIO, FRAME, pack_audio, pack_frame
from nanoemox.media.errors import MediaError
from nanoemox.media.live import FrameRefused, LiveLimits, LiveMedia
from nanoemox.media.stream import WindowReader
from nanoemox.media.synth import write_video
from nanoemox.serve import ServeSettings, create_app
from nanoemox.timeline import Timeline, TimelineOptions, csv_columns
from conftest import serving, wait_until

SECONDS = 10.0


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_pretrained(model_dir, max_new_tokens=6)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "talk.mp4", seconds=SECONDS, fps=10, size=(48, 48),
                       audio_rate=16000)


@pytest.fixture(scope="module")
def timeline_results(predictor, video):
    """The timeline's own answers for the file, 4 s windows every 1 s."""
    return list(Timeline(predictor, video, TimelineOptions(window=4.0, hop=1.0)).results())


def _feed(media: LiveMedia, reader: WindowReader, until: float | None = None) -> None:
    for kind, at, data in reader.media_events():
        if until is not None and at >= until:
            break
        if kind == "frame":
            media.add_frame(at, encode_frame(data, "png"))
        else:
            media.add_audio(at, data)


def _ws(url: str) -> str:
    return live_url(url)


def _messages(connection, timeout: float = 30.0) -> list[dict]:
    """Every message until the service closes the connection (which must happen within `timeout`)."""
    out = []
    try:
        while True:
            out.append(json.loads(connection.recv(timeout=timeout)))
    except ConnectionClosed:
        return out


# ---------------------------------------------------------------------- windows from received media


def test_live_windows_equal_the_timeline_windows_of_the_same_file(video):
    reader = WindowReader(video, 4.0, 1.0, 8, 16000)
    media = LiveMedia(4.0, 1.0, 8)
    _feed(media, reader)
    expected = list(reader.windows())
    full = [w for w in expected if w.end - w.start == 4.0]
    assert media.newest_ready() == full[-1].index
    for window in full:
        got = media.pick(window.index).media()
        assert (got.start, got.end, got.frame_times, got.faces) == (window.start, window.end, window.frame_times, window.faces)
        assert all(np.array_equal(a, b) for a, b in zip(got.frames, window.frames))
        assert np.array_equal(got.waveform, window.waveform) and got.audio_samples == window.audio_samples
        assert got.problems == window.problems == []


def test_a_window_is_ready_when_both_streams_reach_its_end(video):
    reader = WindowReader(video, 4.0, 1.0, 8, 16000)
    media = LiveMedia(4.0, 1.0, 8)
    _feed(media, reader, until=3.9)
    assert media.newest_ready() == -1
    frame = encode_frame(np.zeros((8, 8, 3), np.uint8))
    media.add_frame(3.9, frame)  # the frame after window 0's last frame time (3.75 s); audio is at 3.9 s
    assert media.newest_ready() == -1
    media.add_audio(3.9, np.zeros(1600, np.float32))  # audio to 4.0 s
    assert media.newest_ready() == 0
    # video that stops: after STALLED_SECONDS the audio alone makes windows, which say what is missing
    media.add_audio(4.0, np.zeros(16000 * 3, np.float32))
    assert media.newest_ready() == 3
    picked = media.pick(3).media()
    assert picked.problems == ["no video frame within 1.0 s of 5.25-6.75 s"]


def test_gaps_in_the_audio_are_silence_and_not_data():
    media = LiveMedia(2.0, 1.0, 4, video=False)
    media.add_audio(0.5, np.ones(8000, np.float32))  # 0.5 s to 1.0 s
    media.add_audio(1.5, np.ones(8000, np.float32))  # a gap of 0.5 s, then to 2.0 s
    window = media.pick(0).media()
    assert window.frames is None and window.audio_samples == 16000
    assert window.waveform[:8000].sum() == 0 and window.waveform[8000:16000].sum() == 8000
    assert window.waveform[16000:24000].sum() == 0 and window.waveform[24000:].sum() == 8000
    media.add_audio(500.0, np.ones(160, np.float32))  # a jump far ahead starts over there; no 500 s of silence held
    assert media.held_bytes() < 200_000


def test_other_sample_rates_are_resampled_to_16_khz():
    media = LiveMedia(2.0, 1.0, 4, video=False, source_rate=48000)
    tone = np.sin(2 * np.pi * 440 * np.arange(48000 * 3) / 48000).astype(np.float32)
    for first in range(0, tone.size, 4800):
        media.add_audio(first / 48000, tone[first:first + 4800])
    window = media.pick(0).media()
    assert window.waveform.shape == (32000,)
    spectrum = np.abs(np.fft.rfft(window.waveform))
    assert abs(np.argmax(spectrum) * 16000 / 32000 - 440) < 2


def test_received_frames_are_checked():
    media = LiveMedia(4.0, 1.0, 8, limits=LiveLimits(max_frame_bytes=10_000, max_frame_side=64))
    ok = encode_frame(np.zeros((32, 32, 3), np.uint8))
    media.add_frame(0.0, ok)
    with pytest.raises(FrameRefused, match="not an image"):
        media.add_frame(0.1, b"\x00" * 100)
    with pytest.raises(FrameRefused, match="larger than the limit of 64 pixels"):
        media.add_frame(0.1, encode_frame(np.zeros((80, 32, 3), np.uint8)))
    with pytest.raises(FrameRefused, match="larger than the limit of 10000 bytes"):
        media.add_frame(0.1, encode_frame(np.random.default_rng(0).integers(0, 255, (60, 60, 3), dtype=np.uint8)))
    _, gif = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FrameRefused, match="BMP"):
        media.add_frame(0.1, gif.tobytes())
    with pytest.raises(FrameRefused, match="must not go back"):
        media.add_frame(-0.5, ok)
    media.add_frame(0.001, ok)  # closer than 1/60 s to the previous one: dropped and counted
    assert media.dropped_frames == 1 and len(media.frames) == 1
    with pytest.raises(FrameRefused, match="without video"):
        LiveMedia(4.0, 1.0, 8, video=False).add_frame(0.0, ok)


def test_held_media_stay_flat_however_long_the_session():
    """Ten minutes of 10 fps frames and audio, a window answered every hop: what is held stops growing."""
    media = LiveMedia(4.0, 1.0, 8)
    frame = encode_frame(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8), "jpeg")
    held, answered = [], 0
    for step in range(600 * 10):
        at = step / 10
        media.add_frame(at, frame)
        media.add_audio(at, np.zeros(1600, np.float32))
        newest = media.newest_ready()
        if newest >= answered:
            media.pick(newest).media()
            media.forget_before(newest + 1)
            answered = newest + 1
            held.append(media.held_bytes())
    assert answered > 590
    assert max(held[300:]) <= max(held[10:60]) * 1.05


# ---------------------------------------------------------------------- the service


def test_file_client_answers_equal_the_timeline(predictor, video, timeline_results, tmp_path):
    app = create_app(predictor, ServeSettings())
    with serving(app) as url:
        run = stream_file(url, video, window=4.0, hop=1.0, speed=2.0)
        assert wait_until(lambda: app.state.gate.running == 0, 10)  # the slot is given back
    full = [r for r in timeline_results if r["end"] - r["start"] == 4.0]
    assert run.end["reason"] == "stopped" and run.end["windows"] == len(run.windows)
    assert len(run.windows) + run.windows[-1]["skipped_total"] == len(full)  # every window answered or skipped
    assert len(run.windows) >= len(full) // 2
    assert run.ready["columns"] == csv_columns(("mer", "msa"), run.ready["labels"])
    for answer in run.windows:
        expected = timeline_results[answer["index"]]
        for key in ("start", "end", "frame_times", "faces_found", "frames", "video_present", "audio_present"):
            assert answer[key] == expected[key], key
        assert answer["mer"]["label"] == expected["mer"]["label"]
        assert answer["msa"]["sentiment"] == expected["msa"]["sentiment"]
        for task in ("mer", "msa"):
            for label, p in expected[task]["probabilities"].items():
                assert answer[task]["probabilities"][label] == pytest.approx(p, abs=1e-5)
        assert answer["latency"] >= 0 and answer["client_latency"] > -0.5


def test_a_slow_model_skips_stale_windows_and_says_so(predictor, video, monkeypatch):
    answer = LiveSession.answer

    def slow(self, picked):
        time.sleep(2.2)  # more than two hops of 1 s
        return answer(self, picked)

    monkeypatch.setattr(LiveSession, "answer", slow)
    app = create_app(predictor, ServeSettings())
    with serving(app) as url:
        run = stream_file(url, video, window=4.0, hop=1.0, speed=1.0)
    assert run.end["skipped"] > 0 and sum(w["skipped"] for w in run.windows) == run.end["skipped"]
    assert len(run.windows) + run.end["skipped"] == 7  # windows 0..6 of the 10 s file: answered or skipped
    assert [w["skipped_total"] for w in run.windows] == list(np.cumsum([w["skipped"] for w in run.windows]))
    assert all(w["latency"] >= 2.0 for w in run.windows)  # each answer took its 2.2 s


def test_reply_to_the_last_window(predictor, video):
    app = create_app(predictor, ServeSettings())
    with serving(app) as url:
        run = stream_file(url, video, window=4.0, hop=1.0, speed=2.0, reply_every=6.0)
    assert len(run.replies) == 1
    reply = run.replies[0]
    assert reply["index"] in {w["index"] for w in run.windows} and isinstance(reply["text"], str)
    assert reply["latency"] >= 0


def _start(connection, **fields) -> dict:
    connection.send(json.dumps({"type": "start", **fields}))
    return json.loads(connection.recv(timeout=30))


@pytest.mark.parametrize("start, code, text", [
    ({"type": "hello"}, "bad_message", "first message must be"),
    ({"type": "start", "hop": 0.1}, "bad_message", "hop must be at least 0.25"),
    ({"type": "start", "window": 90}, "bad_message", "window must be at most 60"),
    ({"type": "start", "sample_rate": 96000}, "bad_message", "between 8000 and 48000"),
    ({"type": "start", "video": False, "audio": False}, "bad_message", "video, audio or both"),
    ({"type": "start", "tasks": ["eri"]}, "bad_message", "subset of"),
    ({"type": "start", "speed": 2}, "bad_message", "unknown field"),
])
def test_bad_starts_are_refused_with_a_message_and_a_close(predictor, start, code, text):
    app = create_app(predictor, ServeSettings())
    with serving(app) as url, connect(_ws(url)) as connection:
        connection.send(json.dumps(start))
        message = json.loads(connection.recv(timeout=10))
        assert message["type"] == "error" and message["code"] == code and text in message["error"], message
        assert _messages(connection) == [] and connection.close_code == 1008
        assert app.state.gate.running == 0


def test_limits_end_a_session_cleanly(predictor, video):
    settings = ServeSettings(max_frame_bytes=2000, live_idle_timeout=0.5, max_live_seconds=3.0)
    app = create_app(predictor, settings)
    big = encode_frame(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with serving(app) as url:
        with connect(_ws(url)) as connection:  # a frame over the limit
            assert _start(connection)["limits"]["max_frame_bytes"] == 2000
            connection.send(pack_frame(0.0, big))
            message = _messages(connection)[-1]
            assert message["code"] == "frame_refused" and "larger than the limit of 2000 bytes" in message["error"]
            assert connection.close_code == 1008
        with connect(_ws(url)) as connection:  # a client that sends nothing
            _start(connection)
            message = _messages(connection)[-1]
            assert message["code"] == "idle" and connection.close_code == 1008
        with connect(_ws(url)) as connection:  # media past the session's length: a normal end
            _start(connection, video=False)
            with pytest.raises(ConnectionClosed):  # the service ends the session at 3 s of media
                for step in range(100):
                    connection.send(pack_audio(step / 10, np.zeros(1600, np.float32)))
                    time.sleep(0.01)
            messages = _messages(connection)
            assert messages[-1]["type"] == "end" and messages[-1]["reason"] == "limit"
            assert connection.close_code == 1000
        with connect(_ws(url)) as connection:  # not our binary messages
            _start(connection)
            connection.send(b"\x07" + b"\x00" * 16)
            assert "unknown binary message kind 7" in _messages(connection)[-1]["error"]
        assert wait_until(lambda: app.state.gate.running == 0, 10)


def test_busy_service_refuses_and_a_dropped_connection_frees_the_slot(predictor):
    app = create_app(predictor, ServeSettings(max_concurrency=1, queue_timeout=0.3))
    with serving(app) as url:
        with connect(_ws(url)) as first:
            assert _start(first)["type"] == "ready"
            assert app.state.gate.running == 1
            with connect(_ws(url)) as second:
                message = _start(second)
                assert message["type"] == "error" and message["code"] == "busy"
                assert _messages(second) == [] and second.close_code == 1013
            first.socket.shutdown(socket.SHUT_RDWR)  # dropped without a close handshake
            assert wait_until(lambda: app.state.gate.running == 0, 10)
        with connect(_ws(url)) as third:
            assert _start(third)["type"] == "ready"


def test_the_protocol_messages_pack_and_unpack():
    from nanoemox.live.protocol import ProtocolError, unpack

    assert unpack(pack_frame(1.5, b"img")) == (FRAME, 1.5, b"img")
    kind, at, payload = unpack(pack_audio(2.0, np.array([0.5, -0.25], np.float32)))
    assert (kind, at) == (AUDIO, 2.0) and np.frombuffer(payload, "<f4").tolist() == [0.5, -0.25]
    for bad, text in ((b"\x01", "too short"), (pack_frame(float("nan"), b"x"), "finite"),
                      (pack_audio(0.0, np.zeros(2, np.float32)) + b"\x00", "whole number")):
        with pytest.raises(ProtocolError, match=text):
            unpack(bad)


def test_live_command_prints_answers_and_writes_the_timeline_files(predictor, video, tmp_path, capsys):
    app = create_app(predictor, ServeSettings())
    out = tmp_path / "live"
    with serving(app) as url:
        assert main(["live", str(video), "--url", url, "--speed", "4", "--out", str(out)]) == 0
        printed = capsys.readouterr()
        assert main(["live", str(tmp_path / "missing.mp4"), "--url", url]) == 2
    lines = [line for line in printed.out.splitlines() if " s  " in line]
    assert lines and "latency" in lines[0]
    assert "windows answered" in printed.err
    rows = (out / "timeline.csv").read_text(encoding="utf-8").splitlines()
    summary = json.loads((out / "live.json").read_text(encoding="utf-8"))
    assert rows[0].split(",") == summary["settings"]["columns"]
    assert len(rows) - 1 == summary["summary"]["windows"] == len((out / "windows.jsonl").read_text().splitlines())


def test_live_command_names_a_service_that_is_not_there(video, capsys):
    assert main(["live", str(video), "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot open a live session" in capsys.readouterr().err


def test_live_url_forms():
    assert live_url("http://h:1") == "ws://h:1/v1/live"
    assert live_url("https://h/base/") == "wss://h/base/v1/live"
    assert live_url("ws://h:2/v1/live") == "ws://h:2/v1/live"
    with pytest.raises(ValueError, match="not a service address"):
        live_url("ftp://h")
    with pytest.raises(MediaError):  # not media: refused before anything is sent
        stream_file("ws://127.0.0.1:9", __file__)
    with pytest.raises(LiveClientError, match="cannot open a live session"):
        stream_file("ws://127.0.0.1:9", write_video(Path(tempfile.mkdtemp()) / "v.mp4", seconds=1.0))


def test_ctrl_c_ends_the_session_and_keeps_the_answers(predictor, video, monkeypatch):
    import threading

    import nanoemox.live.client as client

    real_sleep, calls = time.sleep, {"n": 0}

    def sleep(seconds):  # the streaming loop's pauses: Ctrl-C arrives after about 6 s of media
        if threading.current_thread() is threading.main_thread():
            calls["n"] += 1
            if calls["n"] == 60:  # one pause per 0.1 s of media
                raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(client.time, "sleep", sleep)
    app = create_app(predictor, ServeSettings())
    with serving(app) as url:
        run = stream_file(url, video, window=4.0, hop=1.0, speed=2.0)
    assert run.interrupted and run.end["reason"] == "stopped"
    assert 4.0 <= run.sent_seconds < SECONDS and 1 <= len(run.windows) < 7


def test_pages_of_other_sites_are_refused(predictor):
    from websockets.exceptions import InvalidStatus

    app = create_app(predictor, ServeSettings())
    with serving(app) as url:
        with pytest.raises(InvalidStatus, match="403"):
            connect(_ws(url), origin="http://elsewhere.example")
        host = url.split("://", 1)[1]
        with connect(_ws(url), origin=f"http://{host}") as same_site:  # the service's own page
            assert _start(same_site)["type"] == "ready"
