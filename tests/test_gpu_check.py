"""benchmarks/gpu_check.sh runs end to end on the CPU with the tiny preset (so it is ready for a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_tiny(tmp_path):
    out = tmp_path / "check"
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out), "--device", "cpu", "--tiny",
                           "--steps", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["preset"] == "tiny" and len(result["training"]) == 2
    for run in result["training"]:
        assert run["samples_per_s"] > 0 and 0 < run["mfu"] and len(run["top_costs"]) == 3
        assert run["projected_hours_p2e"] > 0
    assert result["inference"]["six_tasks_s"] > 0 and result["inference"]["clips_per_s_batch"] > 0
    log = (out / "gpu_check.log").read_text()
    assert "torch " in log and "train step (cached features)" in log
    # No deepspeed and no GPU here: the try is named and skipped, nothing half-written.
    assert "DeepSpeed ZeRO-2 try: " in log and "configs/accelerate/deepspeed_zero2.yaml" in log
    assert "DeepSpeed ZeRO-2: skipped" in log and not (out / "deepspeed_zero2").exists()


def test_gpu_check_dry_run(tmp_path):
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "c"), "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dry run" in done.stdout and "transformers " in done.stdout
    assert "--config_file configs/accelerate/deepspeed_zero2.yaml" in done.stdout


def test_deepspeed_try_config_is_a_valid_run(tmp_path):
    """The training config gpu_check.sh gives DeepSpeed passes `nanoemox train --dry-run` on the corpus it writes."""
    from nanoemox.cli import main
    from nanoemox.data.synth import generate

    generate(tmp_path / "synth", 12, seed=0)
    assert main(["train", str(ROOT / "benchmarks" / "deepspeed_try.yaml"), "--dry-run", "--data-root",
                 str(tmp_path / "synth"), "--train", str(tmp_path / "synth" / "train.jsonl")]) == 0
