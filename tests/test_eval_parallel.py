"""Data-parallel evaluation: `accelerate launch --num_processes 2 -m nanoemox eval` (two CPU processes over
gloo) splits the records, merges the parts and scores; its predictions and scores equal one process's, and
the parts an interrupted run leaves are taken up by the next one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port
from nanoemox.cli import main
from nanoemox.data.manifest import load_manifest
from nanoemox.data.synth import MediaConfig, generate
from nanoemox.eval.harness import PREDICTIONS_FILE
from nanoemox.shards import Shard, merge_parts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth-parallel")
    generate(out, 20, seed=0, media=MediaConfig(size=64, fps=4, duration=1.0), workers=1)
    return out


def _eval_args(corpus: Path, model: Path, out: Path) -> list[str]:
    return ["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(model), "--out", str(out),
            "--batch-size", "1", "--max-new-tokens", "4", "--no-progress", "--no-plots", "--dtype", "float32"]


def _launch(args: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    port = free_port()  # for the rendezvous
    # --multi_gpu picks Accelerate's torchrun launcher; without a GPU the processes meet over gloo
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(port), "-m", "nanoemox", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def _predictions(out: Path) -> dict[str, str]:
    lines = [json.loads(line) for line in (out / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len({e["id"] for e in lines})  # each record once
    return {e["id"]: e["prediction"] for e in lines}


def test_two_processes_evaluate_as_one(corpus, model_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_eval_args(corpus, model_dir, one)) == 0
    launched = _launch(_eval_args(corpus, model_dir, two))
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("| Model |") == 1  # only the main process reports
    assert "process 1 of 2: predicted 6 samples" in launched.stderr  # half of the 12 records each
    assert _predictions(two) == _predictions(one)
    assert [json.loads(line)["id"] for line in (two / PREDICTIONS_FILE).read_text().splitlines()] == \
        [r.id for r in load_manifest(corpus / "test.jsonl")]  # merged in the references' order
    assert not list(two.glob("predictions.part-*"))
    first, second = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert first["columns"] == second["columns"]
    assert second["run"]["predicted"] == second["run"]["n_samples"] == first["run"]["n_samples"]


def test_parts_left_by_an_interrupted_run_are_taken_up(corpus, model_dir, tmp_path):
    one, resumed = tmp_path / "one", tmp_path / "resumed"
    assert main(_eval_args(corpus, model_dir, one)) == 0
    # an interrupted 3-process run: run.json written, two parts with a few predictions each, no merge
    resumed.mkdir()
    shutil.copy(one / "run.json", resumed / "run.json")
    entries = [json.loads(line) for line in (one / PREDICTIONS_FILE).read_text().splitlines()]
    (resumed / "predictions.part-0-of-3.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries[0:6:3]))
    (resumed / "predictions.part-2-of-3.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries[2:9:3])
                                                          + '{"id": "cut')  # a line cut by the interruption
    launched = _launch(_eval_args(corpus, model_dir, resumed))
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert _predictions(resumed) == _predictions(one)
    result = json.loads((resumed / "results.json").read_text())
    assert result["run"]["resumed"] == 5 and result["run"]["predicted"] == len(entries) - 5


def test_changed_settings_are_refused_by_every_process(corpus, model_dir, tmp_path):
    out = tmp_path / "run"
    assert main(_eval_args(corpus, model_dir, out) + ["--limit", "2"]) == 0
    launched = _launch(_eval_args(corpus, model_dir, out)[:-2] + ["--dtype", "bfloat16", "--limit", "2"])
    assert launched.returncode != 0 and "was made with other settings" in launched.stderr


def test_shares_and_merge(tmp_path):
    ids = [f"r{i}" for i in range(7)]
    shares = [Shard(rank, 3).mine(ids) for rank in range(3)]
    assert sorted(sum(shares, [])) == sorted(ids) and shares[1] == ["r1", "r4"]
    target = tmp_path / PREDICTIONS_FILE
    (tmp_path / "predictions.part-1-of-2.jsonl").write_text('{"id": "r3", "prediction": "b"}\n{"id": "r1", "prediction": "a"}\n')
    target.write_text('{"id": "r0", "prediction": "x"}\n')
    assert merge_parts(target, ids) == 2
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["r0", "r1", "r3"]
    assert not list(tmp_path.glob("predictions.part-*"))


def test_two_processes_analyze_a_manifest_as_one(corpus, model_dir, tmp_path):
    common = ["analyze", str(corpus / "test.jsonl"), "--model", str(model_dir), "--batch-size", "1",
              "--max-new-tokens", "4", "--dtype", "float32", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "one.jsonl")]) == 0
    launched = _launch(common + ["--out", str(tmp_path / "two.jsonl")])
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "2 processes: 12 result(s) merged" in launched.stderr
    one = (tmp_path / "one.jsonl").read_text(encoding="utf-8").splitlines()
    two = (tmp_path / "two.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(one) == 12 and two == one  # the same answers, in the manifest's order
    assert not list(tmp_path.glob("two.part-*"))


def test_two_processes_build_the_feature_cache_of_one(corpus, model_dir, tmp_path):
    import torch

    from nanoemox.features import FeatureCache

    common = ["cache-features", str(corpus / "test.jsonl"), "--model", str(model_dir), "--batch-size", "1",
              "--shard-size", "1"]
    # the reference in one process with the same thread count as each of the two (float sums depend on it)
    single = subprocess.run([sys.executable, "-m", "nanoemox", *common, "--out", str(tmp_path / "one")],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    launched = _launch(common + ["--out", str(tmp_path / "two")])
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "process 1 of 2" in launched.stdout and "folded every share" in launched.stdout
    assert not list((tmp_path / "two").glob(".part-*"))
    one, two = FeatureCache.open(tmp_path / "one"), FeatureCache.open(tmp_path / "two")  # checksums verified
    assert sorted(one.keys()) == sorted(two.keys()) and len(one) == 2
    for key in one.keys():
        a, b = one.get(key), two.get(key)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a run after an interrupted one of several processes: its part folder is folded in first
    part = tmp_path / "two" / ".part-0-of-3"
    shutil.copytree(tmp_path / "one", part)
    shutil.rmtree(tmp_path / "three", ignore_errors=True)
    (tmp_path / "three").mkdir()
    shutil.move(str(part), tmp_path / "three" / ".part-0-of-3")
    assert main(common + ["--out", str(tmp_path / "three")]) == 0
    three = FeatureCache.open(tmp_path / "three")
    assert sorted(three.keys()) == sorted(one.keys()) and not list((tmp_path / "three").glob(".part-*"))


def test_a_part_of_another_model_is_refused(corpus, model_dir, tmp_path, capsys):
    other = tmp_path / "other-model"
    assert main(["init-model", "--preset", "tiny", "--out", str(other), "--seed", "1"]) == 0
    common = ["cache-features", str(corpus / "test.jsonl"), "--batch-size", "1"]
    assert main(common + ["--model", str(other), "--out", str(tmp_path / "built")]) == 0
    (tmp_path / "cache").mkdir()
    shutil.move(str(tmp_path / "built"), tmp_path / "cache" / ".part-1-of-2")  # left by a run of another model
    capsys.readouterr()
    assert main(common + ["--model", str(model_dir), "--out", str(tmp_path / "cache")]) == 2
    assert ".part-1-of-2/index.json: the feature cache does not match this model" in capsys.readouterr().err
