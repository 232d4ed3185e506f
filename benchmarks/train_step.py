"""Benchmark: samples/s of one phase-3 training step, live encoders against cached features.

For each preset (`tiny`, and `paper` with random weights: its backbone references are
cleared, so nothing is downloaded) one micro-batch of SynthAffect training records
(micro-batch 3, the paper's) goes through a full phase-3 step (fusion, the three
adapters and LoRA train; AdamW with gradient clipping, one optimizer step per
micro-batch) in three ways:

- live:     frozen encoders forward on pre-processed tensors held in memory, then the
            branches and the LM forward + backward, then the optimizer step;
- cached:   the same with the encoder outputs (`MediaFeatures`) computed beforehand,
            as a feature cache gives them;
- decoding: (tiny only) `processor.from_record` + `collate` inside the timed loop, then
            the live step, so the cost of media decoding is visible. Decoding does not
            depend on the model, so its cost adds the same seconds to the paper preset.

A warm-up live step per distinct micro-batch runs every path once and keeps the encoder
outputs it computed as that batch's cached features (the encoders are frozen and in
eval mode, so these are exactly what the feature cache stores). The measured steps then
run the modes round-robin, so a busy machine slows all of them alike; each figure is
the median over the measured steps. Every preset runs in a fresh process so that its
peak RSS is its own.

FLOPs per step (for achieved TFLOP/s and, with a known peak, MFU):
    6 * N_lm * T            the LM path (forward + backward), N_lm = all LM parameters
                            (gradients flow through the frozen weights to LoRA and the
                            modality tokens), T = non-padding tokens of the micro-batch
  + 3 * F_branches          the trainable branches (Q-Formers, adapters, face temporal,
                            fusion): forward FLOPs counted by torch's FlopCounterMode, x3
  + F_encoders (live only)  the frozen encoders' forward (about 2 * params * positions),
                            counted by FlopCounterMode on one frame / clip and scaled.
The attention score term of the LM is left out (small at these lengths). With the LM's
own weights frozen the backward skips their weight gradients, so the real LM arithmetic
is nearer 4 * N_lm * T; 6 * N_lm * T is the usual convention, kept for comparability.

    python benchmarks/train_step.py [--presets tiny,paper] [--steps N] [--batches N]
        [--device cpu|cuda] [--dtype fp32|bf16] [--peak-tflops 989] [--threads N]
        [--data SYNTH_DIR] [--no-decoding] [--out benchmarks/results/train_step.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from nanoemox.config import PRESETS, get_preset
from nanoemox.data.manifest import load_manifest
from nanoemox.model import MediaFeatures, build_model, build_tokenizer, set_trainable
from nanoemox.model.groups import parameter_groups
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.train.config import PhaseConfig
from nanoemox.train.optim import build_optimizer

logger = logging.getLogger("train_step")

PHASE3_GROUPS = ["fusion", "scene_adapter", "speech_adapter", "face_adapter", "lora"]
# Measured steps per mode when --steps is not given: the paper preset takes minutes a step on a CPU.
DEFAULT_STEPS = {"tiny": 10, "paper": 2}
# Distinct micro-batches per preset: each costs one encoder pass (about 100 s for paper on a CPU).
DEFAULT_BATCHES = {"tiny": 3, "paper": 1}
MEDIA_KEYS = ("pixel_values", "face_pixel_values", "audio_values")
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


# ---------------------------------------------------------------------- model and data


def preset_config(name: str):
    """The preset with every backbone reference cleared: random weights, no download."""
    config = get_preset(name)
    config.scene.encoder = config.speech.encoder = config.face.encoder = None
    config.language.model = config.language.tokenizer = None
    return config


def build(name: str, device: torch.device, micro_batch: int):
    """Model (phase-3 groups trainable, train mode), processor and optimizer."""
    config = preset_config(name)
    # The tiny preset's tokenizer: its ids lie within the paper vocabulary too, and
    # build_model registers its placeholders, so prompts and model agree.
    tokenizer = build_tokenizer(get_preset("tiny"))
    model = build_model(config, pretrained=False, tokenizer=tokenizer)
    set_trainable(model, PHASE3_GROUPS)
    model.train().to(device)
    phase = PhaseConfig(name="phase3", trainable=PHASE3_GROUPS, steps=1000, lr=8e-6, tasks={"mer": 1.0},
                        micro_batch=micro_batch, grad_accum=1)
    return model, NanoEmoXProcessor.from_config(config, tokenizer), build_optimizer(model, phase), phase


def pick_records(data: Path, count: int, seed: int) -> list:
    """`count` training records drawn without replacement (all six tasks appear in SynthAffect)."""
    records = [r for r in load_manifest(data / "train.jsonl") if r.split == "train"]
    if len(records) < count:
        raise ValueError(f"{data / 'train.jsonl'} has {len(records)} training records, {count} are needed; "
                         "generate a larger corpus (nanoemox synth --n ...)")
    return random.Random(seed).sample(records, count)


def decode_batch(processor, records, root: Path, seed: int) -> dict:
    """Decode and tokenize records into one collated micro-batch (the training path of the processor)."""
    samples = [processor.from_record(r, root, train=True, rng=random.Random(seed + i)) for i, r in enumerate(records)]
    return processor.collate(samples)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# ---------------------------------------------------------------------- one step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model, optimizer, phase, batch: dict, features: MediaFeatures | None, autocast) -> dict:
    """One micro-batch, as the trainer runs it: forward, loss, backward, clip, optimizer step; times per part."""
    device = batch["input_ids"].device
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if features is None:
        inputs.update({k: batch[k] for k in MEDIA_KEYS})
    else:
        inputs["features"] = features
    _sync(device)
    start = time.perf_counter()
    with autocast():
        loss = model(**inputs, labels=batch["labels"], loss_only=True).loss  # the trainer's loss
    _sync(device)
    forward = time.perf_counter()
    loss.backward()
    _sync(device)
    backward = time.perf_counter()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], phase.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync(device)
    end = time.perf_counter()
    if not torch.isfinite(loss):
        raise RuntimeError(f"the benchmark step produced a non-finite loss ({loss.item()})")
    return {"forward_s": forward - start, "backward_s": backward - forward, "optimizer_s": end - backward, "step_s": end - start}


# ---------------------------------------------------------------------- FLOPs


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@torch.no_grad()
def encoder_flops(model, batch: dict) -> dict[str, int]:
    """Forward FLOPs of the frozen encoders for the micro-batch: counted on one frame / clip, scaled."""
    b, f = batch["pixel_values"].shape[:2]
    c = batch["audio_values"].shape[1]
    return {
        "scene": _counted(lambda: model.scene.encode(batch["pixel_values"][:1, :1])) * b * f,
        "speech": _counted(lambda: model.speech.encode(batch["audio_values"][:1, :1])) * b * c,
        "face": _counted(lambda: model.face.encode(batch["face_pixel_values"][:1, :1])) * b * f,
    }


def step_flops(model, batches: list[dict], features: MediaFeatures, encoders: dict[str, int]) -> dict:
    """FLOPs of one step by the formula of the module docstring, at the mean token count of `batches`."""
    groups = parameter_groups(model)
    n_lm = sum(p.numel() for g in ("language", "lora") for _, p in groups[g])
    tokens = statistics.mean(int(b["attention_mask"].sum()) for b in batches)
    # With autograd on: the counter's module hooks fail on trainable leaves under no_grad.
    branches = _counted(lambda: model.modality_tokens(features))
    cached = int(6 * n_lm * tokens) + 3 * branches
    return {
        "lm_path_params": n_lm,
        "tokens_per_micro_batch": tokens,
        "lm_flops": int(6 * n_lm * tokens),
        "branch_flops": 3 * branches,
        "encoder_flops": encoders,
        "cached_step_flops": cached,
        "live_step_flops": cached + sum(encoders.values()),
    }


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """A reference peak measured here: TFLOP/s of a square matmul in the step's dtype."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


