"""Benchmark: do bfloat16 answers agree with float32 ones? (the demo model, SynthAffect test split)

Runs the same records through the same model folder twice on the CPU, in float32 and
in bfloat16 (what `--dtype auto` picks on a CPU with native bfloat16), and compares:

- closed-set tasks (MSA, MER, MIR, `--decode score`): how often the chosen label agrees,
  and the largest and mean absolute difference of the candidate probabilities;
- generated answers (OV-MER, ERI, ERG, greedy): how often the text is identical;
- the time of each run.

    python benchmarks/bf16_agreement.py [--model nanoemox-demo/model] [--data nanoemox-demo/synthaffect]
                                        [--limit 240] [--out benchmarks/results/bf16_agreement.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nanoemox.data.manifest import load_manifest
from nanoemox.inference import Predictor


def _run(model: Path, records, root: Path, dtype: str, decode: str):
    predictor = Predictor.from_pretrained(model, device="cpu", dtype=dtype, batch_size=12)
    start = time.perf_counter()
    out = {p.record.id: p for p in predictor.predict_records(records, root, decode=decode)}
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nanoemox-demo/model")
    p.add_argument("--data", default="nanoemox-demo/synthaffect")
    p.add_argument("--limit", type=int, default=240, help="first N test records (all six tasks of N/6 clips)")
    p.add_argument("--out", default="benchmarks/results/bf16_agreement.json")
    args = p.parse_args(argv)
    data = Path(args.data)
    records = load_manifest(data / "test.jsonl")[: args.limit]
    closed = [r for r in records if r.task in ("msa", "mer", "mir")]
    open_ = [r for r in records if r.task not in ("msa", "mer", "mir")]
    result = {"model": str(Path(args.model).resolve()), "records": len(records)}
    scored = {d: _run(Path(args.model), closed, data, d, "score") for d in ("float32", "bfloat16")}
    generated = {d: _run(Path(args.model), open_, data, d, "generate") for d in ("float32", "bfloat16")}
    (a, ta), (b, tb) = scored["float32"], scored["bfloat16"]
    diffs = [abs(a[i].scores[k] - b[i].scores[k]) for i in a for k in a[i].scores]
    result["closed_set"] = {
        "n": len(a), "label_agreement": sum(a[i].text == b[i].text for i in a) / len(a),
        "max_abs_probability_difference": max(diffs), "mean_abs_probability_difference": sum(diffs) / len(diffs),
        "seconds": {"float32": ta, "bfloat16": tb},
    }
    (a, ta), (b, tb) = generated["float32"], generated["bfloat16"]
    by_task = {}
    for task in sorted({r.task for r in open_}):
        ids = [r.id for r in open_ if r.task == task]
        by_task[task] = sum(a[i].text == b[i].text for i in ids) / len(ids)
    result["generated"] = {"n": len(a), "identical_text": sum(a[i].text == b[i].text for i in a) / len(a),
                           "identical_text_by_task": by_task, "seconds": {"float32": ta, "bfloat16": tb}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    c, g = result["closed_set"], result["generated"]
    print(f"closed-set ({c['n']} records): labels agree {c['label_agreement']:.1%}, probabilities differ by at most "
          f"{c['max_abs_probability_difference']:.3f} (mean {c['mean_abs_probability_difference']:.4f}); "
          f"{c['seconds']['float32']:.1f} s fp32, {c['seconds']['bfloat16']:.1f} s bf16")
    print(f"generated ({g['n']} records): identical text {g['identical_text']:.1%} ({g['identical_text_by_task']}); "
          f"{g['seconds']['float32']:.1f} s fp32, {g['seconds']['bfloat16']:.1f} s bf16")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
