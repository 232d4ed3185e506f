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


def test_gpu_check_dry_run(tmp_path):
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "c"), "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dry run" in done.stdout and "transformers " in done.stdout
