"""No silent random parts: a non-tiny model with an untrained frozen backbone is refused unless allowed."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from nanoemox.cli import main
from nanoemox.config import paper
from nanoemox.model.build import RandomBackbonesError, check_backbones, random_backbones_of


def test_paper_preset_without_facexformer_has_a_random_face_encoder():
    config = paper()
    assert random_backbones_of(config) == ["face"]
    with pytest.raises(RandomBackbonesError, match=r"face.*FaceXFormer checkpoint.*--allow-random-backbones"):
        check_backbones(config.__class__(**{**config.__dict__, "random_backbones": ["face"]}))
    config.face.encoder = "checkpoints/facexformer.pt"
    assert random_backbones_of(config) == []


@pytest.fixture()
def scaled_dir(model_dir, tmp_path):
    """The tiny model folder relabelled as a non-tiny preset (its backbones are random)."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["random_backbones"] == ["scene", "speech", "face", "language"]  # by init-model
    config["config"]["preset"] = "custom"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_eval_refuses_then_reports_random_backbones(scaled_dir, tmp_path, capsys):
    from nanoemox.data.synth import MediaConfig, generate

    corpus = tmp_path / "synth"
    generate(corpus, 20, seed=0, media=MediaConfig(size=64, fps=4, duration=1.0), workers=1)
    args = ["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(scaled_dir),
            "--out", str(tmp_path / "ev"), "--limit", "2", "--no-plots", "--no-progress", "--max-new-tokens", "2"]
    assert main(args) == 2
    out = capsys.readouterr().err
    assert "refusing evaluation" in out and "scene, speech, face, language" in out
    assert not (tmp_path / "ev" / "predictions.jsonl").exists()  # refused before any inference
    assert main(args + ["--allow-random-backbones"]) == 0
    printed = capsys.readouterr().out
    assert "Random backbones: scene, speech, face, language" in printed
    run = json.loads((tmp_path / "ev" / "results.json").read_text())["run"]
    assert run["random_backbones"] == ["scene", "speech", "face", "language"]


def test_training_refuses_a_random_backbone_before_building(tmp_path, scaled_dir, capsys):
    config = {"model": {"preset": "paper"}, "data": {"root": ".", "train": ["none.jsonl"]},
              "phases": [{"name": "p", "trainable": ["lora"], "steps": 1, "lr": 1e-3, "tasks": {"mer": 1}}]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    # The paper preset without a FaceXFormer checkpoint: refused before any download.
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "refusing training" in capsys.readouterr().err
    assert not (tmp_path / "run" / "init").exists()
    # The dry run lists it with the other problems, and the model folder case too.
    assert main(["train", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "refusing training" in err and "none.jsonl" in err
    config["model"] = {"path": str(scaled_dir)}
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--dry-run"]) == 2
    assert "random weights in its frozen backbone(s) scene, speech, face, language" in capsys.readouterr().err
    assert main(["train", str(path), "--dry-run", "--allow-random-backbones"]) == 2  # only the data is left
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "none.jsonl" in err and "refusing" not in err


def test_info_names_the_random_backbones(capsys):
    assert main(["info", "--preset", "paper"]) == 0
    assert "random when built as configured: face" in capsys.readouterr().out
