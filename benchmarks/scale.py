"""How a full P2E run divides over 1, 8 and 64 GPUs with cached features: arithmetic on the
paper preset's parameter counts, checked against what FSDP did with the tiny preset.

    python benchmarks/scale.py                 # prints the table, writes benchmarks/results/scale.json
    python benchmarks/scale.py --no-launch     # the arithmetic only (no 2-process FSDP run)

Inputs, all read or measured here, none typed in:
- the paper preset built on the meta device (`nanoemox info`'s counts): the phase-3 trainable
  groups (adapters, fusion, LoRA), the frozen rest, and the parameters of every unit that
  configs/accelerate/fsdp_8gpu.yaml wraps (its `fsdp_transformer_layer_cls_to_wrap`);
- FLOPs of one cached phase-3 sample from benchmarks/results/train_step.json (train_step.py);
- the size of one cached sample from the paper preset's feature shapes (docs/feature_cache.md);
- the paper's reported 32 h for its P2E run on one RTX 4090, as the per-GPU pace;
- measured: `accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m nanoemox train`
  of the tiny preset's phase 3 on 2 CPU processes; the trainer logs how many elements of the
  trainable parameters each process holds, which must be 1/2 of the whole, as assumed below.

Model state per process, as the trainer holds it: weights in fp32 (autocast does bf16 math),
trainable parameters with fp32 gradients and AdamW's two fp32 states (16 bytes each).
Network per process per optimizer step: DDP all-reduces the trainable gradients once per
step (no_sync on the other micro-batches), a ring sending and receiving 2 (N-1)/N of them;
FSDP2 all-gathers in bf16 the units a micro-batch runs (forward, and the resharded layers
again for backward) and reduce-scatters the gradients, for every micro-batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from live import free_port  # benchmarks/live.py, beside this script

from nanoemox.train.sharding import shares_in_log

ROOT = Path(__file__).resolve().parents[1]
PHASE3 = ["scene_adapter", "speech_adapter", "face_adapter", "fusion", "lora"]
PAPER_STEPS, PAPER_SAMPLES_PER_STEP, PAPER_MICRO = 345_000, 12, 3  # configs/p2e_paper.yaml: 3 x 4
PAPER_HOURS_ONE_GPU = 32.0  # the paper: P2E on one RTX 4090
INTER_NODE_GBPS = 12.5  # 100 Gb/s Ethernet/InfiniBand between machines, GB/s
GB = 1e9


def paper_counts() -> dict:
    from nanoemox.config import get_preset
    from nanoemox.model.build import build_model
    from nanoemox.model.groups import count_parameters, set_trainable

    config = get_preset("paper")
    with torch.device("meta"):
        model = build_model(config, pretrained=False)
    set_trainable(model, PHASE3)
    wrap = yaml.safe_load((ROOT / "configs/accelerate/fsdp_8gpu.yaml").read_text())
    classes = wrap["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"].split(",")
    units: dict[str, list[int]] = {}
    for module in model.modules():
        if type(module).__name__ in classes:
            units.setdefault(type(module).__name__, []).append(sum(p.numel() for p in module.parameters()))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    wrapped = sum(sum(v) for v in units.values())
    f, c = config.scene.num_frames, config.speech.num_clips
    taps = len(config.fusion.visual_layers)
    d_v, d_a = model.scene.encoder.config.hidden_size, model.speech.encoder.config.hidden_size
    return {
        "total": total, "trainable": trainable, "frozen": total - trainable, "groups": count_parameters(model),
        "units": {k: {"count": len(v), "largest": max(v), "sum": sum(v)} for k, v in units.items()},
        "root_unit": total - wrapped,
        # cached features: the encoders' layers never run, so they are never gathered
        "gathered_forward": (total - wrapped) + sum(units["Qwen2DecoderLayer"]),
        "gathered_backward": sum(units["Qwen2DecoderLayer"]),
        "feature_floats_per_sample": (1 + taps) * f * d_v + (1 + taps) * c * d_a + f * config.face.feature_dim,
    }


def cached_flops_per_sample() -> float:
    steps = json.loads((ROOT / "benchmarks/results/train_step.json").read_text())
    paper = steps["presets"]["paper"]
    return paper["flops"]["cached_step_flops"] / paper["micro_batch"]


def measured_tiny_fsdp() -> dict:
    """The tiny preset's phase 3 under FSDP on 2 CPU processes: elements of the trainable parameters per process."""
    from nanoemox.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "synth", 12, seed=3)
        config = {"model": {"preset": "tiny"}, "data": {"root": str(tmp / "synth"),
                  "train": [str(tmp / "synth" / "train.jsonl")], "workers": 0}, "seed": 0, "save_every": 100,
                  "log_every": 1, "mixed_precision": "no",
                  "phases": [{"name": "p3", "trainable": PHASE3, "steps": 2, "lr": 1e-3, "micro_batch": 1,
                              "grad_accum": 1, "tasks": {"mer": 1, "mir": 1, "ovmer": 1}}]}
        (tmp / "run.yaml").write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
             str(ROOT / "configs/accelerate/fsdp_cpu.yaml"), "--main_process_port", str(free_port()), "-m", "nanoemox", "train",
             str(tmp / "run.yaml"), "--out", str(tmp / "out"), "--no-progress"],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"the FSDP launch failed:\n{done.stderr[-3000:]}")
        held = shares_in_log(done.stderr)
    per_process = sorted(local for _, local, _, _ in held)
    full = held[0][2]
    return {"processes": len(held), "trainable_elements": full, "held_per_process": per_process,
            "largest_share": max(per_process) / full}


