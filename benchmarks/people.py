"""Benchmark: per-person answers on two-person SynthAffect clips, against one-person clips.

With the demo model (`nanoemox demo --out nanoemox-demo` made it), a two-person corpus
(`nanoemox synth --people 2`, made here with its own seed; never trained on, so all its
clips are evaluated) and the demo's one-person test clips with a single cue (face, voice
or text), every clip goes through `analyze_people` (what `nanoemox analyze --per-person`
runs) with MER and MSA, the clip's subtitle, in one process, two- and one-person clips
alternating so that both see the same machine load:

1. **People found**: clips whose track count equals the people drawn.
2. **Who speaks**: clips whose speaker track lies on the speaking person's side.
3. **Per-person MER on face-cue people** (listeners, and speakers whose emotion is in the
   face): each person is matched to the track whose mean box centre is nearest to its
   head box; a person without a track counts as wrong. Against the single-person MER of
   the same model on the one-person face-cue test clips.
4. **Speaker's MER where the cue is in the voice or the words**, against the one-person
   voice- and text-cue clips.
5. **Cost**: median wall seconds per clip (decoding, face detection, tracking, answers) of
   the two-person clips over the one-person clips.

Settings were chosen on a dev corpus (seed 11, 80 clips, against the demo's dev split:
`--seed 11 --n 80 --single 80 --single-split dev`); the reported figures are of seed 31
against the test split.

    python benchmarks/people.py [--demo nanoemox-demo] [--n 120] [--seed 31] [--single 150]
                                [--single-split test] [--out benchmarks/results/people.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", default="nanoemox-demo", help="the demo's output folder (model/ and synthaffect/)")
    parser.add_argument("--n", type=int, default=120, help="two-person clips to make and evaluate (default 120)")
    parser.add_argument("--seed", type=int, default=31, help="seed of the two-person corpus (default 31)")
    parser.add_argument("--single", type=int, default=150, help="one-person clips to evaluate (default 150)")
    parser.add_argument("--work", default=None,
                        help="where the two-person corpus goes (default runs/people-corpus-seedS, made if absent)")
    parser.add_argument("--out", default="benchmarks/results/people.json")
    parser.add_argument("--single-split", default="test", help="split of the demo's one-person clips (default test)")
    parser.add_argument("--crop-scale", type=float, default=None, help="a person's square in face-box widths "
                        "(default: the library's CROP_SCALE; other values for choosing it on dev)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import random

    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    from nanoemox.inference import Predictor
    from nanoemox.inference.people import CROP_SCALE, analyze_people

    demo = Path(args.demo)
    corpus = Path(args.work or f"runs/people-corpus-seed{args.seed}")
    if not (corpus / "manifest.jsonl").exists():
        subprocess.run([sys.executable, "-m", "nanoemox", "synth", "--people", "2", "--n", str(args.n), "--seed",
                        str(args.seed), "--out", str(corpus), "--overwrite"], check=True)
    two = _clips(corpus / "manifest.jsonl", lambda r: True)[: args.n]
    single = _clips(demo / "synthaffect" / f"{args.single_split}.jsonl",
                    lambda r: r["extra"]["cue_group"] in ("face", "voice", "text") and not r["extra"]["conflict"])
    single = single[: args.single]
    predictor = Predictor.from_pretrained(demo / "model", dtype="auto")
    tasks = ["mer", "msa"]
    options = {} if args.crop_scale is None else {"crop_scale": args.crop_scale}
    rows: dict[str, list] = {"two": [], "one": []}
    order = [("two", r, corpus) for r in two]
    order_one = [("one", r, demo / "synthaffect") for r in single]
    merged = [item for pair in zip(order, order_one) for item in pair] + order[len(order_one):] + order_one[len(order):]
    spent = _timed_stages()
    for n, (kind, record, root) in enumerate(merged):
        for stage in spent:
            spent[stage] = 0.0
        started = time.perf_counter()
        result = analyze_people(predictor, root / record["media"]["video"], tasks, subtitle=record["text"], **options)
        seconds = time.perf_counter() - started
        rows[kind].append((record, result, {"total": seconds, **spent}))
        if n % 20 == 0:
            print(f"{n}/{len(merged)} clips", file=sys.stderr, flush=True)

    figures = _figures(rows)
    figures["settings"] = {"demo": str(demo), "two_person_corpus": {"seed": args.seed, "clips": len(two)},
                           "one_person_clips": len(single), "one_person_split": args.single_split, "tasks": tasks,
                           "crop_scale": args.crop_scale or CROP_SCALE, "threads": args.threads,
                           "dtype": str(predictor.dtype), "command": " ".join(["python", *sys.argv])}
    os.makedirs(Path(args.out).parent, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "mistakes"}, indent=2))
    return 0


def _timed_stages() -> dict[str, float]:
    """Seconds spent per clip in reading the dense window and in finding people (faces, tracks, speaker):
    the rest of a clip's time is the model's (pixels, encoders, prompts)."""
    from nanoemox.inference.people import PeopleAnswerer
    from nanoemox.media.stream import WindowReader

    spent = {"read": 0.0, "find": 0.0}
    find, windows = PeopleAnswerer.find, WindowReader.windows

    def timed_find(self, dense):
        started = time.perf_counter()
        try:
            return find(self, dense)
        finally:
            spent["find"] += time.perf_counter() - started

    def timed_windows(self, first=0):
        items = windows(self, first)
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                spent["read"] += time.perf_counter() - started
            yield item

    PeopleAnswerer.find, WindowReader.windows = timed_find, timed_windows
    return spent


def _clips(manifest: Path, keep) -> list[dict]:
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [r for r in records if r["task"] == "mer" and keep(r)]


def _centre(box) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def _track_of(person: dict, tracks: list[dict]) -> dict | None:
    """The track whose mean box centre is nearest to the person's head box centre, if it lies inside the head box."""
    px, py = _centre(person["box"])
    best, dist = None, float("inf")
    for track in tracks:
        boxes = np.asarray([b[1:] for b in track["boxes"]], np.float64)
        tx, ty = _centre(boxes.mean(axis=0))
        d = float(np.hypot(tx - px, ty - py))
        if d < dist and abs(tx - px) < person["box"][2] / 2:
            best, dist = track, d
    return best


