"""The OpenAI-compatible routes, driven by the official `openai` package against a live
`nanoemox serve` app on a model folder made here: models, media parts, conversations, the six
tasks, streaming, budgets, log-probabilities, stop strings, errors, limits and clean-up.
Answers are compared with `nanoemox analyze` / `chat` (the library calls behind them)."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time

import numpy as np
import openai
import pytest
import torch

from conftest import SchemathesisRun, serving, wait_until
from nanoemox.inference import Predictor, analyze, chat_reply, clip_records, default_candidates
from nanoemox.media.synth import write_audio, write_video
from nanoemox.serve import ServeSettings, create_app
from nanoemox.tasks import TASK_NAMES, get_task

NAME = "chatty"


@pytest.fixture(scope="module")
def chatty_dir(model_dir, tmp_path_factory):
    """The tiny test model with a language model whose greedy answers are words, not one repeated space."""
    from nanoemox.model import load_model, save_model
    from nanoemox.processor import NanoEmoXProcessor

    model = load_model(model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.language.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    folder = tmp_path_factory.mktemp("openai") / NAME
    save_model(model, folder)
    NanoEmoXProcessor.from_pretrained(model_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def predictor(chatty_dir):
    return Predictor.from_pretrained(chatty_dir, max_new_tokens=12)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oai-media")
    video = write_video(folder / "clip.mp4", seconds=0.6, fps=10, size=(32, 32), audio_rate=16000)
    audio = write_audio(folder / "voice.wav", seconds=0.8)
    from PIL import Image

    Image.fromarray(np.full((24, 24, 3), 120, np.uint8)).save(folder / "still.png")
    return {"video": video, "audio": audio, "image": folder / "still.png", "folder": folder}


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    return tmp_path_factory.mktemp("oai-uploads")


@pytest.fixture(scope="module")
def server(predictor, uploads, media):
    settings = ServeSettings(tmp_dir=str(uploads), max_upload_bytes=2_000_000,
                             allowed_local_media_path=str(media["folder"]))
    with serving(create_app(predictor, settings, model_name=NAME)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0, timeout=60)


def data_url(path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(open(path, "rb").read()).decode()


def video_part(path) -> dict:
    return {"type": "video_url", "video_url": {"url": data_url(path, "video/mp4")}}


def ask(client, content, **kw):
    return client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": content}], **kw)


def extension(response) -> dict:
    return response.choices[0].model_extra["nanoemox"]


# ---------------------------------------------------------------- models and media


def test_models_list_names_the_served_model(client, chatty_dir):
    assert [m.id for m in client.models.list().data] == [NAME]

    from nanoemox.cli import build_parser
    from nanoemox.cli.cmd_serve import build_app
    from fastapi.testclient import TestClient

    for extra, expected in (([], NAME), (["--served-model-name", "emox"], "emox")):
        args = build_parser().parse_args(["serve", "--model", str(chatty_dir), "--device", "cpu", *extra])
        with TestClient(build_app(args)) as local:
            assert local.get("/v1/models").json()["data"][0]["id"] == expected


def test_video_as_data_url_equals_analyze(client, predictor, media):
    response = ask(client, [video_part(media["video"]), {"type": "text", "text": "[Recognition] I made it"}])
    expected = next(analyze(predictor, [clip_records(str(media["video"]), ["mer"], subtitle="I made it")]))
    choice = response.choices[0]
    assert choice.message.content == expected["answers"]["mer"]["text"] != ""
    ext = extension(response)
    assert ext["task"] == "mer" and ext["flags"]["video_present"] and ext["flags"]["audio_present"]
    assert set(ext["probabilities"]) == set(default_candidates("mer"))
    assert sum(ext["probabilities"].values()) == pytest.approx(1.0)
    # usage counts every token the language model read, media placeholders included
    prompt = predictor.session.encode_text("mer", "I made it", None, default_candidates("mer"))
    placeholders = set(predictor.model.placeholder_ids.values())
    assert response.usage.prompt_tokens == len(prompt) and sum(t in placeholders for t in prompt) > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length") and response.object == "chat.completion"


def test_audio_as_input_audio_and_image_as_one_frame_clip(client, predictor, media):
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(open(media["audio"], "rb").read()).decode(),
                                                    "format": "wav"}}
    heard = ask(client, [audio, {"type": "text", "text": "I am fine"}], extra_body={"task": "msa"})
    flags = extension(heard)["flags"]
    assert flags["audio_present"] and not flags["video_present"]
    expected = next(analyze(predictor, [clip_records(str(media["audio"]), ["msa"], subtitle="I am fine")]))
    assert heard.choices[0].message.content == expected["answers"]["msa"]["text"]

    image = {"type": "image_url", "image_url": {"url": data_url(media["image"], "image/png")}}
    seen = ask(client, [image, audio, {"type": "text", "text": "look"}], extra_body={"task": "mer"})
    flags = extension(seen)["flags"]
    assert flags["video_present"] and flags["audio_present"]  # the image and the audio part: one clip


def test_two_turn_conversation_equals_chat(client, predictor):
    messages = [{"role": "system", "content": "You are kind."},
                {"role": "user", "content": "I failed my exam"},
                {"role": "assistant", "content": "That sounds hard."},
                {"role": "user", "content": "I studied for weeks"}]
    response = client.chat.completions.create(model=NAME, messages=messages)
    history = [{"role": "speaker", "text": "I failed my exam"}, {"role": "listener", "text": "That sounds hard."}]
    expected = chat_reply(predictor, "I studied for weeks", history)
    ext = extension(response)
    assert ext["task"] == "erg" and ext["text"] == expected["text"]
    assert response.choices[0].message.content == expected["reply"]
    assert response.choices[0].message.model_extra["reasoning_content"] == expected["think"]
    assert ext["not_read"] == {"system": 1}


def test_each_task_by_its_extension_field_equals_analyze(client, predictor, media):
    expected = next(analyze(predictor, [clip_records(str(media["video"]), list(TASK_NAMES), subtitle="We won")]))
    for task in TASK_NAMES:
        response = ask(client, [video_part(media["video"]), {"type": "text", "text": "We won"}], extra_body={"task": task})
        ext = extension(response)
        assert ext["task"] == task and ext["text"] == expected["answers"][task]["text"], task
        content = get_task("erg").parse(ext["text"])["reply"] if task == "erg" else ext["text"]
        assert response.choices[0].message.content == content, task
        assert ("probabilities" in ext) == get_task(task).scorable, task


def test_task_asked_by_its_instruction_and_candidates(client, predictor, media):
    instruction = get_task("mir").instruction(candidates=["complain", "thank"])  # "[Intent] ... complain, thank ..."
    text = instruction.split("] ", 1)[1] + " Thanks so much!"
    response = ask(client, [video_part(media["video"]), {"type": "text", "text": text}])
    ext = extension(response)
    assert ext["task"] == "mir" and set(ext["probabilities"]) == {"complain", "thank"}
    expected = next(analyze(predictor, [clip_records(str(media["video"]), ["mir"], subtitle="Thanks so much!",
                                                     intents=["complain", "thank"])]))
    assert response.choices[0].message.content == expected["answers"]["mir"]["text"]
    scored = ask(client, [video_part(media["video"]), {"type": "text", "text": "ok"}],
                 extra_body={"task": "mer", "candidates": ["glad", "gloomy"], "decode": "score"})
    assert scored.choices[0].message.content in ("glad", "gloomy")
    assert max(extension(scored)["probabilities"], key=extension(scored)["probabilities"].get) \
        == scored.choices[0].message.content


# ---------------------------------------------------------------- decoding controls


@pytest.mark.parametrize("task", ["mer", "erg"])
def test_streamed_deltas_join_to_the_answer(client, media, task):
    content = [video_part(media["video"]), {"type": "text", "text": "I did not expect this"}]
    whole = ask(client, content, extra_body={"task": task}, max_tokens=20)
    chunks = list(ask(client, content, extra_body={"task": task}, max_tokens=20, stream=True,
                      stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == whole.choices[0].message.content
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert reasoning == ((whole.choices[0].message.model_extra or {}).get("reasoning_content") or "")
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


def test_max_tokens_cut_says_length_and_logprobs_are_the_tokens(client, media):
    response = ask(client, [video_part(media["video"]), {"type": "text", "text": "[Inference] why"}],
                   max_tokens=3, logprobs=True, top_logprobs=2)
    choice = response.choices[0]
    assert choice.finish_reason == "length" and response.usage.completion_tokens == 3
    entries = choice.logprobs.content
    assert len(entries) == 3 and "".join(e.token for e in entries).strip() == extension(response)["text"]
    for entry in entries:  # greedy: the chosen token is the most likely one
        assert len(entry.top_logprobs) == 2 and entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert entry.logprob <= 0 and bytes(entry.bytes).decode("utf-8", "replace") == entry.token
    longer = ask(client, [video_part(media["video"]), {"type": "text", "text": "[Inference] why"}], max_tokens=6)
    assert longer.choices[0].message.content.startswith(choice.message.content)


def test_stop_string_and_seeded_sampling(client, media):
    content = [video_part(media["video"]), {"type": "text", "text": "[Recog_OV] hm"}]
    answer = ask(client, content, max_tokens=12).choices[0].message.content
    assert len(answer) >= 8
    stop = next(answer[i:i + 3] for i in range(2, len(answer) - 3) if answer[i:i + 3].isascii())
    cut = ask(client, content, max_tokens=12, stop=[stop])
    assert cut.choices[0].message.content == answer[: answer.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop" and cut.usage.completion_tokens < 12
    sampled = [ask(client, content, max_tokens=8, temperature=1.5, seed=seed).choices[0].message.content
               for seed in (5, 5, 6)]
    assert sampled[0] == sampled[1]
    assert extension(ask(client, content, max_tokens=8, temperature=1.5, seed=5))["decoding"]["seed"] == 5


# ---------------------------------------------------------------- errors and limits


def test_refusals_in_openai_shape(client, media, uploads):
    garbage = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(b"x" * 300).decode()}}
    with pytest.raises(openai.BadRequestError) as bad:
        ask(client, [garbage, {"type": "text", "text": "hi"}])
    assert bad.value.body["param"] == "messages[0].content[0]" and "messages[0].content[0]" in bad.value.message
    assert str(uploads) not in bad.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as two:
        ask(client, "hi", n=2)
    assert two.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=NAME, messages=[])
    with pytest.raises(openai.BadRequestError):
        ask(client, [{"type": "file", "file": {"file_id": "x"}}])
    with pytest.raises(openai.BadRequestError):
        ask(client, "hi", extra_body={"task": "dreams"})
    with pytest.raises(openai.APIStatusError) as unsupported:
        ask(client, [{"type": "video_url", "video_url": {"url": "data:application/pdf;base64,AAAA"}}])
    assert unsupported.value.status_code == 415
    with pytest.raises(openai.APIStatusError) as large:
        ask(client, [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + "A" * 3_000_000}}])
    assert large.value.status_code == 413 and "limit" in large.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        ask(client, "hi", max_tokens=100_000)  # beyond the language model's context
    assert wait_until(lambda: os.listdir(uploads) == [])


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0
    body = b""

    def do_GET(self):  # noqa: N802 (the http.server spelling)
        type(self).hits += 1
        self.send_response(200)
        self.send_header("content-type", "video/mp4")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_remote_media_only_with_the_flag(client, predictor, media, uploads):
    _Counting.body = open(media["video"], "rb").read()
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http_server.server_address[1]}/clip.mp4"
    remote = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "[Recognition] hi"}]
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            ask(client, remote)
        assert "--allow-remote-media" in refused.value.message and _Counting.hits == 0
        settings = ServeSettings(tmp_dir=str(uploads), allow_remote_media=True)
        with serving(create_app(predictor, settings, model_name=NAME)) as other:
            fetched = ask(openai.OpenAI(base_url=other + "/v1", api_key="-", max_retries=0), remote)
        assert _Counting.hits == 1
        local = ask(client, [video_part(media["video"]), {"type": "text", "text": "[Recognition] hi"}])
        assert fetched.choices[0].message.content == local.choices[0].message.content
    finally:
        http_server.shutdown()
    assert wait_until(lambda: os.listdir(uploads) == [])


def test_local_files_only_under_the_allowed_folder(client, media, tmp_path):
    inside = ask(client, [{"type": "video_url", "video_url": {"url": media["video"].as_uri()}},
                          {"type": "text", "text": "[Recognition] hi"}])
    assert extension(inside)["flags"]["video_present"]
    assert media["video"].exists()  # read in place, never removed
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(media["video"].read_bytes())
    for url in (outside.as_uri(), media["folder"].as_uri() + "/../" + outside.name):
        with pytest.raises(openai.BadRequestError) as refused:
            ask(client, [{"type": "video_url", "video_url": {"url": url}}])
        assert "not under the folder" in refused.value.message


def test_busy_server_answers_503_and_a_dropped_stream_frees_the_slot(predictor, media, uploads, monkeypatch):
    import httpx

    session = predictor.session
    generate_ids = session.generate_ids

    def slow(*args, **kwargs):  # the model call holds the only slot for 1.5 s
        time.sleep(1.5)
        return generate_ids(*args, **kwargs)

    monkeypatch.setattr(session, "generate_ids", slow)
    app = create_app(predictor, ServeSettings(tmp_dir=str(uploads), queue_timeout=0.3), model_name=NAME)
    body = {"model": NAME, "stream": True,
            "messages": [{"role": "user", "content": [video_part(media["video"]), {"type": "text", "text": "go on"}]}]}
    with serving(app) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as streaming:
                assert streaming.status_code == 200
                next(streaming.iter_lines())  # the first event: the answer is under way
                busy = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
                with pytest.raises(openai.APIStatusError) as refused:
                    ask(busy, "hello")
                assert refused.value.status_code == 503 and refused.value.body["type"] == "service_unavailable_error"
            # the client went away mid-answer: the slot and the upload are freed once the call is over
            assert wait_until(lambda: app.state.gate.running == 0, 10)
    assert wait_until(lambda: os.listdir(uploads) == [])


def test_a_client_that_goes_away_stops_the_generation(predictor, uploads, monkeypatch):
    import httpx

    decode = predictor.tokenizer.decode
    calls = []

    def counted(*args, **kwargs):  # called once per generated token while streaming
        calls.append(1)
        time.sleep(0.02)
        return decode(*args, **kwargs)

    monkeypatch.setattr(predictor.tokenizer, "decode", counted)
    app = create_app(predictor, ServeSettings(tmp_dir=str(uploads)), model_name=NAME)
    body = {"model": NAME, "stream": True, "max_tokens": 300,
            "messages": [{"role": "user", "content": "[Inference] tell me everything"}]}
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as streaming:
            events = (line for line in streaming.iter_lines() if line)
            assert [next(events) for _ in range(3)]  # the role, then two pieces of the answer
        assert wait_until(lambda: app.state.gate.running == 0, 20)
    assert len(calls) < 100  # far fewer than the 300 tokens of the budget


def test_cancelled_generation_stops_at_the_next_token(predictor, media):
    from nanoemox.inference.completion import CompletionRequest, complete

    request = CompletionRequest(task="eri", text="why", video=media["video"], decoding=predictor.decoding, max_tokens=40)
    whole = complete(predictor, request)
    stopped = complete(predictor, request, cancelled=lambda: True)
    assert whole.completion_tokens > 1 and stopped.completion_tokens == 1
    assert whole.text.startswith(stopped.text)


def test_schemathesis_finds_no_server_error_on_the_openai_routes(predictor, tmp_path):
    (tmp_path / "up").mkdir()
    app = create_app(predictor, ServeSettings(tmp_dir=str(tmp_path / "up")), model_name=NAME)
    run = SchemathesisRun(app)

    def served_model(case):  # else nearly every generated request is an unknown model's 404
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = NAME

    run.generate(lambda path: path.startswith(("/v1/chat/completions", "/v1/models")), 25, served_model)
    completions = run.operation("/v1/chat/completions", "POST")
    for body in ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},  # generated bodies are
                 {"messages": [{"role": "user", "content": "[Recognition] hi"}], "stream": True,  # rarely answerable
                  "logprobs": True, "top_logprobs": 1, "stream_options": {"include_usage": True}},
                 {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10 ** 6}):
        run.send(completions.Case(body={"model": NAME, **body}))
    assert run.statuses.count(200) >= 3 and 422 in run.statuses
    assert max(run.statuses) < 500
    assert not run.failures, run.failures
    assert os.listdir(tmp_path / "up") == []
