"""Relative paths on the command line start from the working directory, for every command.

Each command runs through `nanoemox.cli.main` from inside a temporary working directory,
with relative paths only. After each one: its outputs are in that directory (not beside
a config file or in the package), the package's resources and the repository gained none
of its outputs, and every path the command recorded in its JSON outputs is absolute.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

import nanoemox
from nanoemox.cli import build_parser, main

REPOSITORY = Path(__file__).resolve().parents[1]
RESOURCES = Path(nanoemox.__file__).resolve().parent / "resources"
SKIPPED_DIRS = {"__pycache__", ".git", ".pytest_cache"}
OUTPUT_PREFIX = "my-"  # every file or folder name the commands are given starts with it
# JSON keys whose string values are paths here (a list under "train"); "encoder", "model" and
# "tokenizer" of a model config hold hub names too, but not in the tiny preset used here.
PATH_KEYS = {"corpus", "encoder", "face_checkpoint", "features", "final_model", "input", "manifest", "model",
             "out_dir", "p2e_config", "path", "predictions", "root", "source", "tokenizer", "train"}


def _outputs(root: Path) -> set[str]:
    """Files below `root` under a name these tests give to the commands ("my-...").

    Only those: other work in the same checkout may add files of its own meanwhile.
    """
    found = set()
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), root)
            if any(part.startswith(OUTPUT_PREFIX) for part in Path(path).parts):
                found.add(path)
    return found


@pytest.fixture(scope="module")
def untouched():
    """A check that the package's resources and the repository gained no output since the module started."""
    roots = [RESOURCES] + ([REPOSITORY] if (REPOSITORY / "pyproject.toml").is_file() else [])
    before = {root: _outputs(root) for root in roots}

    def check() -> None:
        for root, files in before.items():
            new = _outputs(root) - files
            assert not new, f"outputs written into {root}: {sorted(new)[:10]}"

    return check


