"""One error boundary: a bad input ends a command with one stderr line and exit 2, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from nanoemox.cli import EXIT_INTERNAL_ERROR, main
from nanoemox.data.synth import MediaConfig, generate


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, 8, seed=0, media=MediaConfig(size=64, fps=4, duration=1.0), workers=1)
    return out


def _one_line(err: str) -> str:
    err = err.replace("\r", "\n")  # progress bars redraw with carriage returns
    lines = [line for line in err.strip().splitlines()
             if line.strip() and not line.startswith(("20", "  ")) and "/s]" not in line]  # logs, progress bars
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _copy(model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    return folder


def test_damaged_model_folders_name_the_file(model_dir, corpus, tmp_path, capsys):
    clip = str(next((corpus / "media").glob("*.mp4")))
    folder = _copy(model_dir, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["analyze", clip, "--model", str(folder), "--tasks", "mer"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "model.safetensors: cannot be read as safetensors" in line and "damaged or truncated" in line

    folder = _copy(model_dir, tmp_path / "b")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["scene"]["num_frames"] = "eight"
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(folder),
                 "--out", str(tmp_path / "ev"), "--limit", "1", "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "config.json: not a valid Nano-EmoX config (scene.num_frames: expected int, got 'eight')" in line

    folder = _copy(model_dir, tmp_path / "c")
    (folder / "processor_config.json").write_text("{garbled")
    assert main(["cache-features", str(corpus / "test.jsonl"), "--model", str(folder),
                 "--out", str(tmp_path / "cache")]) == 2
    assert "processor_config.json: not a valid processor config" in _one_line(capsys.readouterr().err)


def test_cache_features_bad_inputs_and_a_silently_corrupted_shard(model_dir, corpus, tmp_path, capsys):
    assert main(["cache-features", str(tmp_path / "none.jsonl"), "--model", str(model_dir),
                 "--out", str(tmp_path / "cache")]) == 2
    assert "manifest not found" in _one_line(capsys.readouterr().err)
    args = ["cache-features", str(corpus / "test.jsonl"), "--model", str(model_dir), "--out", str(tmp_path / "cache"),
            "--shard-size", "1", "--device", "cpu"]
    assert main(args) == 0
    capsys.readouterr()
    shard = sorted((tmp_path / "cache").glob("shard-*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes: only the checksum can tell
    shard.write_bytes(bytes(data))
    # Training from the damaged cache: one line naming the shard.
    config = {"model": {"path": str(model_dir)},
              "data": {"root": str(corpus), "train": [str(corpus / "test.jsonl")], "features": str(tmp_path / "cache")},
              "phases": [{"name": "p", "trainable": ["lora"], "steps": 2, "lr": 1e-3, "tasks": {"mer": 1},
                          "micro_batch": 1, "grad_accum": 1}]}
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump(config).replace("split: test", ""))
    records = [json.loads(line) for line in (corpus / "test.jsonl").read_text().splitlines()]
    (corpus / "as_train.jsonl").write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in records))
    config["data"]["train"] = [str(corpus / "as_train.jsonl")]
    run.write_text(yaml.safe_dump(config))
    assert main(["train", str(run), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "checksum mismatch" in _one_line(capsys.readouterr().err)
    # A re-run of cache-features finds the damage and encodes that media again.
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "cached 1," in printed
    from nanoemox.features import FeatureCache

    FeatureCache.open(tmp_path / "cache")  # verifies every checksum


def test_training_without_readable_media_is_one_line(model_dir, corpus, tmp_path, capsys):
    config = {"model": {"path": str(model_dir)},
              "data": {"root": str(tmp_path / "nowhere"), "train": [str(corpus / "train.jsonl")]},
              "phases": [{"name": "p", "trainable": ["lora"], "steps": 1, "lr": 1e-3, "tasks": {"mer": 1},
                          "micro_batch": 1, "grad_accum": 1}]}
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump(config))
    assert main(["train", str(run), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "unreadable samples in a row" in _one_line(capsys.readouterr().err)


def test_a_bug_is_one_line_with_a_pointer_to_debug(monkeypatch, capsys):
    def boom(args):
        raise KeyError("internal")

    import nanoemox.cli.cmd_info as info

    monkeypatch.setattr(info, "run", boom)
    assert main(["info"]) == EXIT_INTERNAL_ERROR
    line = _one_line(capsys.readouterr().err)
    assert "unexpected KeyError" in line and "--debug" in line
    with pytest.raises(KeyError):
        main(["--debug", "info"])


def test_garbled_cache_index_is_one_line_and_cache_features_repairs_it(model_dir, corpus, tmp_path, capsys):
    args = ["cache-features", str(corpus / "test.jsonl"), "--model", str(model_dir), "--out", str(tmp_path / "cache"),
            "--shard-size", "1", "--device", "cpu"]
    assert main(args) == 0
    shards = sorted(p.name for p in (tmp_path / "cache").glob("shard-*.safetensors"))
    capsys.readouterr()
    (tmp_path / "cache" / "index.json").write_text("{garbled")
    # A reader (training from the cache): one line naming the file and the repair.
    records = [json.loads(line) for line in (corpus / "test.jsonl").read_text().splitlines()]
    (tmp_path / "as_train.jsonl").write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in records))
    config = {"model": {"path": str(model_dir)},
              "data": {"root": str(corpus), "train": [str(tmp_path / "as_train.jsonl")],
                       "features": str(tmp_path / "cache")},
              "phases": [{"name": "p", "trainable": ["lora"], "steps": 2, "lr": 1e-3, "tasks": {"mer": 1},
                          "micro_batch": 1, "grad_accum": 1}]}
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump(config))
    assert main(["train", str(run), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "index.json: unreadable index" in line and "re-run `nanoemox cache-features`" in line
    # The same cache-features command rebuilds the index from the shards and encodes nothing again.
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"rebuilt the index from {len(shards)} intact shard(s)" in printed and "index.json.damaged-1" in printed
    assert "cached 0," in printed and "new shard(s)" in printed
    from nanoemox.features import FeatureCache

    assert len(FeatureCache.open(tmp_path / "cache")) == len(shards)
