"""Benchmark: live analysis on this CPU: latency of each answer, skipped windows, memory.

A SynthAffect corpus is generated and composed into a long video (`nanoemox synth
--compose`), a service runs in a child process (so its memory is its own), and the file
client (`nanoemox.live.client.stream_file`, as `nanoemox live` runs it) streams the video
at real pace with the defaults: 4 s windows every 1 s, MER and MSA, PNG frames. Measured:

- **latency** of each answer, seen by the client: from the moment the window's end was
  sent (at the stream's pace) to the arrival of its answer; median and 95th percentile,
  and the medians of the first and last minute (a growing lag would show there);
- **skipped** windows (the service answers the newest window, skipping stale ones);
- the service's **memory**: its resident size sampled every 0.5 s; the peak, and the
  medians of the first and last minute (flat means no growth with the session's length).

**Shared encoder work** (`--replay-windows N`, 0 to skip): the same video replayed into a
`LiveSession` in a child process, with sharing on and then off (`LiveOptions.share`),
answering every window as soon as its media are in (so none is skipped and both answer
the same windows): CPU seconds of the process per answered window (`time.process_time`,
all threads), wall seconds per window, the pieces each encoder read, and whether the
answers agree; for the model and, with `--paper-replay-windows`, the paper preset.

The model is `--model` (a folder; `nanoemox demo` writes nanoemox-demo/model) or, by
default, a random model of the tiny preset, the demo model's architecture: speed and
memory do not depend on what the weights learned. `--paper-seconds` also streams the paper
preset (random weights, bfloat16) and reports the hop it sustains: the median time of one
answer, rounded up to the next quarter second.

    python benchmarks/live.py [--model DIR] [--minutes 5] [--paper-seconds 40]
                              [--replay-windows 120] [--paper-replay-windows 8]
                              [--out benchmarks/results/live.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TARGETS = {"latency_p95_s": 1.0, "skipped": 0, "memory_last_over_first_minute": 1.05,
           "cpu_per_window_shared_over_unshared": 0.6}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _predictor(model: str):
    """A model folder's predictor, or "paper:<tokenizer folder>": the random paper preset in bfloat16."""
    from nanoemox.inference import Predictor

    if model.startswith("paper:"):
        sys.path.insert(0, str(Path(__file__).parent))
        from analyze import paper_predictor  # the random paper-preset model of the analyze benchmark

        return paper_predictor(model.split(":", 1)[1])
    return Predictor.from_pretrained(model)


def replay_child(model: str, video: str, share: str, windows: str) -> dict:
    """Replay `video` into a LiveSession (sharing on: "1"), answering each window once its media are in."""
    import torch

    from nanoemox.live import LiveOptions, LiveSession
    from nanoemox.live.client import encode_frame
    from nanoemox.live.protocol import AUDIO, FRAME
    from nanoemox.media.stream import WindowReader

    torch.manual_seed(0)
    session = LiveSession(_predictor(model), LiveOptions(share=share == "1"))
    cpu, wall, answers = [], [], []
    for kind, at, data in WindowReader(video).media_events(0.1):
        payload = encode_frame(data, "png") if kind == "frame" else np.ascontiguousarray(data, "<f4").tobytes()
        session.receive(FRAME if kind == "frame" else AUDIO, at, payload)
        index = session.due()
        if index is None:
            continue
        picked, _ = session.pick(index)
        c0, w0 = time.process_time(), time.perf_counter()
        result = session.answer(picked)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        answers.append({k: result[k]["probabilities"] for k in ("mer", "msa") if k in result})
        if len(answers) >= int(windows):
            break
    warm = slice(1, None)  # the first answer also warms the model up
    return {"share": share == "1", "windows": len(answers), "skipped": session.skipped, "threads": torch.get_num_threads(),
            "cpu_seconds_per_window": round(float(np.mean(cpu[warm])), 4),
            "wall_seconds_per_window": round(float(np.mean(wall[warm])), 4),
            "wall_p95_seconds": round(float(np.percentile(wall[warm], 95)), 4),
            "encoders": session.answerer.stats(), "answers": answers}


def replay(model: str, video: Path, windows: int, label: str) -> dict:
    """`replay_child` with sharing on and off, one child process after the other; the ratio and the agreement."""
    runs = {}
    for share in ("1", "0"):
        print(f"{label}: replay with sharing {'on' if share == '1' else 'off'} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--replay", model, str(video), share, str(windows)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"replay failed:\n{done.stderr[-3000:]}")
        runs["shared" if share == "1" else "unshared"] = json.loads(done.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(Path(__file__).parent))
    from timeline import agreement  # the timeline benchmark's comparison of two runs' answers

    same = agreement(runs["shared"], runs["unshared"])
    for run in runs.values():
        run.pop("answers")
    ratio = runs["shared"]["cpu_seconds_per_window"] / runs["unshared"]["cpu_seconds_per_window"]
    return {**runs, "cpu_per_window_shared_over_unshared": round(ratio, 3), "mer_labels_equal": same["mer_labels_equal"],
            "max_probability_difference": same["max_probability_difference"]}