def _figures(rows: dict[str, list]) -> dict:
    exact, speaker_right, face_hits, speaker_hits = [], [], [], []
    mistakes = []
    for record, result, _ in rows["two"]:
        people = record["extra"]["people"]
        tracks = result["people"]["tracks"]
        exact.append(len(tracks) == len(people))
        speaking = people[record["extra"]["speaker"]]
        found = _track_of(speaking, tracks)
        speaker_right.append(found is not None and found["speaking"])
        for person in people:
            track = _track_of(person, tracks)
            label = (track or {}).get("answers", {}).get("mer", {}).get("label")
            hit = label == person["emotion"]
            if person["cue_group"] == "face":
                face_hits.append(hit)
            if person["speaking"] and person["cue_group"] in ("voice", "text"):
                speaker_hits.append(hit)
            if not hit:
                mistakes.append({"clip": record["extra"]["clip_id"], "side": person["side"], "truth": person["emotion"],
                                 "cue": person["cue_group"], "speaking": person["speaking"], "answer": label,
                                 "tracks": len(tracks)})
    one_face, one_cue = [], []
    for record, result, _ in rows["one"]:
        label = result.get("answers", {}).get("mer", {}).get("parsed")
        hit = label == record["target"]
        (one_face if record["extra"]["cue_group"] == "face" else one_cue).append(hit)
    two_s = [s["total"] for _, _, s in rows["two"]]
    one_s = [s["total"] for _, _, s in rows["one"]]
    two_model = [s["total"] - s["read"] - s["find"] for _, _, s in rows["two"]]
    one_model = [s["total"] - s["read"] - s["find"] for _, _, s in rows["one"]]

    def rate(xs):
        return round(float(np.mean(xs)), 4) if xs else None

    out = {
        "people_found_exact": {"rate": rate(exact), "clips": len(exact), "target": ">= 0.95"},
        "speaker_right": {"rate": rate(speaker_right), "clips": len(speaker_right), "target": ">= 0.90"},
        "mer_face_cue_people": {"two_person": rate(face_hits), "people": len(face_hits), "one_person": rate(one_face),
                                "one_person_clips": len(one_face)},
        "mer_speaker_voice_or_text_cue": {"two_person": rate(speaker_hits), "people": len(speaker_hits),
                                          "one_person": rate(one_cue), "one_person_clips": len(one_cue)},
        "seconds_per_clip": {"two_person_median": round(statistics.median(two_s), 3) if two_s else None,
                             "one_person_median": round(statistics.median(one_s), 3) if one_s else None},
        "model_seconds_per_clip": {  # without reading the frames and finding the people
            "two_person_median": round(statistics.median(two_model), 3) if two_model else None,
            "one_person_median": round(statistics.median(one_model), 3) if one_model else None},
        "frame_pixels": {"two_person": _pixels(rows["two"]), "one_person": _pixels(rows["one"])},
        "mistakes": mistakes,
    }
    for key in ("mer_face_cue_people", "mer_speaker_voice_or_text_cue"):
        a, b = out[key]["two_person"], out[key]["one_person"]
        out[key]["ratio"] = round(a / b, 4) if a is not None and b else None
        out[key]["target"] = "ratio >= 0.9"
    for key in ("seconds_per_clip", "model_seconds_per_clip"):
        s = out[key]
        if s["two_person_median"] and s["one_person_median"]:
            s["ratio"] = round(s["two_person_median"] / s["one_person_median"], 3)
        s["target"] = "ratio <= 1.6"
    return out


def _pixels(rows: list) -> list[int] | None:
    sizes = {tuple(r["people"]["frame_size"]) for _, r, _ in rows if r.get("people", {}).get("frame_size")}
    return list(sizes.pop()) if len(sizes) == 1 else None


if __name__ == "__main__":
    raise SystemExit(main())
