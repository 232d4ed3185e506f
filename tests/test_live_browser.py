"""The page's Live view in headless Chromium with a fake camera and microphone fed from a composed
SynthAffect video (converted to y4m and wav), against a live service: answers roll in, they follow
the video as the timeline of the same file does, Stop offers the session's timeline."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import av
import numpy as np
import pytest

from nanoemox.data.synth import MediaConfig, compose_long_video, generate
from nanoemox.inference import Predictor
from nanoemox.serve import ServeSettings, create_app
from nanoemox.timeline import Timeline, TimelineOptions, csv_columns
from nanoemox.timeline.table import csv_row, csv_text
from nanoemox.timeline.evaluate import read_truth, true_labels
from conftest import CHROMIUM, serving, wait_until

LIVE_WINDOWS = 16  # answers to wait for: about 20 s of the 32 s video at 4 s windows every 1 s


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """A 32 s video of four stretches of SynthAffect test clips, with its ground-truth segments."""
    folder = tmp_path_factory.mktemp("live-browser")
    generate(folder / "corpus", 40, 0, media=MediaConfig(size=96, fps=8, duration=4.0),
             split_fractions=(0.5, 0.1, 0.4), workers=1)
    summary = compose_long_video(folder / "corpus", folder / "long.mp4", minutes=0.5, seed=3)
    return Path(summary["out"]), Path(summary["files"]["segments"])


def fake_devices(video: Path, folder: Path) -> tuple[Path, Path]:
    """The video as Chromium's fake capture devices read it: raw y4m frames and 16-bit PCM wav."""
    y4m, wav = folder / "camera.y4m", folder / "microphone.wav"
    with av.open(str(video)) as source, av.open(str(y4m), "w", format="yuv4mpegpipe") as out:
        stream = source.streams.video[0]
        target = out.add_stream("rawvideo", rate=stream.average_rate)
        target.width, target.height, target.pix_fmt = stream.width, stream.height, "yuv420p"
        for frame in source.decode(stream):
            for packet in target.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in target.encode():
            out.mux(packet)
    with av.open(str(video)) as source, av.open(str(wav), "w", format="wav") as out:
        target = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in source.decode(source.streams.audio[0]):
            for converted in resampler.resample(frame):
                for packet in target.encode(converted):
                    out.mux(packet)
        for converted in resampler.resample(None):
            for packet in target.encode(converted):
                out.mux(packet)
        for packet in target.encode():
            out.mux(packet)
    return y4m, wav


def _accuracy(results, truth) -> float:
    return float(np.mean([r["mer"]["label"] in true_labels(r["start"], r["end"], truth) for r in results]))


def test_live_view_with_a_fake_camera_and_microphone(model_dir, long_video, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package `chromium`); the browser test needs it")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the Python package `playwright` drives Chromium")
    video, segments = long_video
    truth = read_truth(segments)
    y4m, wav = fake_devices(video, tmp_path)
    predictor = Predictor.from_pretrained(model_dir, max_new_tokens=6)
    timeline = list(Timeline(predictor, video, TimelineOptions(window=4.0, hop=1.0)).results())
    app = create_app(predictor, ServeSettings())
    with serving(app) as url, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={y4m}", f"--use-file-for-fake-audio-capture={wav}"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url + "/#live")
            assert page.is_visible("#live-view") and page.is_hidden("#timeline-view")
            page.click("#live-start")
            page.wait_for_function(f"(window.liveAnswers || []).length >= {LIVE_WINDOWS}", timeout=90_000)
            # the view shows the newest answer
            newest = page.evaluate("window.liveAnswers[window.liveAnswers.length - 1]")
            page.wait_for_function("document.getElementById('live-emotion').dataset.label !== undefined")
            assert page.get_attribute("#live-emotion", "data-label") in newest["mer"]["probabilities"]
            assert page.locator("#live-probs [data-label]").count() == len(newest["mer"]["probabilities"])
            assert page.locator("#live-strip [data-index]").count() >= LIVE_WINDOWS - 1
            assert page.get_attribute("#live-voice", "data-found") == "true"
            assert "latency" in page.inner_text("#live-latency")
            assert page.is_enabled("#live-reply")
            page.click("#live-reply")
            page.wait_for_function("document.getElementById('live-reply-text').textContent.length > 0")
            page.click("#live-stop")
            page.wait_for_selector("#live-download-csv:not([hidden])")
            answers = page.evaluate("window.liveAnswers")
            table = page.evaluate("fetch(document.getElementById('live-download-csv').href).then(r => r.text())")
        finally:
            browser.close()
    assert not errors, errors
    assert wait_until(lambda: app.state.gate.running == 0, 10)  # the session gave its model slot back

    # every window after the first is answered from real media: frames, faces, voice
    later = [a for a in answers if a["index"] >= 1 and "error" not in a]
    assert len(later) >= LIVE_WINDOWS - 3, [a.get("error") for a in answers]
    assert all(a["frames"] == 8 and a["video_present"] and a["audio_present"] for a in later)
    reference = {r["index"]: r for r in timeline}
    compared = [(a, reference[a["index"]]) for a in later if a["index"] in reference]
    # the bar: labels agree with the known stretches at least 0.8x as often as the timeline's own
    live_accuracy = _accuracy([a for a, _ in compared], truth)
    timeline_accuracy = _accuracy([r for _, r in compared], truth)
    assert live_accuracy >= 0.8 * timeline_accuracy, (live_accuracy, timeline_accuracy)
    # the pictures follow the video: faces found per window as in the timeline of the file
    live_faces = np.array([a["faces_found"] for a, _ in compared])
    file_faces = np.array([r["faces_found"] for _, r in compared])
    assert file_faces.std() > 1  # the drawn faces come and go: the comparison can tell a shifted stream
    assert np.corrcoef(live_faces, file_faces)[0, 1] > 0.7, (live_faces, file_faces)
    assert np.abs(live_faces - file_faces).mean() < 1.5, (live_faces, file_faces)
    # Stop offers the session's timeline with the columns of `nanoemox timeline`
    labels = list(newest["mer"]["probabilities"])
    columns = csv_columns(("mer", "msa"), labels)
    assert next(csv.reader(io.StringIO(table))) == columns
    assert table == csv_text([csv_row(a, labels) for a in answers], columns, True)  # as timeline.csv is written