def cli(workdir: Path, *argv: str) -> int:
    """`nanoemox ARGV` run from `workdir`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        return main(list(argv))


def assert_absolute_paths(data, where: str, workdir: Path, *, folder_refs: bool = False) -> None:
    """Path values of a JSON document are absolute (`folder_refs`: "./x", inside a model folder, too).

    Also, no string at all names an existing file relatively from the working directory.
    """
    def check(value, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                check(v, k)
        elif isinstance(value, list):
            for v in value:
                check(v, key)
        elif isinstance(value, str) and value not in ("", "None"):
            absolute = Path(value).is_absolute() or (folder_refs and value.startswith("./"))
            if key in PATH_KEYS:
                assert absolute, f"{where}: {key} = {value!r} is a relative path"
            # Prose (longer than any file name) names no file.
            could_name = 2 <= len(value) and all(len(part) < 256 for part in Path(value).parts)
            assert absolute or not could_name or not (workdir / value).exists(), f"{where}: {key} = {value!r} is relative"

    check(data, "")


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------- a small workspace


@pytest.fixture(scope="module")
def work(tmp_path_factory, model_dir, untouched) -> Path:
    """A working directory holding a small SynthAffect corpus (`synth`) and a tiny model folder."""
    work = tmp_path_factory.mktemp("work")
    code = cli(work, "synth", "--out", "my-corpus", "--n", "10", "--size", "64", "--fps", "4", "--duration", "1",
               "--workers", "1")
    assert code == 0
    untouched()
    assert (work / "my-corpus" / "manifest.jsonl").is_file() and (work / "my-corpus" / "test.jsonl").is_file()
    assert_absolute_paths(_json(work / "my-corpus" / "synthaffect.json"), "synthaffect.json", work)
    shutil.copytree(model_dir, work / "my-model")  # the session's model, as a folder of the workspace
    return work


@pytest.fixture(scope="module")
def cache(work, untouched) -> Path:
    """`cache-features` of the whole corpus for the tiny model."""
    assert cli(work, "cache-features", "my-corpus/manifest.jsonl", "--model", "my-model", "--out", "my-cache") == 0
    untouched()
    index = _json(work / "my-cache" / "index.json")
    assert len(index["entries"]) == 10 and not index["errors"]
    assert_absolute_paths(index, "index.json", work)
    return work / "my-cache"


def _config(work: Path, model: dict) -> Path:
    """A training config in its own folder; its paths are relative to that folder."""
    folder = work / "my-configs"
    folder.mkdir(exist_ok=True)
    data = {
        "model": model,
        "data": {"root": "../my-corpus", "train": ["../my-corpus/train.jsonl"], "workers": 0},
        "seed": 0, "save_every": 1, "keep_last": 1, "log_every": 1, "mixed_precision": "no",
        "phases": [{"name": "mer", "trainable": ["scene_adapter", "face_adapter"], "steps": 2, "lr": 1e-3,
                    "tasks": {"mer": 1}, "micro_batch": 2, "grad_accum": 1}],
    }
    path = folder / f"{'preset' if model.get('preset') else 'folder'}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _check_run(work: Path, out: str, expected: dict[str, Path]) -> dict:
    """run.json of a training run in `work / out`: paths absolute, pointing where `expected` says."""
    run = _json(work / out / "run.json")
    assert_absolute_paths(run, "run.json", work)
    final = Path(run["final_model"])
    assert final.is_relative_to((work / out).resolve()) and (final / "config.json").is_file()
    config = run["config"]
    found = {"root": config["data"]["root"], "train": config["data"]["train"][0], "model": config["model"]["path"],
             "features": config["data"]["features"], "source": config["source"]}
    for key, path in expected.items():
        assert found[key] == str(path.resolve()), key
    # The phase's model folder refers to the backbones it did not copy by absolute paths.
    assert_absolute_paths(_json(final / "config.json"), "phase model config.json", work, folder_refs=True)
    return run


@pytest.fixture(scope="module")
def trained(work, untouched) -> Path:
    """`train` with a config whose paths are relative to its folder and a relative --out; the final model."""
    config = _config(work, {"preset": "tiny"})
    assert cli(work, "train", "my-configs/preset.yaml", "--out", "my-run", "--no-progress") == 0
    untouched()
    assert not (work / "my-configs" / "my-run").exists()
    run = _check_run(work, "my-run", {"root": work / "my-corpus", "train": work / "my-corpus" / "train.jsonl",
                                    "source": config})
    return Path(run["final_model"])


# ---------------------------------------------------------------------- the commands


def test_init_model(work, untouched):
    assert cli(work, "init-model", "--out", "my-made/model") == 0
    untouched()
    config = _json(work / "my-made" / "model" / "config.json")
    assert_absolute_paths(config, "config.json", work, folder_refs=True)


def test_model_loaded_from_a_relative_folder_is_saved_with_absolute_references(work):
    from nanoemox.model import NanoEmoX

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        NanoEmoX.from_pretrained("my-model").save_pretrained("my-resaved")  # refers to my-model's backbones
    config = _json(work / "my-resaved" / "config.json")
    assert config["config"]["language"]["model"] == str(work.resolve() / "my-model" / "language")
    assert_absolute_paths(config, "config.json", work)


def test_train_resumes_and_loads_from_another_directory(work, trained, untouched):
    from nanoemox.model import NanoEmoX

    elsewhere = work / "my-elsewhere"
    elsewhere.mkdir()
    assert cli(elsewhere, "train", "../my-configs/preset.yaml", "--out", "../my-run", "--resume", "--no-progress") == 0
    untouched()
    assert not (elsewhere / "my-run").exists() and not list(elsewhere.iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        assert isinstance(NanoEmoX.from_pretrained(trained), NanoEmoX)


def test_train_options_start_from_the_working_directory(work, cache, untouched):
    """--model, --features, --data-root and --train are the user's paths, not the config folder's."""
    _config(work, {"path": "no-such-folder", "preset": None})
    code = cli(work, "train", "my-configs/folder.yaml", "--out", "my-run-cached", "--model", "my-model",
               "--features", "my-cache", "--data-root", "my-corpus", "--train", "my-corpus/train.jsonl", "--no-progress")
    assert code == 0
    untouched()
    _check_run(work, "my-run-cached", {"model": work / "my-model", "features": cache, "root": work / "my-corpus",
                                     "train": work / "my-corpus" / "train.jsonl"})


def test_eval_and_score(work, trained, untouched):
    model = os.path.relpath(trained, work)
    code = cli(work, "eval", "--benchmark", "synthaffect", "--data-root", "my-corpus", "--model", model,
               "--out", "my-evals", "--max-new-tokens", "4", "--limit", "3", "--no-plots", "--no-progress")
    assert code == 0
    untouched()
    run = _json(work / "my-evals" / "run.json")
    assert run["model"] == str(trained.resolve())
    results = _json(work / "my-evals" / "results.json")
    assert results["run"]["predictions"] == str(work.resolve() / "my-evals" / "predictions.jsonl")
    for document, name in ((run, "run.json"), (results, "results.json")):
        assert_absolute_paths(document, name, work)

    code = cli(work, "score", "--benchmark", "synthaffect", "--predictions", "my-evals/predictions.jsonl",
               "--references", "my-corpus/test.jsonl", "--out", "my-scores")
    assert code == 0
    untouched()
    assert_absolute_paths(_json(work / "my-scores" / "score_synthaffect.json"), "score_synthaffect.json", work)


def test_analyze_reports_unusable_paths_and_answers_the_rest(work, untouched, capsys):
    clip = os.path.relpath(sorted((work / "my-corpus" / "media").glob("*.mp4"))[0], work)
    (work / "my-x.mp4").mkdir()
    (work / "my-x.mp4" / "notes.md").write_text("a folder named like a clip, holding no media")
    code = cli(work, "analyze", clip, "my-x.mp4", "my-gone.wav", "--model", "my-model", "--tasks", "msa",
               "--max-new-tokens", "4", "--no-progress", "--out", "my-answers/results.jsonl")
    assert code == 1  # as for a clip that fails to decode: some inputs failed
    untouched()
    rows = _lines(work / "my-answers" / "results.jsonl")
    assert [r["id"] for r in rows] == [Path(clip).stem, "my-x", "my-gone"]  # in input order
    answered, folder, missing = rows
    assert set(answered["answers"]) == {"msa"} and "error" not in answered
    assert folder["input"] == str(work / "my-x.mp4") and "answers" not in folder
    assert "my-x.mp4" in folder["error"] and "no video or audio files" in folder["error"]
    assert "my-gone.wav" in missing["error"] and "no such file" in missing["error"]
    for row in rows:
        assert_absolute_paths(row, "results.jsonl", work)
    assert "2 of 3 input(s) failed" in capsys.readouterr().err


def test_serve_starts_with_relative_paths(work, untouched):
    from nanoemox.cli import cmd_serve

    (work / "my-uploads").mkdir(exist_ok=True)
    args = build_parser().parse_args(["serve", "--model", "my-model", "--tmp-dir", "my-uploads",
                                      "--max-new-tokens", "4"])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        app = cmd_serve.build_app(args)
    assert app.state.settings.tmp_dir == str(work.resolve() / "my-uploads")
    clip = sorted((work / "my-corpus" / "media").glob("*.mp4"))[0]
    with TestClient(app) as client:
        assert client.get("/health").json()["model"] == "my-model"
        with open(clip, "rb") as fh:
            reply = client.post("/v1/analyze", files={"clip": ("c.mp4", fh, "video/mp4")}, data={"tasks": "msa"})
        assert reply.status_code == 200, reply.text
    untouched()
    # `--model .` names the folder itself.
    args = build_parser().parse_args(["serve", "--model", "."])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work / "my-model")
        app = cmd_serve.build_app(args)
    with TestClient(app) as client:
        assert client.get("/health").json()["model"] == "my-model"


# ---------------------------------------------------------------------- the demo


def _short_config(source: Path, target: Path) -> Path:
    """A demo training config with a couple of steps per phase (as in test_demo)."""
    data = yaml.safe_load(source.read_text())
    for phase in data["phases"]:
        phase.update(steps=2, micro_batch=2, warmup_steps=0)
        phase.pop("where", None)  # a 16-clip corpus may lack a cue group in training
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(data))
    return target


def test_demo_out_is_the_working_directory(tmp_path, monkeypatch, untouched):
    """A relative --out of `nanoemox demo` is below the working directory, never beside its configs."""
    from nanoemox.demo import pipeline

    monkeypatch.chdir(tmp_path)
    # Absolute: DemoOptions is the library's (the report names the config as given).
    p2e = _short_config(pipeline.packaged_config("demo_p2e_tiny.yaml"), tmp_path / "my-configs" / "p2e.yaml")
    real = pipeline.DemoOptions

    def small_options(**options):
        return real(**options, batch_size=8, p2e_config=p2e, lora={})

    monkeypatch.setattr(pipeline, "DemoOptions", small_options)
    assert main(["demo", "--out", "my-demo", "--clips", "16", "--workers", "1", "--no-joint"]) == 0
    untouched()
    assert not (tmp_path / "my-configs" / "my-demo").exists()
    report = _json(tmp_path / "my-demo" / "report.json")
    assert (tmp_path / "my-demo" / "model" / "config.json").is_file()
    assert_absolute_paths(report, "report.json", tmp_path)
    assert report["setup"]["corpus"] == str(tmp_path.resolve() / "my-demo" / "synthaffect")