# ---------------------------------------------------------------------- one preset (child process)


def _median_parts(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def _summary(runs: list[dict], micro_batch: int, flops: int, peak_tflops: float | None, matmul: float) -> dict:
    parts = _median_parts(runs)
    achieved = flops / parts["step_s"] / 1e12
    return {
        "samples_per_s": micro_batch / parts["step_s"],
        **parts,
        "step_s_all": [round(r["step_s"], 4) for r in runs],
        "achieved_tflops": achieved,
        "mfu": achieved / peak_tflops if peak_tflops else None,
        "fraction_of_matmul_peak": achieved / matmul,
    }


def _modes(name: str, decode: bool) -> list[str]:
    return ["live", "cached"] + (["decoding"] if decode and name == "tiny" else [])


class EncoderTimer:
    """Wraps `model.encode_media`: times the frozen encoders inside a live step and keeps their outputs."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device
        self.seconds: float | None = None
        self.last: MediaFeatures | None = None

    def __call__(self, *media: torch.Tensor) -> MediaFeatures:
        _sync(self.device)
        start = time.perf_counter()
        self.last = type(self.model).encode_media(self.model, *media)
        _sync(self.device)
        self.seconds = time.perf_counter() - start
        return self.last

    def __enter__(self) -> "EncoderTimer":
        self.model.encode_media = self  # an instance attribute shadows the method for forward()
        return self

    def __exit__(self, *exc) -> None:
        del self.model.encode_media


def live_step(ctx: dict, batch: dict) -> tuple[dict, MediaFeatures]:
    """A live step with the encoders' share of the forward timed; also returns their outputs."""
    with EncoderTimer(ctx["model"], ctx["device"]) as timer:
        timing = train_step(ctx["model"], ctx["optimizer"], ctx["phase"], batch, None, ctx["autocast"])
    return {"encoders_s": timer.seconds, **timing}, timer.last


def warm_up(ctx: dict) -> list[MediaFeatures]:
    """One live step per micro-batch; returns the encoder outputs as that batch's cached features.

    Every path (encoders, branches, LM, backward, optimizer; the decoders already ran in
    batch preparation) runs once before the clock starts, and the features are what a
    feature cache holds: frozen encoders stay in eval mode, so they are deterministic.
    """
    features = []
    for i, batch in enumerate(ctx["batches"]):
        timing, feats = live_step(ctx, batch)
        features.append(feats.to(torch.float32))
        logger.info("%s warm-up live step %d/%d: %.3f s (encoders %.3f s)", ctx["name"], i + 1, len(ctx["batches"]),
                    timing["step_s"], timing["encoders_s"])
    return features


def run_modes(ctx: dict, modes: list[str], steps: int) -> dict[str, list[dict]]:
    """`steps` measured steps per mode, round-robin (so machine load hits every mode alike)."""
    runs = {m: [] for m in modes}
    for step in range(steps):
        i = step % len(ctx["batches"])
        for mode in modes:
            if mode == "decoding":
                start = time.perf_counter()
                batch = to_device(decode_batch(ctx["processor"], ctx["records"][i], ctx["root"], seed=step), ctx["device"])
                decoded = time.perf_counter() - start
                timing, _ = live_step(ctx, batch)
                timing = {"decode_s": decoded, **timing, "step_s": decoded + timing["step_s"]}
            elif mode == "live":
                timing, _ = live_step(ctx, ctx["batches"][i])
            else:
                timing = train_step(ctx["model"], ctx["optimizer"], ctx["phase"], ctx["batches"][i], ctx["features"][i],
                                    ctx["autocast"])
            logger.info("%s %s step %d/%d: %.3f s", ctx["name"], mode, step + 1, steps, timing["step_s"])
            runs[mode].append(timing)
    return runs


def prepare(name: str, args, data: Path) -> dict:
    """Model, optimizer and pre-processed micro-batches on the device."""
    device = torch.device(args.device)
    start = time.perf_counter()
    model, processor, optimizer, phase = build(name, device, args.micro_batch)
    timings = {"build_s": time.perf_counter() - start, "rss_gb_after_build": _rss_gb()}
    logger.info("%s built in %.1f s (RSS %.2f GiB)", name, timings["build_s"], timings["rss_gb_after_build"])
    steps = args.steps or DEFAULT_STEPS.get(name, 2)
    n_batches = min(args.batches or DEFAULT_BATCHES.get(name, 1), steps)
    picked = pick_records(data, n_batches * args.micro_batch, seed=args.seed)
    records = [picked[i * args.micro_batch:(i + 1) * args.micro_batch] for i in range(n_batches)]
    batches = [to_device(decode_batch(processor, r, data, seed=1000 + i), device) for i, r in enumerate(records)]
    dtype = DTYPES[args.dtype]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    return dict(name=name, model=model, processor=processor, optimizer=optimizer, phase=phase, batches=batches,
                records=records, root=data, device=device, autocast=autocast, steps=steps,
                timings=timings)


def bench_preset(name: str, args, data: Path) -> dict:
    """Prepare the preset, time its modes; one JSON-ready dict."""
    load_before = os.getloadavg()
    ctx = prepare(name, args, data)
    model, steps, device = ctx["model"], ctx["steps"], ctx["device"]
    ctx["features"] = warm_up(ctx)
    used = [ctx["batches"][i % len(ctx["batches"])] for i in range(steps)]  # as run_modes cycles them
    flops = step_flops(model, used, ctx["features"][0], encoder_flops(model, ctx["batches"][0]))
    matmul = matmul_tflops(device, DTYPES[args.dtype] or torch.float32)
    runs = run_modes(ctx, _modes(name, not args.no_decoding), steps)
    per_mode = {"live": flops["live_step_flops"], "cached": flops["cached_step_flops"], "decoding": flops["live_step_flops"]}
    return {
        "preset": name,
        "weights": "random",
        "dtype": args.dtype,
        "micro_batch": args.micro_batch,
        "measured_steps_per_mode": steps,
        "distinct_micro_batches": len(ctx["batches"]),
        "tokens_per_sample_mean": flops["tokens_per_micro_batch"] / args.micro_batch,
        "tasks": sorted({r.task for batch in ctx["records"] for r in batch}),
        "parameters": _parameters(model),
        **ctx["timings"],
        "flops": flops,
        "matmul_tflops_reference": matmul,
        "modes": {m: _summary(r, args.micro_batch, per_mode[m], args.peak_tflops_effective, matmul) for m, r in runs.items()},
        "memory": _memory(device),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
    }


def _parameters(model) -> dict:
    groups = parameter_groups(model)
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "per_group": {g: sum(p.numel() for _, p in params) for g, params in groups.items()},
    }


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _memory(device: torch.device) -> dict:
    out = {
        "rss_gb_end": _rss_gb(),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # ru_maxrss is KiB on Linux
    }
    if device.type == "cuda":
        out["peak_gpu_allocated_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


# ---------------------------------------------------------------------- driver


def machine(device: str) -> dict:
    info = {
        "device": device,
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_child(name: str, args, data: Path) -> dict:
    """Run one preset in a fresh interpreter, so peak memory and allocator state are its own."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    cmd = [sys.executable, __file__, "--child", name, "--data", str(data), "--child-out", str(result_path),
           "--device", args.device, "--dtype", args.dtype, "--micro-batch", str(args.micro_batch),
           "--seed", str(args.seed)]
    cmd += ["--steps", str(args.steps)] if args.steps else []
    cmd += ["--batches", str(args.batches)] if args.batches else []
    cmd += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops is not None else []
    cmd += ["--no-decoding"] if args.no_decoding else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    try:
        done = subprocess.run(cmd)
        if done.returncode != 0:
            raise RuntimeError(f"the {name} preset benchmark failed (exit code {done.returncode}); see the log above")
        return json.loads(result_path.read_text(encoding="utf-8"))
    finally:
        result_path.unlink(missing_ok=True)


def print_table(results: dict) -> None:
    print(f"{'preset':8} {'mode':9} {'samples/s':>10} {'step s':>9} {'fwd s':>8} {'bwd s':>8} {'opt s':>7} {'TFLOP/s':>8} {'MFU':>7}")
    for name, res in results["presets"].items():
        for mode, row in res["modes"].items():
            mfu = f"{row['mfu']:.2%}" if row.get("mfu") is not None else "-"
            print(f"{name:8} {mode:9} {row['samples_per_s']:10.3f} {row['step_s']:9.3f} {row['forward_s']:8.3f} "
                  f"{row['backward_s']:8.3f} {row['optimizer_s']:7.3f} {row.get('achieved_tflops', 0):8.3f} {mfu:>7}")
        print(f"{name:8} peak RSS {res['memory']['peak_rss_gb']:.2f} GiB, cached/live speed-up "
              f"{res['modes']['cached']['samples_per_s'] / res['modes']['live']['samples_per_s']:.2f}x")


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,paper", help="comma-separated presets (default tiny,paper)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"measured steps per mode after one warm-up (default {DEFAULT_STEPS})")
    parser.add_argument("--batches", type=int, default=None,
                        help=f"distinct micro-batches cycled through (default {DEFAULT_BATCHES})")
    parser.add_argument("--micro-batch", type=int, default=3, help="samples per micro-batch (default 3, the paper's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="fp32, or bf16 autocast over fp32 weights as the trainer's mixed precision (default fp32)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak FLOP/s of the device in TFLOP/s for MFU (default 989, H100 bf16 dense, on cuda; none on cpu)")
    parser.add_argument("--data", default=None, help="a SynthAffect folder (default: generate 24 clips in a temp folder)")
    parser.add_argument("--no-decoding", action="store_true", help="skip the 'live with decoding' mode of the tiny preset")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_step.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [p for p in args.presets.split(",") if p.strip() and p.strip() not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; choose from {sorted(PRESETS)}")
    if (args.steps is not None and args.steps < 1) or (args.batches is not None and args.batches < 1):
        parser.error("--steps and --batches must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda was given but torch sees no CUDA device")
    args.peak_tflops_effective = args.peak_tflops or (989.0 if args.device.startswith("cuda") else None)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.child:
        torch.manual_seed(args.seed)
        result = bench_preset(args.child, args, Path(args.data))
        Path(args.child_out).write_text(json.dumps(result), encoding="utf-8")
        return 0
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    info = machine(args.device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "synth"
        if args.data is None:
            from nanoemox.data.synth import generate

            generate(data, 24, seed=args.seed)
        results = {"machine": info, "presets": {name: run_child(name, args, data) for name in presets}}
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["total_s"] = time.perf_counter() - started
    results["notes"] = (
        f"{'CPU' if args.device == 'cpu' else args.device} only; random weights; phase-3 groups {PHASE3_GROUPS}; "
        "one optimizer step per micro-batch; FLOP formula in the docstring of benchmarks/train_step.py; "
        "MFU is given only when a peak is known (--peak-tflops, or 989 TFLOP/s by default on cuda)."
    )
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
