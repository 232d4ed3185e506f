"""Everything one lent GPU can tell us, in one call: training throughput, MFU, profile, inference speed.

    python benchmarks/gpu_check.py OUT [--device cuda] [--preset paper] [--steps 20]
    python benchmarks/gpu_check.py OUT --device cpu --tiny --steps 2     # the CPU check that keeps it working

Writes OUT/gpu_check.json and prints a summary. Parts (each timed after warm-up steps):

1. environment: torch / transformers / peft versions, device name, bf16 peak used for MFU
   (dense bf16 tensor-core peak from the vendor's sheet for known GPUs, else measured
   with a large matrix product);
2. the phase-3 training step of the paper preset (random weights; fusion, adapters and
   LoRA trainable; micro-batch 3 x accumulation 4; bf16 autocast), with live encoders
   and from cached encoder features: samples/s, model FLOPs utilisation, peak memory,
   the projected hours of the paper's P2E (345k steps x 12 samples) and of Jo-T (the
   same number of steps), and the three largest costs in the step's profile;
3. `analyze` on the device, bf16: one task and six tasks of one clip, and clips per
   second for a batch of 32 clips (each asked MER, scored).

FLOPs per training sample are estimated as 2 x N x T for a forward pass (N parameters
a token passes through, T tokens): the LM forward and backward (6 x N_lm x T_prompt),
the trainable branch parts (6 x their parameters per input), and with live encoders
their forward passes (2 x N_enc x their tokens). MFU = achieved FLOPs / peak.
Prompts use a tiny stand-in tokenizer whose ids lie inside the paper vocabulary.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

PAPER_STEPS, SAMPLES_PER_STEP = 345_000, 12
# Dense bf16 tensor-core peaks (vendor datasheets, SXM parts), TFLOP/s.
BF16_PEAK_TFLOPS = {"H200": 989.5, "H100": 989.5, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}
TASKS = ("msa", "mer", "ovmer", "eri", "mir", "erg")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_tflops(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in BF16_PEAK_TFLOPS.items():
            if key in name:
                return value, f"datasheet ({key})"
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    _sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    _sync(device)
    return 2 * n**3 * 10 / (time.perf_counter() - start) / 1e12, f"measured {n}^3 bf16 matmul"


def build(preset: str, device: torch.device):
    """Random model of `preset` (in bf16 on the device) and a processor with a tiny stand-in tokenizer."""
    from nanoemox.cli import main as cli
    from nanoemox.config import get_preset
    from nanoemox.model import build_model
    from nanoemox.processor import NanoEmoXProcessor
    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    assert cli(["init-model", "--preset", "tiny", "--out", str(work / "tiny")]) == 0
    config = get_preset(preset)
    config.scene.encoder = config.speech.encoder = config.face.encoder = None
    config.language.model = config.language.tokenizer = None
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(config, pretrained=False, dtype=torch.float32)
    processor = NanoEmoXProcessor.from_config(config, AutoTokenizer.from_pretrained(work / "tiny" / "tokenizer"))
    model.placeholder_ids = dict(processor.placeholder_ids)
    return model, processor, config


def _batch(model, processor, config, device, size: int) -> dict:
    samples = [processor.encode_text("eri", text="I cannot believe it actually worked, after all this time",
                                     target="The speaker smiles broadly and her voice rises: she is delighted.")
               for _ in range(size)]
    ids = torch.tensor([s.input_ids for s in samples], device=device)
    labels = torch.tensor([s.labels for s in samples], device=device)
    frames, clips = config.scene.num_frames, config.speech.num_clips
    size_px = config.scene.encoder_config.get("image_size", 224)
    samples_audio = int(config.speech.sample_rate * config.speech.clip_seconds)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
            "pixel_values": torch.randn(size, frames, 3, size_px, size_px, device=device),
            "face_pixel_values": torch.randn(size, frames, 3, 224, 224, device=device),
            "audio_values": torch.randn(size, clips, samples_audio, device=device)}


def _flops_per_sample(model, config, tokens: int, live: bool) -> float:
    lm = sum(p.numel() for p in model.language.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = 6 * lm * tokens + 6 * trainable * config.scene.num_frames
    if live:
        patches = (config.scene.encoder_config.get("image_size", 224) // config.scene.encoder_config.get("patch_size", 14)) ** 2 + 1
        scene = sum(p.numel() for p in model.scene.encoder.parameters()) * patches * config.scene.num_frames
        speech_frames = int(config.speech.clip_seconds * 50) * config.speech.num_clips
        speech = sum(p.numel() for p in model.speech.encoder.parameters()) * speech_frames
        face = sum(p.numel() for p in model.face.encoder.parameters()) * 49 * config.scene.num_frames
        flops += 2 * (scene + speech + face)
    return float(flops)


def train_step(model, processor, config, device, steps: int, cached: bool, micro: int = 3, accum: int = 4) -> dict:
    from nanoemox.model import set_trainable

    set_trainable(model, ["fusion", "scene_adapter", "speech_adapter", "face_adapter", "lora"])
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=8e-6)
    batch = _batch(model, processor, config, device, micro)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if cached:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            features = model.encode_media(batch["pixel_values"], batch["face_pixel_values"], batch["audio_values"])
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "features": features}

    def step():
        for _ in range(accum):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(**inputs, labels=batch["labels"], loss_only=True).loss / accum
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    profile = _profile(step, device)
    samples_per_s = micro * accum / seconds
    return {"cached_features": cached, "seconds_per_step": seconds, "samples_per_s": samples_per_s,
            "flops_per_sample": _flops_per_sample(model, config, batch["input_ids"].shape[1], live=not cached),
            "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "projected_hours_p2e": PAPER_STEPS * SAMPLES_PER_STEP / samples_per_s / 3600,
            "projected_hours_jot": PAPER_STEPS * SAMPLES_PER_STEP / samples_per_s / 3600,
            "top_costs": profile}


def _profile(step, device) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)[:3]
    return [{"op": e.key, "ms": getattr(e, key, 0) / 1000.0, "calls": e.count} for e in events]


def inference(model, processor, device, tiny: bool) -> dict:
    from nanoemox.inference import Predictor, analyze, clip_records
    from nanoemox.media.synth import write_video

    model.eval()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-clip-"))
    clip = write_video(work / "clip.mp4", seconds=4.0, fps=25, size=(320, 240), audio_rate=16000)
    predictor = Predictor(model, processor, device=device, dtype=torch.bfloat16, batch_size=32,
                          max_new_tokens={t: 16 for t in TASKS})

    def timed(fn, repeats=2):
        fn()
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync(device)
        return (time.perf_counter() - start) / repeats

    one = timed(lambda: next(analyze(predictor, [clip_records(clip, ["mer"])])))
    six = timed(lambda: next(analyze(predictor, [clip_records(clip, list(TASKS))])))
    clips = 4 if tiny else 32
    many = [clip_records(clip, ["mer"], clip_id=f"c{i}") for i in range(clips)]
    batch = timed(lambda: list(analyze(predictor, many, decode="score")), repeats=1)
    return {"one_task_s": one, "six_tasks_s": six, "six_over_one": six / one,
            "clips_per_s_batch": clips / batch, "batch_clips": clips}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="paper")
    p.add_argument("--tiny", action="store_true", help="the tiny preset, few steps (the CPU check)")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    import peft
    import transformers

    device = torch.device(args.device)
    preset = "tiny" if args.tiny else args.preset
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peak, source = peak_tflops(device)
    result = {"environment": {"python": platform.python_version(), "torch": torch.__version__,
                              "transformers": transformers.__version__, "peft": peft.__version__,
                              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                              "bf16_peak_tflops": peak, "peak_source": source}, "preset": preset}
    model, processor, config = build(preset, device)
    result["training"] = []
    for cached in (False, True):
        run = train_step(model, processor, config, device, args.steps, cached)
        run["mfu"] = run["flops_per_sample"] * run["samples_per_s"] / (peak * 1e12)
        result["training"].append(run)
        print(f"train step ({'cached features' if cached else 'live encoders'}): {run['samples_per_s']:.1f} samples/s, "
              f"MFU {run['mfu']:.1%}, P2E {run['projected_hours_p2e']:.1f} h; top: "
              + ", ".join(f"{c['op']} {c['ms']:.1f} ms" for c in run["top_costs"]), flush=True)
    result["inference"] = inference(model, processor, device, args.tiny)
    print(f"analyze: one task {result['inference']['one_task_s']:.3f} s, six tasks {result['inference']['six_tasks_s']:.3f} s "
          f"({result['inference']['six_over_one']:.2f}x), {result['inference']['clips_per_s_batch']:.1f} clips/s", flush=True)
    target = 4.0  # hours for P2E from cached features on one H200 (about 290 samples/s)
    cached_run = result["training"][1]
    result["goal"] = {"target_hours": target, "hours": cached_run["projected_hours_p2e"],
                      "gap_factor": cached_run["projected_hours_p2e"] / target}
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
