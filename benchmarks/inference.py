"""Benchmark: closed-set scoring against generation, latency per stage, peak memory.

1. Closed-set answers on the SynthAffect test split (MSA, MER, MIR): accuracy of greedy
   generation (parsed with the task parser) and of likelihood scoring, and their speed.
   With a random model both sit at chance; pass `--model` to measure a trained one.
2. Latency of one clip split by stage (media decode, face detection, each encoder,
   branch tokens, prefill, generation) for the tiny preset and for the paper preset
   with random weights on the CPU.
3. Peak memory (RSS) of the paper preset in float32 and bfloat16, each measured in a
   fresh process (build, then one full pass), so the two do not share a peak.

    python benchmarks/inference.py [--model DIR] [--data SYNTH_DIR] [--n 60] [--skip-paper]
                                   [--out benchmarks/results/inference.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

from nanoemox.cli import main as cli_main
from nanoemox.inference import SCORABLE_TASKS, Predictor, default_candidates
from nanoemox.tasks import get_task

STAGES = ("decode", "faces", "scene_encoder", "speech_encoder", "face_encoder", "branch_tokens", "prefill", "generation")


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# ---------------------------------------------------------------------- 1. scoring vs generation


def _corpus(data: str | None, n: int, workdir: Path) -> tuple[list, Path]:
    from nanoemox.data.manifest import load_manifest

    if data is None:
        from nanoemox.data.synth import generate

        data = workdir / "synth"
        generate(data, n, seed=0, tasks=SCORABLE_TASKS)
    records = [r for r in load_manifest(Path(data) / "test.jsonl") if r.task in SCORABLE_TASKS]
    return records, Path(data)


def _gold(record) -> str:
    return get_task(record.task).format_target(record.target).lower()


def _accuracy(predictions) -> dict:
    per_task: dict[str, list[int]] = {}
    unparseable = 0
    for p in predictions:
        task = p.record.task
        candidates = p.record.candidates or default_candidates(task)
        parsed = get_task(task).parse(p.text, candidates=candidates) if p.text is not None else None
        if parsed is None:
            unparseable += 1
        per_task.setdefault(task, []).append(int(str(parsed).lower() == _gold(p.record)))
    hits = [h for v in per_task.values() for h in v]
    return {
        "accuracy": sum(hits) / len(hits),
        "per_task": {t: {"accuracy": sum(v) / len(v), "n": len(v)} for t, v in per_task.items()},
        "unparseable": unparseable,
        "errors": sum(p.error is not None for p in predictions),
    }


def closed_set(predictor: Predictor, records: list, root: Path) -> dict:
    out = {"n": len(records)}
    for mode in ("generate", "score"):
        list(predictor.predict_records(records[:2], root, decode=mode))  # warm-up
        seconds, predictions = _timed(lambda: list(predictor.predict_records(records, root, decode=mode)))
        out[mode] = {**_accuracy(predictions), "seconds": seconds, "samples_per_second": len(records) / seconds}
    out["speedup_score_over_generate"] = out["generate"]["seconds"] / out["score"]["seconds"]
    return out


# ---------------------------------------------------------------------- 2. latency per stage


def stage_latency(model, processor, clip: Path, new_tokens: int, repeats: int, input_ids: torch.Tensor | None = None) -> dict:
    """Median seconds per stage for one clip (MER prompt), batch of one, on the CPU."""
    from nanoemox.media.faces import crop_faces
    from nanoemox.media.video import read_frames

    dtype = next(model.language.parameters()).dtype
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    for _ in range(repeats):
        t, media = _timed(lambda: processor.load_media(clip))
        times["decode"].append(t)
        frames = read_frames(clip, processor.media.num_frames).frames
        times["faces"].append(_timed(lambda: crop_faces(frames))[0])
        pix = torch.from_numpy(media.pixel_values)[None].to(dtype)  # [1, F, 3, H, W]
        face_pix = torch.from_numpy(media.face_pixel_values)[None].to(dtype)
        audio = torch.from_numpy(media.audio_values)[None].to(dtype)  # [1, C, S]
        ids = input_ids if input_ids is not None else torch.tensor(processor.encode_text("mer").input_ids)[None]
        with torch.inference_mode():
            t, (scene_cls, scene_taps) = _timed(lambda: model.scene.encode(pix))
            times["scene_encoder"].append(t)
            t, (speech_clips, speech_taps) = _timed(lambda: model.speech.encode(audio))
            times["speech_encoder"].append(t)
            t, face_frames = _timed(lambda: model.face.encode(face_pix))
            times["face_encoder"].append(t)
            from nanoemox.model import MediaFeatures

            features = MediaFeatures(scene_cls, scene_taps, speech_clips, speech_taps, face_frames)
            t, embeds = _timed(lambda: model.merge(ids, model.modality_tokens(features)))
            times["branch_tokens"].append(t)
            mask = torch.ones_like(ids)
            times["prefill"].append(_timed(lambda: model.language(inputs_embeds=embeds, attention_mask=mask, use_cache=True))[0])
            t, _ = _timed(lambda: model.language.generate(
                inputs_embeds=embeds, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False, pad_token_id=0, eos_token_id=None))
            times["generation"].append(t)
    medians = {s: statistics.median(v) for s, v in times.items()}
    medians["per_new_token_ms"] = 1000 * max(0.0, medians["generation"] - medians["prefill"]) / new_tokens
    medians["prompt_tokens"] = int(ids.shape[1])
    medians["new_tokens"] = new_tokens
    medians["total"] = sum(medians[s] for s in STAGES if s != "faces")  # faces: only with face_input="crops"
    return medians


def _tiny_latency(model_dir: Path, clip: Path, repeats: int) -> dict:
    predictor = Predictor.from_pretrained(model_dir, device="cpu")
    stage_latency(predictor.model, predictor.processor, clip, 16, 1)  # warm-up
    return stage_latency(predictor.model, predictor.processor, clip, 16, repeats)


# ---------------------------------------------------------------------- 3. paper preset (child process)


def _rss_gb() -> float:
    return psutil.Process().memory_info().rss / 2**30


def paper_child(dtype_name: str, clip: Path, tokenizer_dir: Path, new_tokens: int) -> dict:
    """Build the paper preset with random weights, run one clip through every stage, report time and memory."""
    from nanoemox.config import paper
    from nanoemox.model import build_model
    from nanoemox.processor import NanoEmoXProcessor
    from transformers import AutoTokenizer

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    config = paper()
    config.scene.encoder = config.speech.encoder = config.face.encoder = None
    config.language.model = config.language.tokenizer = None
    torch.manual_seed(0)
    rss_start = _rss_gb()
    # Create the weights directly in the target dtype, as loading a checkpoint with that dtype
    # would; building in float32 and casting afterwards would put a float32 copy in the peak.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        build_s, model = _timed(lambda: build_model(config, pretrained=False, dtype=dtype).eval())
    finally:
        torch.set_default_dtype(default)
    rss_built = _rss_gb()
    # A tiny tokenizer writes the prompt (its ids lie inside the 151,936-token vocabulary);
    # its placeholder ids are mapped onto the ones the paper-size model reserved.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    processor = NanoEmoXProcessor.from_config(config, tokenizer)
    ids = torch.tensor(processor.encode_text("mer", text="I cannot believe it actually worked").input_ids)
    for modality, tiny_id in processor.placeholder_ids.items():
        ids[ids == tiny_id] = model.placeholder_ids[modality]
    latency = stage_latency(model, processor, clip, new_tokens, 1, ids[None])
    return {
        "dtype": dtype_name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": build_s,
        "rss_gb_before_build": rss_start,
        "rss_gb_after_build": rss_built,
        "rss_gb_after_pass": _rss_gb(),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # ru_maxrss is KiB on Linux
        "latency_s": latency,
    }


def _paper(dtype_name: str, clip: Path, tokenizer_dir: Path, new_tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--paper-child", dtype_name, "--clip", str(clip),
           "--tokenizer", str(tokenizer_dir), "--new-tokens", str(new_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"dtype": dtype_name, "error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- driver


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: a random tiny model)")
    p.add_argument("--data", default=None, help="SynthAffect corpus folder (default: generate one)")
    p.add_argument("--n", type=int, default=60, help="clips to generate when --data is not given (10%% are test)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of the tiny latency")
    p.add_argument("--new-tokens", type=int, default=16, help="tokens generated in the latency runs")
    p.add_argument("--skip-paper", action="store_true", help="skip the paper-size runs (they need ~10 GB RAM)")
    p.add_argument("--out", default="benchmarks/results/inference.json")
    p.add_argument("--paper-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tokenizer", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    if args.paper_child:
        print(json.dumps(paper_child(args.paper_child, Path(args.clip), Path(args.tokenizer), args.new_tokens)))
        return 0
    from nanoemox.media.synth import write_video

    with tempfile.TemporaryDirectory(prefix="nanoemox-bench-") as tmp:
        work = Path(tmp)
        model_dir = Path(args.model) if args.model else work / "tiny"
        if not args.model:
            cli_main(["init-model", "--preset", "tiny", "--out", str(model_dir)])
        records, root = _corpus(args.data, args.n, work)
        print(f"closed-set comparison on {len(records)} test records ...", file=sys.stderr, flush=True)
        result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                              "torch": torch.__version__},
                  "model": args.model or "random tiny preset",
                  "closed_set": closed_set(Predictor.from_pretrained(model_dir, device="cpu"), records, root)}
        clip = write_video(work / "clip.mp4", seconds=4.0, fps=25, size=(320, 240), audio_rate=16000, texture=True)
        print("latency per stage, tiny preset ...", file=sys.stderr, flush=True)
        result["latency_tiny_s"] = _tiny_latency(model_dir, clip, args.repeats)
        if not args.skip_paper:
            for dtype_name in ("float32", "bfloat16"):
                print(f"paper preset, {dtype_name} (random weights, CPU) ...", file=sys.stderr, flush=True)
                result[f"paper_{dtype_name}"] = _paper(dtype_name, clip, model_dir / "tokenizer", args.new_tokens)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
