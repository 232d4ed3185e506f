"""Benchmark: emotion timelines of long videos with known emotions, and their cost.

With the demo model (`nanoemox demo --out nanoemox-demo` made it) and its SynthAffect
corpus, `nanoemox synth --compose` strings clips into long videos with subtitles and
known emotions per stretch: one from the dev clips and two from the test clips (the
requested minutes, default 10, and 1 minute). Then:

1. **Per-clip accuracy**: MER scored over the 7 labels on each clip alone (with its
   subtitle), weighted by how often the clip is placed in the video: what the model
   does on the clips themselves.
2. **Timelines** (`nanoemox timeline` defaults: 4 s windows every 2 s, MER and MSA,
   `--dtype auto`, the .srt as subtitles), each in a child process that reports its
   own peak memory: window accuracy raw and smoothed, time accuracy of the segments,
   boundary error in seconds (`nanoemox.timeline.evaluate`), throughput in video
   seconds per second of inference (from timeline.json; model loading excluded).
3. **Smoothing chosen on dev**: every (smooth, min_segment) of a small grid is scored
   on the dev video's windows by the mean of time accuracy and boundary F1 (2 s
   tolerance); the choice is compared with the library's defaults, and only the
   defaults are reported on test.
4. **Memory**: peak RSS of the 1-minute and the 10-minute test timelines (and of a
   longer one with `--extra-minutes`).
5. **Paper preset**: random weights (CLIP ViT-L/14, HuBERT-Large, Swin-B,
   Qwen2.5-1.5B sizes) in bfloat16 on this CPU, throughput over the first
   `--paper-seconds` of the test video (`--skip-paper` to leave it out).
6. **Shared encoder work** (`--skip-sharing` to leave it out, `--sharing-only` to run
   only this): timelines with a 1 s hop, each in its own child process, with sharing
   on and off one after the other (`TimelineOptions.share`, `nanoemox timeline
   --no-share`): video seconds per wall second, encoder seconds per video second,
   windows per second, peak memory, and whether the answers agree (labels, largest
   probability difference); for the demo model on the test video and for the paper
   preset (random weights, bfloat16) on `--paper-seconds` of it. The speech clips'
   placement (`--speech-clips grid` against `window`) is compared on the dev video:
   label agreement and probability differences. With `--memory-minutes` (e.g. 30) a
   test video that long is run with sharing and its resident memory sampled after
   every window: the medians of the first and the last minute.

    python benchmarks/timeline.py [--demo nanoemox-demo] [--minutes 10] [--paper-seconds 30]
                                  [--sharing-only] [--memory-minutes 30]
                                  [--out benchmarks/results/timeline.json] [--figure docs/timeline_demo.png]

Figures: the 1-minute test timeline (`--figure`) and the 10-minute one (beside `--out`),
each with the true stretches drawn under the predicted segments.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SMOOTH_GRID = (1, 3, 5, 7)
MIN_SEGMENT_GRID = (0.0, 4.0, 8.0)
TARGETS = {"window_accuracy_ratio": 0.85, "real_time_factor": 5.0, "memory_ratio_10min_over_1min": 1.2}
SHARING_TARGETS = {"paper_speed_ratio": 1.8, "demo_speed_ratio": 1.5, "demo_real_time_factor": 10.0,
                   "max_probability_difference": 1e-4, "memory_last_over_first_minute": 1.05}


def compose(corpus: Path, out: Path, split: str, minutes: float, seed: int = 0) -> Path:
    from nanoemox.data.synth.long import compose_long_video

    if not out.exists():
        compose_long_video(corpus, out, minutes=minutes, split=split, seed=seed)
    return out


def per_clip_accuracy(model: Path, corpus: Path, split: str, placed_csv: Path) -> dict:
    """MER scored on each clip alone, weighted by the clip's placements in the video."""
    from nanoemox.data.manifest import load_manifest
    from nanoemox.inference import Predictor

    with open(placed_csv, encoding="utf-8", newline="") as fh:
        placed = [row["clip_id"] for row in csv.DictReader(fh)]
    records = {r.extra["clip_id"]: r for r in load_manifest(corpus / f"{split}.jsonl") if r.task == "mer"}
    wanted = [records[c] for c in sorted(set(placed))]
    predictor = Predictor.from_pretrained(model, dtype="auto")
    correct = {p.record.extra["clip_id"]: p.text is not None and p.text.strip() == p.record.target
               for p in predictor.predict_records(wanted, corpus, decode="score")}
    return {"accuracy": sum(correct[c] for c in placed) / len(placed), "placements": len(placed),
            "distinct_clips": len(correct), "distinct_accuracy": sum(correct.values()) / len(correct)}


