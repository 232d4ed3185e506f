"""Benchmark: analysing one clip at paper scale, one task against six, bfloat16 against float32.

In one child process per dtype, the paper preset is built with random weights (CLIP
ViT-L/14, HuBERT-Large, Swin-B, Qwen2.5-1.5B sizes) and one 4 s clip is analysed:

- naive: the same backbone modules called directly (CLIP on 8 frames, HuBERT on 8 x 2 s,
  Swin on 8 faces, the LM prefill of the prompt), the floor any pipeline pays;
- one task scored (`--decode score`, MER), one task generated, six tasks generated
  (`analyze`'s shared-clip path), and six tasks one by one (every task pays the
  encoders and the whole prompt again, as before the shared path);

each timed end to end after one warm-up, with the process's peak memory. The ratio
"six tasks / one task" at equal new tokens is the number the shared path is for.
A second part times a 5 s and a 600 s clip end to end (decode + encoders + one
scored task) on the tiny preset: long clips are sampled, not decoded in full.

    python benchmarks/analyze.py [--new-tokens 16] [--dtypes bfloat16,float32]
                                 [--out benchmarks/results/analyze.json]
    python benchmarks/analyze.py --tiny        # the same measurements on the tiny preset (a quick check)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TASKS = ("msa", "mer", "ovmer", "eri", "mir", "erg")


def _timed(fn, repeats: int = 1) -> float:
    fn()  # warm-up (allocations, kernel choice)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _model(preset: str, dtype: torch.dtype, tokenizer):
    """A random model of `preset` whose placeholder ids are the tiny tokenizer's."""
    from nanoemox.config import get_preset
    from nanoemox.model import build_model
    from nanoemox.processor import NanoEmoXProcessor

    config = get_preset(preset)
    config.scene.encoder = config.speech.encoder = config.face.encoder = None
    config.language.model = config.language.tokenizer = None
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # weights made in the target dtype, as a checkpoint load would
    try:
        model = build_model(config, pretrained=False, dtype=dtype).eval()
    finally:
        torch.set_default_dtype(default)
    processor = NanoEmoXProcessor.from_config(config, tokenizer)
    # The tiny tokenizer's ids lie inside the paper vocabulary; its placeholders stand in.
    model.placeholder_ids = dict(processor.placeholder_ids)
    return model, processor


def paper_predictor(tokenizer_dir: str | Path):
    """A Predictor of the random paper-preset model in bfloat16 on the CPU (batches of 8), as the
    timeline and live benchmarks run it."""
    from transformers import AutoTokenizer

    from nanoemox.inference import Predictor

    model, processor = _model("paper", torch.bfloat16, AutoTokenizer.from_pretrained(tokenizer_dir))
    return Predictor(model, processor, device="cpu", dtype=torch.bfloat16, batch_size=8)


def _naive(model, predictor, clip: Path) -> float:
    sample = predictor.sample("mer", video=clip, text="I cannot believe it actually worked")
    batch = predictor.source.collate(predictor.session, [sample])

    def run():
        with torch.inference_mode():
            frames = batch["pixel_values"].flatten(0, 1)
            model.scene.encoder(pixel_values=frames, output_hidden_states=True)
            model.speech.encoder(input_values=batch["audio_values"].flatten(0, 1), output_hidden_states=True)
            model.face.encoder.frame_features(batch["face_pixel_values"].flatten(0, 1))
            embeds = model.language.get_input_embeddings()(batch["input_ids"])
            model.language(inputs_embeds=embeds, use_cache=True)

    return _timed(run)


