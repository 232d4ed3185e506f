"""Shared test fixtures: tiny configs, tokenizers and models built on the fly (no downloads)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import torch

from nanoemox.config import tiny


@pytest.fixture(scope="session")
def tiny_config():
    return tiny()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_config):
    from nanoemox.model import build_tokenizer

    return build_tokenizer(tiny_config)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A random, self-contained tiny model folder made by `nanoemox init-model` (read-only in tests)."""
    from nanoemox.cli import main

    folder = tmp_path_factory.mktemp("model") / "tiny"
    assert main(["init-model", "--preset", "tiny", "--out", str(folder)]) == 0
    return folder


@pytest.fixture()
def tiny_model(tiny_config, tiny_tokenizer):
    from nanoemox.model import build_model

    torch.manual_seed(0)
    return build_model(tiny_config, pretrained=False, tokenizer=tiny_tokenizer).eval()


def make_prompt(config, text: str = " the subtitle says hello", answer: str = "") -> str:
    """A prompt with exactly the placeholders the config asks for, in the model's order."""
    counts = config.token_counts()
    marks = "".join(config.placeholders[m] * n for m, n in counts.items())
    return f"###Human: {marks}{text} ###Assistant: {answer}"


def make_media(config, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = config.scene.num_frames
    size = config.scene.encoder_config["image_size"]
    samples = int(config.speech.sample_rate * config.speech.clip_seconds)
    return {
        "pixel_values": torch.randn(batch, frames, 3, size, size, generator=g),
        "face_pixel_values": torch.randn(batch, frames, 3, 224, 224, generator=g),
        "audio_values": torch.randn(batch, config.speech.num_clips, samples, generator=g),
    }


def touch(root, *rels: str) -> None:
    """Empty files (or folders, for paths ending in "/") under `root`, parents made."""
    for rel in rels:
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


def write(root, rel: str, text: str):
    """A UTF-8 text file under `root`, parents made; returns its path."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- training runs (test_train, test_fsdp)

ADAPTERS = ["scene_adapter", "speech_adapter", "face_adapter", "fusion"]


def write_config(path, corpus, model, phases: list[dict], **top):
    """A training config for the synthetic `corpus`, starting from the model folder `model`; returns `path`."""
    import yaml

    data = {
        "model": {"path": str(model), "preset": None},
        "data": {"root": str(corpus), "train": [str(corpus / "train.jsonl")], "workers": 0},
        "seed": 7, "save_every": 1, "keep_last": 10, "log_every": 1, "mixed_precision": "no",
        "phases": phases, **top,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    """A free TCP port of 127.0.0.1 (for a rendezvous of training processes)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 synthetic clips (seed 3)."""
    from nanoemox.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, 12, seed=3)
    return out


@pytest.fixture(scope="module")
def init_model(tmp_path_factory):
    """A random tiny-preset model folder (seed 1), written by `nanoemox init-model`."""
    from nanoemox.cli import main

    out = tmp_path_factory.mktemp("init") / "model"
    assert main(["init-model", "--preset", "tiny", "--out", str(out), "--seed", "1"]) == 0
    return out


CHROMIUM = "/usr/bin/chromium"  # the browser tests drive it through playwright


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@contextlib.contextmanager
def serving(app):
    """Run the app with uvicorn on an ephemeral port of 127.0.0.1; stop it afterwards."""
    import uvicorn  # here: only the service tests need it

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, 20), "the server did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


class SchemathesisRun:
    """Requests against a live app, each response checked against the app's own OpenAPI document.

    Every response must match the spec: no 5xx, a documented status, content type and
    body. (A schema-valid clip of random bytes is still a 415 or 422, so "positive data
    accepted" is not among the checks: the spec cannot say what a decodable video is.)

        run = SchemathesisRun(app)
        run.generate(lambda path: path != "/v1/chat", max_examples=30)   # generated requests
        run.send(run.operation("/v1/models", "GET").Case())               # a hand-made one
        assert run.statuses and max(run.statuses) < 500 and not run.failures
    """

    def __init__(self, app):
        import schemathesis  # here: only the service tests need it
        from schemathesis.checks import not_a_server_error
        from schemathesis.specs.openapi.checks import (
            content_type_conformance, response_schema_conformance, status_code_conformance,
        )

        self.checks = [not_a_server_error, status_code_conformance, content_type_conformance,
                       response_schema_conformance]
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        self.statuses: list[int] = []
        self.failures: list[tuple] = []

    def operation(self, path: str, method: str):
        return self.schema[path][method]

    def send(self, case) -> None:
        response = case.call()
        self.statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=self.checks)
        except Exception as exc:  # a failed check: collect it, report them all at the end
            self.failures.append((case.operation.label, response.status_code, str(exc)[:300]))

    def generate(self, include, max_examples: int = 30, prepare=None) -> None:
        """Generated requests for every operation whose path `include(path)` accepts; `prepare(case)` may adjust each."""
        from hypothesis import HealthCheck, given, settings

        for result in self.schema.get_all_operations():
            operation = result.ok()
            if not include(operation.path):
                continue

            @settings(max_examples=max_examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def check(case):
                if prepare is not None:
                    prepare(case)
                self.send(case)

            check()


def synth_records(n: int = 40):
    """SynthAffect records of all six tasks, planned but not rendered (no media needed)."""
    from nanoemox.data.synth.plan import make_plans
    from nanoemox.data.synth.records import clip_records

    return [r for plan in make_plans(n, seed=3) for r in clip_records(plan)]