def child_timeline(video: str, subtitles: str, out: str, model: str) -> dict:
    """One `nanoemox timeline` run in this process; its timing and this process's peak memory."""
    from nanoemox.cli import main as cli

    code = cli(["timeline", video, "--model", model, "--out", out, "--subtitles", subtitles, "--overwrite"])
    meta = json.loads((Path(out) / "timeline.json").read_text(encoding="utf-8"))
    return {"exit": code, "timing": meta["timing"], "dtype": meta["settings"]["dtype"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_paper(video: str, tokenizer: str, out: str) -> dict:
    """Timeline throughput of the paper preset with random weights, bfloat16, on the CPU."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from analyze import paper_predictor  # the random paper-preset model of the analyze benchmark

    from nanoemox.timeline import Timeline, TimelineOptions, write_timeline

    predictor = paper_predictor(tokenizer)
    meta = write_timeline(Timeline(predictor, video, TimelineOptions()), out, overwrite=True, model_name="paper (random)")
    return {"timing": meta["timing"], "windows": meta["window_count"], "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def child_sharing(video: str, subtitles: str, out: str, model: str, share: str, speech_clips: str, hop: str,
                  dtype: str = "auto") -> dict:
    """One timeline with sharing on ("1") or off ("0"): timing, encoder work, memory over time, the answers.

    `model`: a model folder (loaded in `dtype`), or "paper:<tokenizer folder>" for the random
    paper preset in bfloat16.
    """
    import torch

    from nanoemox.inference import Predictor
    from nanoemox.timeline import Timeline, TimelineOptions, write_timeline

    torch.manual_seed(0)
    if model.startswith("paper:"):
        sys.path.insert(0, str(Path(__file__).parent))
        from analyze import paper_predictor  # the random paper-preset model of the analyze benchmark

        predictor = paper_predictor(model[len("paper:"):])
    else:
        predictor = Predictor.from_pretrained(model, dtype=dtype)
    options = TimelineOptions(hop=float(hop), share=share == "1", speech_clips=speech_clips)
    memory: list[tuple[float, float]] = []  # (window end in seconds, resident MB after it)
    timeline = Timeline(predictor, video, options, subtitles)
    meta = write_timeline(timeline, out, overwrite=True, model_name=model,
                          progress=lambda result: memory.append((result["end"], _rss_mb())))
    timing, encoders = meta["timing"], meta["encoders"]
    video_seconds = timing["video_seconds"] or 1.0
    first = [mb for end, mb in memory if end <= 60.0]
    last = [mb for end, mb in memory if end >= memory[-1][0] - 60.0]
    return {"share": options.share, "speech_clips": speech_clips, "hop": options.hop, "dtype": meta["settings"]["dtype"],
            "timing": timing, "encoders": encoders, "threads": torch.get_num_threads(),
            "encoder_seconds_per_video_second": round(encoders["encoder_seconds"] / video_seconds, 4),
            "windows_per_second": round(timing["windows"] / timing["seconds"], 3),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_first_minute_mb": float(np.median(first)) if first else None,
            "rss_last_minute_mb": float(np.median(last)) if last else None,
            "answers": [{k: r[k]["probabilities"] for k in ("mer", "msa") if k in r} for r in meta["windows"]]}


def agreement(a: dict, b: dict) -> dict:
    """How two runs' answers compare: share of equal MER and MSA labels, largest and mean probability difference."""
    pairs = [(x, y) for x, y in zip(a["answers"], b["answers"]) if x and y]
    same = {task: float(np.mean([max(x[task], key=x[task].get) == max(y[task], key=y[task].get) for x, y in pairs]))
            for task in ("mer", "msa")}
    diffs = [abs(x[t][k] - y[t][k]) for x, y in pairs for t in ("mer", "msa") for k in x[t]]
    return {"windows": len(pairs), "mer_labels_equal": same["mer"], "msa_labels_equal": same["msa"],
            "max_probability_difference": float(max(diffs)), "mean_probability_difference": float(np.mean(diffs))}


def side_by_side(video: Path, work: Path, model: str, name: str, speech_clips: str = "grid") -> dict:
    """Sharing on and off on one video (hop 1 s), each in a child process, one after the other."""
    runs = {}
    for share in ("1", "0"):
        print(f"  {name}: sharing {'on' if share == '1' else 'off'} ...", file=sys.stderr, flush=True)
        runs["shared" if share == "1" else "unshared"] = _child(
            "sharing", str(video), str(video.with_suffix(".srt")), str(work / f"sharing_{name}_{share}"), model, share,
            speech_clips, "1.0")
    shared, unshared = runs["shared"], runs["unshared"]
    speed = shared["timing"]["video_seconds_per_second"] / unshared["timing"]["video_seconds_per_second"]
    summary = {"speed_ratio": round(speed, 3), "agreement": agreement(shared, unshared)}
    for run in runs.values():
        run.pop("answers")
    return {**runs, **summary}


def sharing(args, corpus: Path, model: Path, work: Path) -> dict:
    """Section 6 of the module docstring: shared encoder work against whole windows, and the speech clips' placement."""
    tag = f"{args.minutes:g}min"
    test = compose(corpus, work / f"test_{tag}.mp4", "test", args.minutes)
    dev = compose(corpus, work / f"dev_{tag}.mp4", "dev", args.minutes)
    parts = set(args.sharing_parts.split(","))
    out: dict = {"targets": SHARING_TARGETS, "hop": 1.0}
    if "demo" in parts:
        out["demo"] = side_by_side(test, work, str(model), "demo")
    if "placement" in parts:
        out.update(placement(dev, work, model))
    if "paper" in parts and not args.skip_paper:
        short = compose(corpus, work / f"test_paper_{args.paper_seconds:g}s.mp4", "test", args.paper_seconds / 60)
        out["paper_bf16"] = side_by_side(short, work, f"paper:{model / 'tokenizer'}", "paper")
    if "long" in parts and args.memory_minutes:
        long = compose(corpus, work / f"test_{args.memory_minutes:g}min.mp4", "test", args.memory_minutes)
        print(f"  {long.name} with sharing (memory, {args.memory_dtype}) ...", file=sys.stderr, flush=True)
        run = _child("sharing", str(long), str(long.with_suffix(".srt")), str(work / "sharing_long"), str(model), "1",
                     "grid", "1.0", args.memory_dtype)
        run.pop("answers")
        run["memory_last_over_first_minute"] = round(run["rss_last_minute_mb"] / run["rss_first_minute_mb"], 4)
        out["long"] = run
    return out


def placement(dev: Path, work: Path, model: Path) -> dict:
    """Speech clips on the grid against per-window placement, both shared, on the dev video."""
    print("  speech clips placed per window (dev) ...", file=sys.stderr, flush=True)
    grid = _child("sharing", str(dev), str(dev.with_suffix(".srt")), str(work / "placement_grid"), str(model), "1",
                  "grid", "1.0")
    window = _child("sharing", str(dev), str(dev.with_suffix(".srt")), str(work / "placement_window"), str(model), "1",
                    "window", "1.0")
    from nanoemox.timeline.segments import DEFAULT_MIN_SEGMENT, DEFAULT_SMOOTH

    truth = dev.with_suffix(".segments.csv")
    accuracy = {name: scores(work / f"placement_{name}", truth, DEFAULT_SMOOTH, DEFAULT_MIN_SEGMENT)
                for name in ("grid", "window")}
    return {"speech_placement_dev": {"grid_vs_window": agreement(grid, window),
                                   "window_accuracy_raw": {k: v["window_accuracy_raw"] for k, v in accuracy.items()},
                                   "time_accuracy": {k: v["time_accuracy"] for k, v in accuracy.items()},
                                   "grid_video_seconds_per_second": grid["timing"]["video_seconds_per_second"],
                                   "window_video_seconds_per_second": window["timing"]["video_seconds_per_second"],
                                   "speech_clips_encoded": {"grid": grid["encoders"]["encoded"]["speech"],
                                                            "window": window["encoders"]["encoded"]["speech"]}}}


def print_sharing(result: dict) -> None:
    for name in ("demo", "paper_bf16"):
        if name not in result:
            continue
        r = result[name]
        on, off = r["shared"], r["unshared"]
        print(f"{name}, hop 1 s: {on['timing']['video_seconds_per_second']:.2f} video s per s shared vs "
              f"{off['timing']['video_seconds_per_second']:.2f} unshared ({r['speed_ratio']:.2f}x); encoder s per video s "
              f"{on['encoder_seconds_per_video_second']:.3f} vs {off['encoder_seconds_per_video_second']:.3f}; windows/s "
              f"{on['windows_per_second']:.2f} vs {off['windows_per_second']:.2f}; peak memory {on['peak_rss_mb']:.0f} vs "
              f"{off['peak_rss_mb']:.0f} MB; labels equal MER {r['agreement']['mer_labels_equal']:.3f} "
              f"MSA {r['agreement']['msa_labels_equal']:.3f}, max probability difference "
              f"{r['agreement']['max_probability_difference']:.2e}")
    placement = result.get("speech_placement_dev", {}).get("grid_vs_window")
    if placement:
        accuracy = result["speech_placement_dev"]["window_accuracy_raw"]
        print(f"speech clips grid vs window (dev): MER labels equal {placement['mer_labels_equal']:.3f}, MSA "
              f"{placement['msa_labels_equal']:.3f}; probability difference max "
              f"{placement['max_probability_difference']:.4f}, mean {placement['mean_probability_difference']:.5f}; "
              f"dev window accuracy grid {accuracy['grid']:.3f}, window {accuracy['window']:.3f}")
    if "long" in result:
        long = result["long"]
        print(f"long video ({long['timing']['video_seconds']:.0f} s): resident memory first minute "
              f"{long['rss_first_minute_mb']:.0f} MB, last minute {long['rss_last_minute_mb']:.0f} MB "
              f"({long['memory_last_over_first_minute']:.3f}x); {long['timing']['video_seconds_per_second']:.1f}x real time")


def _child(*args: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    return result


def scores(folder: Path, truth_csv: Path, smooth: int, min_segment: float) -> dict:
    from nanoemox.timeline.evaluate import read_truth, segment_scores, window_accuracy
    from nanoemox.timeline.segments import segment

    meta = json.loads((folder / "timeline.json").read_text(encoding="utf-8"))
    windows, labels, duration = meta["windows"], meta["labels"], meta["duration"]
    truth = read_truth(truth_csv)
    segments = segment(windows, labels, [w["mer"]["probabilities"] if "mer" in w else None for w in windows],
                       duration, smooth, min_segment)
    return {"smooth": smooth, "min_segment": min_segment,
            "window_accuracy_raw": window_accuracy(windows, truth, labels)["accuracy"],
            "window_accuracy_smoothed": window_accuracy(windows, truth, labels, smooth)["accuracy"],
            "segments": len(segments), "true_segments": len(truth), **segment_scores(segments, truth, duration)}


def figure(folder: Path, truth_csv: Path, target: Path) -> None:
    """The timeline's figure with the true stretches drawn under its segments."""
    from nanoemox.timeline.evaluate import read_truth
    from nanoemox.timeline.plot import plot_timeline

    meta = json.loads((folder / "timeline.json").read_text(encoding="utf-8"))
    target.parent.mkdir(parents=True, exist_ok=True)
    title = f"demo model, {meta['duration'] / 60:.0f} min of SynthAffect test clips: {meta['window_count']} windows of 4 s every 2 s"
    plot_timeline(target, meta["windows"], meta["segments"], meta["labels"], meta["duration"], title,
                  truth=read_truth(truth_csv))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", default="nanoemox-demo", help="folder of `nanoemox demo --out` (model/ and synthaffect/)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--paper-seconds", type=float, default=30.0)
    p.add_argument("--extra-minutes", type=float, default=None,
                   help="also time a test video this long (memory and speed only), e.g. 30")
    p.add_argument("--skip-paper", action="store_true")
    p.add_argument("--skip-sharing", action="store_true", help="leave out the shared-encoder comparison")
    p.add_argument("--sharing-only", action="store_true", help="run only the shared-encoder comparison")
    p.add_argument("--memory-minutes", type=float, default=None,
                   help="also run a test video this long with sharing and compare its first and last minute's memory")
    p.add_argument("--memory-dtype", default="auto", help="dtype of the demo model in that run (default auto)")
    p.add_argument("--sharing-parts", default="demo,placement,paper,long",
                   help="parts of the sharing section to run (with --sharing-only, the others already in --out are kept)")
    p.add_argument("--work", default=None, help="folder for the videos and timelines (default: a temporary one)")
    p.add_argument("--out", default="benchmarks/results/timeline.json")
    p.add_argument("--figure", default="docs/timeline_demo.png",
                   help="figure of the 1-minute test timeline with the truth (the 10-minute one goes beside --out)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        child = {"timeline": child_timeline, "paper": child_paper, "sharing": child_sharing}[kind]
        print(json.dumps(child(*rest)))
        return 0
    from nanoemox.timeline.segments import DEFAULT_MIN_SEGMENT, DEFAULT_SMOOTH

    demo = Path(args.demo)
    model, corpus = demo / "model", demo / "synthaffect"
    if not (model / "config.json").is_file() or not (corpus / "test.jsonl").is_file():
        raise SystemExit(f"{demo} holds no demo model and corpus; run `nanoemox demo --out {demo}` first")
    temp = None if args.work else tempfile.TemporaryDirectory()
    work = Path(args.work or temp.name)
    work.mkdir(parents=True, exist_ok=True)
    if args.sharing_only:  # this section only; the other figures already in --out are kept
        print("shared encoder work ...", file=sys.stderr, flush=True)
        target = Path(args.out)
        results = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
        results["sharing"] = {**results.get("sharing", {}), **sharing(args, corpus, model, work)}
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print_sharing(results["sharing"])
        print(f"wrote {args.out}")
        return 0
    tag = f"{args.minutes:g}min"
    videos = {
        "dev": compose(corpus, work / f"dev_{tag}.mp4", "dev", args.minutes),
        "test": compose(corpus, work / f"test_{tag}.mp4", "test", args.minutes),
        "test_1min": compose(corpus, work / "test_1min.mp4", "test", 1.0),
    }
    if args.extra_minutes:
        videos["test_extra"] = compose(corpus, work / f"test_{args.extra_minutes:g}min.mp4", "test", args.extra_minutes)
    truth = {name: video.with_suffix(".segments.csv") for name, video in videos.items()}
    results: dict = {"minutes": args.minutes, "model": str(model), "targets": TARGETS}
    print("per-clip accuracy ...", file=sys.stderr, flush=True)
    results["per_clip"] = {split: per_clip_accuracy(model, corpus, split, videos[split].with_suffix(".clips.csv"))
                           for split in ("dev", "test")}
    runs = {}
    for name, video in videos.items():
        print(f"timeline of {video.name} ...", file=sys.stderr, flush=True)
        runs[name] = _child("timeline", str(video), str(video.with_suffix(".srt")), str(work / f"timeline_{name}"), str(model))
    results["runs"] = runs
    # Smoothing: chosen on dev, reported on test with the library's defaults.
    grid = [scores(work / "timeline_dev", truth["dev"], s, m) for s in SMOOTH_GRID for m in MIN_SEGMENT_GRID]
    best = max(grid, key=lambda g: (g["time_accuracy"] + g["boundary_f1"]) / 2)
    results["dev_grid"] = grid
    results["dev_choice"] = {"smooth": best["smooth"], "min_segment": best["min_segment"],
                             "defaults": {"smooth": DEFAULT_SMOOTH, "min_segment": DEFAULT_MIN_SEGMENT},
                             "defaults_are_dev_choice": (best["smooth"], best["min_segment"]) == (DEFAULT_SMOOTH, DEFAULT_MIN_SEGMENT)}
    test = scores(work / "timeline_test", truth["test"], DEFAULT_SMOOTH, DEFAULT_MIN_SEGMENT)
    clip_acc = results["per_clip"]["test"]["accuracy"]
    speed = runs["test"]["timing"]["video_seconds_per_second"]
    memory = runs["test"]["peak_rss_mb"] / runs["test_1min"]["peak_rss_mb"]
    results["test"] = {**test, "per_clip_accuracy": clip_acc,
                       "window_accuracy_ratio_raw": test["window_accuracy_raw"] / clip_acc,
                       "window_accuracy_ratio_smoothed": test["window_accuracy_smoothed"] / clip_acc,
                       "real_time_factor": speed, "memory_ratio_10min_over_1min": memory}
    if not args.skip_paper:
        print("paper preset (random weights, bfloat16) ...", file=sys.stderr, flush=True)
        short = compose(corpus, work / "test_paper.mp4", "test", args.paper_seconds / 60)
        tokenizer = model / "tokenizer"
        results["paper_bf16"] = _child("paper", str(short), str(tokenizer), str(work / "timeline_paper"))
    if not args.skip_sharing:
        print("shared encoder work ...", file=sys.stderr, flush=True)
        results["sharing"] = sharing(args, corpus, model, work)
    for name, target in (("test_1min", args.figure), ("test", str(Path(args.out).with_suffix(".png")))):
        if target:
            figure(work / f"timeline_{name}", truth[name], Path(target))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    t = results["test"]
    print(f"dev choice: smooth {best['smooth']}, min_segment {best['min_segment']:g} s "
          f"(defaults {DEFAULT_SMOOTH}, {DEFAULT_MIN_SEGMENT:g} s)")
    print(f"test ({args.minutes:g} min): per-clip accuracy {clip_acc:.3f}; window accuracy raw {t['window_accuracy_raw']:.3f} "
          f"({t['window_accuracy_ratio_raw']:.2f}x), smoothed {t['window_accuracy_smoothed']:.3f} "
          f"({t['window_accuracy_ratio_smoothed']:.2f}x); time accuracy {t['time_accuracy']:.3f}; boundary F1 "
          f"{t['boundary_f1']:.3f}; boundary error "
          f"mean {t['boundary_error_mean_s']:.2f} s, median {t['boundary_error_median_s']:.2f} s; "
          f"{t['segments']} segments for {t['true_segments']} true ones")
    print(f"speed {speed:.1f}x real time ({runs['test']['dtype']}); peak memory 1 min {runs['test_1min']['peak_rss_mb']:.0f} MB, "
          f"{args.minutes:g} min {runs['test']['peak_rss_mb']:.0f} MB ({memory:.2f}x)")
    if "test_extra" in runs:
        extra = runs["test_extra"]
        print(f"{args.extra_minutes:g} min: peak memory {extra['peak_rss_mb']:.0f} MB "
              f"({extra['peak_rss_mb'] / runs['test_1min']['peak_rss_mb']:.2f}x 1 min), "
              f"{extra['timing']['video_seconds_per_second']:.1f}x real time")
    if "paper_bf16" in results:
        pt = results["paper_bf16"]["timing"]
        print(f"paper preset bf16: {pt['video_seconds_per_second']:.2f}x real time over {pt['video_seconds']:.0f} s "
              f"({pt['windows']} windows in {pt['seconds']:.1f} s)")
    if "sharing" in results:
        print_sharing(results["sharing"])
    print(f"wrote {args.out}")
    if temp is not None:
        temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
