"""Benchmark: decode + preprocess time per clip for 5 s, 60 s and 600 s videos.

Clips are generated locally (320x240, 25 fps, a keyframe every 2 s, moving noise so
every frame costs real decoding work, 44.1 kHz stereo AAC) into a temporary folder.
Each is run through `load_media` several times and the median wall time reported
(clips are timed in turn, round-robin, so machine load hits every length alike),
with the video and audio parts timed apart and, for comparison, a full
(non-windowed) decode of the audio. Seeking keeps the
cost nearly flat in clip length; the 600 s clip must cost less than 3x the 5 s one.

    python benchmarks/media.py [--repeats 5] [--out benchmarks/results/media.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

from nanoemox.media import MediaConfig, load_media, synth
from nanoemox.media.audio import read_audio_clips
from nanoemox.media.video import read_frames

LENGTHS = (5, 60, 600)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_clips(paths: dict[int, Path], repeats: int) -> dict[int, dict]:
    """Time every clip in round-robin order, so a busy machine slows all lengths alike."""
    config = MediaConfig()
    parts = {
        "load_media_s": lambda p: load_media(p, config=config),
        "video_frames_s": lambda p: read_frames(p, config.num_frames),
        "audio_clips_s": lambda p: read_audio_clips(p),
        "audio_full_decode_s": lambda p: read_audio_clips(p, windowed=False),
    }
    times = {s: {k: [] for k in parts} for s in paths}
    for _ in range(repeats):
        for seconds, path in paths.items():
            for key, fn in parts.items():
                times[seconds][key].append(_timed(lambda: fn(path)))
    rows = {}
    for seconds, path in paths.items():
        sampled = read_frames(path, config.num_frames)
        rows[seconds] = {
            "file_mb": round(path.stat().st_size / 1e6, 2),
            **{k: statistics.median(v) for k, v in times[seconds].items()},
            "load_media_min_s": min(times[seconds]["load_media_s"]),
            "seeks": sampled.seeks,
            "frames_decoded": sampled.decoded,
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "media.json"))
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths, generated = {}, {}
        for seconds in LENGTHS:
            paths[seconds] = Path(tmp) / f"clip_{seconds}s.mp4"
            start = time.perf_counter()
            synth.write_video(paths[seconds], seconds, fps=25, size=(320, 240), gop=50, audio_rate=44100, audio_channels=2, texture=True)
            generated[seconds] = round(time.perf_counter() - start, 2)
        for seconds, row in bench_clips(paths, args.repeats).items():
            results[f"{seconds}s"] = {"seconds": seconds, "generate_s": generated[seconds], **row}
            print(
                f"{seconds:>4d} s clip: load_media {row['load_media_s'] * 1000:7.1f} ms median, {row['load_media_min_s'] * 1000:7.1f} ms min "
                f"(video {row['video_frames_s'] * 1000:6.1f} ms, {row['seeks']} seeks, {row['frames_decoded']} frames decoded; "
                f"audio {row['audio_clips_s'] * 1000:6.1f} ms as used vs {row['audio_full_decode_s'] * 1000:7.1f} ms full decode)"
            )
    ratio = results["600s"]["load_media_s"] / results["5s"]["load_media_s"]
    report = {
        "machine": {"python": platform.python_version(), "pyav": av.__version__, "cpus": os.cpu_count(), "platform": platform.platform()},
        "clip": "320x240, 25 fps, textured frames, H.264 keyframe every 2 s, AAC 44.1 kHz stereo",
        "repeats": args.repeats,
        "results": results,
        "ratio_600s_to_5s": ratio,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"600 s / 5 s cost ratio: {ratio:.2f} (must be < 3); written to {args.out}")
    return 0 if ratio < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
