#!/usr/bin/env bash
# One call that measures everything a lent GPU can tell us (docs/gpu.md), in under 8 minutes.
#   benchmarks/gpu_check.sh OUT              on the GPU machine, from the repository root
#   benchmarks/gpu_check.sh OUT --dry-run    checks imports and the plan, runs nothing heavy
#   benchmarks/gpu_check.sh OUT --device cpu --tiny --steps 2   the CPU check (tests run it)
# Then tries DeepSpeed ZeRO-2 training (the tiny preset, 2 steps) when `deepspeed` imports and a GPU
# is there; otherwise it prints the command it would run and "skipped".
# Writes OUT/gpu_check.json and OUT/gpu_check.log. Runs from the source tree (PYTHONPATH=src),
# so the machine's own torch / transformers / peft are used; PyAV and soxr come from .whl/
# when that folder was carried (see docs/gpu.md).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: benchmarks/gpu_check.sh OUT [--dry-run | --device cpu --tiny --steps N]}"
shift
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
{
  echo "gpu_check $(date -u +%FT%TZ) on $(hostname)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" - <<'PY'
import importlib
for name in ("torch", "transformers", "peft", "accelerate", "av", "soxr"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # report every missing piece at once
        print(f"{name} MISSING ({type(exc).__name__}: {exc})")
import nanoemox
print("nanoemox", nanoemox.__version__, "from", nanoemox.__file__)
PY
  # DeepSpeed ZeRO-2 (docs/training.md, "DeepSpeed"): one process per GPU of this machine.
  DS_CMD=("$PY" -m accelerate.commands.launch --config_file configs/accelerate/deepspeed_zero2.yaml
          --num_processes 1 --main_process_port 29533
          -m nanoemox train benchmarks/deepspeed_try.yaml --out "$OUT/deepspeed_zero2"
          --data-root "$OUT/deepspeed_synth" --train "$OUT/deepspeed_synth/train.jsonl" --no-progress)
  if [ "${1:-}" = "--dry-run" ]; then
    echo "dry run: imports checked; the full run would be: $PY benchmarks/gpu_check.py $OUT"
    echo "then the DeepSpeed ZeRO-2 try: $PY -m nanoemox synth --out $OUT/deepspeed_synth --n 12 --seed 0"
    echo "  ${DS_CMD[*]}"
    exit 0
  fi
  timeout 480 "$PY" benchmarks/gpu_check.py "$OUT" "$@"
  status=$?
  echo "DeepSpeed ZeRO-2 try: ${DS_CMD[*]}"
  if "$PY" -c "import deepspeed, torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    "$PY" -m nanoemox synth --out "$OUT/deepspeed_synth" --n 12 --seed 0 >/dev/null \
      && timeout 90 "${DS_CMD[@]}" && echo "DeepSpeed ZeRO-2: trained 2 steps" || echo "DeepSpeed ZeRO-2: FAILED (above)"
  else
    echo "DeepSpeed ZeRO-2: skipped (needs the deepspeed package and a GPU)"
  fi
  exit "$status"
} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