def table(counts: dict) -> list[dict]:
    rows = []
    samples = PAPER_STEPS * PAPER_SAMPLES_PER_STEP
    pace = samples / (PAPER_HOURS_ONE_GPU * 3600)  # samples/s of one GPU at the paper's pace
    state = counts["frozen"] * 4 + counts["trainable"] * 16
    feature_bytes = counts["feature_floats_per_sample"] * 4
    for n, micro, accum in ((1, 3, 4), (8, 3, 1), (64, 3, 1)):
        per_step = micro * accum * n
        steps = math.ceil(samples / per_step)
        ring = 2 * (n - 1) / n
        gather = (counts["gathered_forward"] + counts["gathered_backward"]) * 2 * (n - 1) / n
        scatter = counts["trainable"] * 4 * (n - 1) / n
        largest_unit = max(u["largest"] for u in counts["units"].values())
        rows.append({
            "gpus": n, "micro_batch": micro, "grad_accum": accum, "samples_per_step": per_step, "steps": steps,
            "hours_at_paper_pace": samples / (pace * n) / 3600,
            "ddp_state_gb": (state + counts["trainable"] * 4) / GB,  # + DDP's gradient buckets
            "fsdp_state_gb": state / n / GB + (counts["root_unit"] + 2 * largest_unit) * 2 / GB,
            "ddp_network_gb_per_step": ring * counts["trainable"] * 4 / GB,
            "fsdp_network_gb_per_step": accum * (gather + scatter) / GB,
            "feature_read_mb_per_s": pace * n * feature_bytes / 1e6,
            "compute_s_per_step_at_paper_pace": micro * accum / pace,
            "ddp_allreduce_s_between_machines": ring * counts["trainable"] * 4 / (INTER_NODE_GBPS * GB),
        })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-launch", action="store_true", help="skip the measured 2-process FSDP run")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/scale.json"))
    args = p.parse_args(argv)
    counts = paper_counts()
    flops = cached_flops_per_sample()
    rows = table(counts)
    measured = None if args.no_launch else measured_tiny_fsdp()
    result = {"paper_preset": counts, "cached_flops_per_sample": flops, "rows": rows, "tiny_fsdp_measured": measured,
              "assumptions": {"paper_hours_one_gpu": PAPER_HOURS_ONE_GPU, "inter_node_gb_per_s": INTER_NODE_GBPS,
                              "samples": PAPER_STEPS * PAPER_SAMPLES_PER_STEP}}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"paper preset: {counts['total'] / 1e9:.3f} B parameters, phase 3 trains {counts['trainable'] / 1e6:.1f} M; "
          f"cached sample {flops / 1e12:.2f} TFLOP, {counts['feature_floats_per_sample'] * 4 / 1e3:.0f} kB of features")
    print("| GPUs | samples per step (micro x accum x GPUs) | optimizer steps | hours if it scaled perfectly | "
          "model state per process, DDP / FSDP (GB) | sent per process per step, DDP / FSDP (GB) | "
          "compute per step / DDP all-reduce between machines (s) | feature reads (MB/s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sharded = r["gpus"] > 1
        print(f"| {r['gpus']} | {r['samples_per_step']} ({r['micro_batch']} x {r['grad_accum']} x {r['gpus']}) | "
              f"{r['steps']:,} | {r['hours_at_paper_pace']:.1f} | {r['ddp_state_gb']:.1f} / "
              f"{(format(r['fsdp_state_gb'], '.2f') if sharded else '-')} | {r['ddp_network_gb_per_step']:.2f} / "
              f"{(format(r['fsdp_network_gb_per_step'], '.1f') if sharded else '-')} | "
              f"{r['compute_s_per_step_at_paper_pace']:.3f} / "
              f"{(format(r['ddp_allreduce_s_between_machines'], '.3f') if sharded else '-')} | "
              f"{r['feature_read_mb_per_s']:.0f} |")
    if measured:
        print(f"measured, tiny preset under FSDP on {measured['processes']} CPU processes: trainable elements held "
              f"{measured['held_per_process']} of {measured['trainable_elements']} "
              f"(largest share {measured['largest_share']:.3f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