def serve_child(model: str, port: int) -> None:
    """The service in this (child) process: a model folder, or "paper" for the random paper preset."""
    import torch
    import uvicorn

    from nanoemox.serve import ServeSettings, create_app

    torch.set_num_threads(os.cpu_count() or 1)
    predictor = _predictor(model)
    # no idle limit: the paper preset may take longer than 15 s to answer a window
    uvicorn.run(create_app(predictor, ServeSettings(live_idle_timeout=600.0)), host="127.0.0.1", port=port,
                log_level="warning")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stream(model: str, video: Path, seconds: float | None, label: str) -> dict:
    """Serve `model` in a child process, stream `video` to it at real pace, measure (module docstring)."""
    from nanoemox.live.client import stream_file

    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", model, "--port", str(port)])
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 600
        while True:  # wait for the service (the paper preset takes a while to build)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {label} service did not start")
                time.sleep(1)
        started = time.monotonic()

        def sample() -> None:
            while not stop.is_set():
                value = rss_mb(child.pid)
                if value is not None:
                    samples.append((time.monotonic() - started, value))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        print(f"{label}: streaming {video.name} ...", file=sys.stderr, flush=True)
        run = stream_file(f"http://127.0.0.1:{port}", video, seconds=seconds, timeout=600)
    finally:
        stop.set()
        child.terminate()
        child.wait(30)
    latencies = np.array([w["client_latency"] for w in run.windows])
    ends = np.array([w["end"] for w in run.windows])
    span = ends[-1] if len(ends) else 0.0
    first = latencies[ends <= ends[0] + 60] if len(ends) else latencies
    last = latencies[ends >= span - 60] if len(ends) else latencies
    memory = np.array([m for _, m in samples])
    times = np.array([t for t, _ in samples])
    early = memory[(times >= 10) & (times <= 70)] if len(memory) else memory  # the first minute after warm-up
    late = memory[times >= times.max() - 60] if len(memory) else memory
    server = np.array([w["latency"] for w in run.windows if w.get("latency") is not None])
    return {
        "windows": len(run.windows), "skipped": run.end["skipped"] if run.end else None,
        "errors": sum("error" in w for w in run.windows), "stream_seconds": round(run.sent_seconds, 1),
        "latency_median_s": round(float(np.median(latencies)), 3), "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "latency_max_s": round(float(latencies.max()), 3),
        "latency_first_minute_median_s": round(float(np.median(first)), 3),
        "latency_last_minute_median_s": round(float(np.median(last)), 3),
        "server_latency_median_s": round(float(np.median(server)), 3) if len(server) else None,
        "memory_peak_mb": round(float(memory.max()), 1) if len(memory) else None,
        "memory_first_minute_median_mb": round(float(np.median(early)), 1) if len(early) else None,
        "memory_last_minute_median_mb": round(float(np.median(late)), 1) if len(late) else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: a random model of the tiny preset)")
    p.add_argument("--minutes", type=float, default=5.0, help="length of the stream (default 5)")
    p.add_argument("--paper-seconds", type=float, default=40.0, help="seconds streamed to the paper preset (0: skip)")
    p.add_argument("--replay-windows", type=int, default=120,
                   help="windows answered in the shared/unshared replay of the model (0: skip)")
    p.add_argument("--paper-replay-windows", type=int, default=0,
                   help="windows answered in the shared/unshared replay of the paper preset (default 0: skip)")
    p.add_argument("--out", default="benchmarks/results/live.json")
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # the child process
    p.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--replay", nargs=4, default=None, help=argparse.SUPPRESS)  # the replay child
    args = p.parse_args()
    if args.serve:
        serve_child(args.serve, args.port)
        return 0
    if args.replay:
        print(json.dumps(replay_child(*args.replay)))
        return 0

    from nanoemox.cli import main as cli
    from nanoemox.data.synth import MediaConfig, compose_long_video, generate

    results: dict = {"setup": {"cpu_cores": os.cpu_count(), "window": 4.0, "hop": 1.0, "tasks": ["mer", "msa"],
                               "frames": "png", "pace": "real time"}, "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            model = str(work / "tiny")
            assert cli(["init-model", "--preset", "tiny", "--out", model]) == 0
            results["setup"]["model"] = "tiny preset, random weights (the demo model's architecture)"
        else:
            results["setup"]["model"] = str(Path(model).resolve())
        print("composing the video ...", file=sys.stderr, flush=True)
        generate(work / "corpus", 60, 0, media=MediaConfig(), split_fractions=(0.5, 0.1, 0.4), workers=os.cpu_count())
        video = Path(compose_long_video(work / "corpus", work / "long.mp4", minutes=args.minutes, seed=0)["out"])
        if args.replay_windows > 0:
            results["replay"] = replay(model, video, args.replay_windows, "model")
        if args.paper_replay_windows > 0:
            results["paper_replay"] = replay(f"paper:{Path(model) / 'tokenizer'}", video, args.paper_replay_windows,
                                             "paper")
        results["demo"] = stream(model, video, args.minutes * 60, "tiny")
        if args.paper_seconds > 0:
            paper = stream(f"paper:{Path(model) / 'tokenizer'}", video, args.paper_seconds, "paper")
            answer = paper["server_latency_median_s"] or paper["latency_median_s"]
            paper["sustained_hop_s"] = math.ceil(answer * 4) / 4
            results["paper_bf16"] = paper
    demo = results["demo"]
    demo["memory_last_over_first_minute"] = (round(demo["memory_last_minute_median_mb"] / demo["memory_first_minute_median_mb"], 3)
                                             if demo["memory_first_minute_median_mb"] else None)
    results["met"] = {"latency_p95_s": demo["latency_p95_s"] <= TARGETS["latency_p95_s"],
                      "skipped": demo["skipped"] == TARGETS["skipped"],
                      "memory_flat": (demo["memory_last_over_first_minute"] or math.inf) <= TARGETS["memory_last_over_first_minute"]}
    if "replay" in results:
        results["met"]["cpu_per_window"] = (results["replay"]["cpu_per_window_shared_over_unshared"]
                                            <= TARGETS["cpu_per_window_shared_over_unshared"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