def child(preset: str, dtype_name: str, clip: Path, tokenizer_dir: Path, new_tokens: int) -> dict:
    from transformers import AutoTokenizer

    from nanoemox.inference import Predictor, analyze, clip_records

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    model, processor = _model(preset, dtype, AutoTokenizer.from_pretrained(tokenizer_dir))
    budgets = {t: new_tokens for t in TASKS}

    def predictor(batch_size: int) -> Predictor:
        return Predictor(model, processor, device="cpu", dtype=dtype, batch_size=batch_size, max_new_tokens=budgets)

    shared, alone = predictor(8), predictor(1)
    answer = lambda p, tasks, decode: next(analyze(p, [clip_records(clip, tasks, subtitle="I did it!")], decode=decode))
    times = {
        "naive_backbones": _naive(model, shared, clip),
        "one_task_scored": _timed(lambda: answer(shared, ["mer"], "score")),
        "one_task_generated": _timed(lambda: answer(shared, ["mer"], "generate")),
        "six_tasks_generated": _timed(lambda: answer(shared, list(TASKS), "generate")),
        "six_tasks_one_by_one": _timed(lambda: answer(alone, list(TASKS), "generate")),
    }
    one = times["one_task_generated"]
    return {
        "preset": preset, "dtype": dtype_name, "new_tokens": new_tokens, "seconds": times,
        "ratios": {"six_over_one_generated": times["six_tasks_generated"] / one,
                   "six_one_by_one_over_one": times["six_tasks_one_by_one"] / one,
                   "one_scored_over_naive": times["one_task_scored"] / times["naive_backbones"]},
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def long_clip(model_dir: Path, workdir: Path) -> dict:
    """End-to-end seconds for a 5 s and a 600 s clip (one scored task), tiny preset."""
    from nanoemox.inference import Predictor, analyze, clip_records
    from nanoemox.media.synth import write_video

    predictor = Predictor.from_pretrained(model_dir, device="cpu", media_cache=0)  # decode every time
    out = {}
    for seconds in (5, 600):
        clip = write_video(workdir / f"clip_{seconds}s.mp4", seconds=seconds, fps=5, size=(96, 64), audio_rate=16000)
        out[f"{seconds}s"] = _timed(lambda: next(analyze(predictor, [clip_records(clip, ["mer"])], decode="score")))
    out["ratio_600s_over_5s"] = out["600s"] / out["5s"]
    return out


def _run_child(preset, dtype_name, clip, tokenizer, new_tokens) -> dict:
    cmd = [sys.executable, __file__, "--child", preset, dtype_name, str(clip), str(tokenizer), str(new_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"preset": preset, "dtype": dtype_name, "error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--dtypes", default="bfloat16,float32")
    p.add_argument("--tiny", action="store_true", help="the tiny preset instead of the paper one (quick check)")
    p.add_argument("--out", default="benchmarks/results/analyze.json")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        preset, dtype_name, clip, tokenizer, new_tokens = args.child
        print(json.dumps(child(preset, dtype_name, Path(clip), Path(tokenizer), int(new_tokens))))
        return 0
    from nanoemox.cli import main as cli
    from nanoemox.media.synth import write_video

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        assert cli(["init-model", "--preset", "tiny", "--out", str(work / "tiny")]) == 0
        clip = write_video(work / "clip.mp4", seconds=4.0, fps=25, size=(320, 240), audio_rate=16000)
        preset = "tiny" if args.tiny else "paper"
        results = {"runs": [], "platform": {"torch": torch.__version__, "threads": torch.get_num_threads()}}
        for dtype_name in args.dtypes.split(","):
            print(f"{preset} preset, {dtype_name} ...", file=sys.stderr, flush=True)
            run = _run_child(preset, dtype_name, clip, work / "tiny" / "tokenizer", args.new_tokens)
            results["runs"].append(run)
            print(json.dumps(run, indent=1), file=sys.stderr)
        print("long clip (tiny preset) ...", file=sys.stderr, flush=True)
        results["long_clip"] = long_clip(work / "tiny", work)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for run in results["runs"]:
        if "error" in run:
            print(f"{run['preset']} {run['dtype']}: FAILED\n{run['error']}")
            continue
        t, r = run["seconds"], run["ratios"]
        print(f"{run['preset']} {run['dtype']}: naive {t['naive_backbones']:.2f} s, one scored {t['one_task_scored']:.2f} s, "
              f"one generated {t['one_task_generated']:.2f} s, six generated {t['six_tasks_generated']:.2f} s "
              f"({r['six_over_one_generated']:.2f}x one), six one by one {t['six_tasks_one_by_one']:.2f} s "
              f"({r['six_one_by_one_over_one']:.2f}x); peak {run['peak_rss_gb']:.1f} GB")
    lc = results["long_clip"]
    print(f"clip end to end: 5 s {lc['5s']:.2f} s, 600 s {lc['600s']:.2f} s ({lc['ratio_600s_over_5s']:.2f}x)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
