"""Benchmark: the P2E curriculum against joint training (Jo-T) at the same number of steps, over seeds.

The question of the paper, asked of the demo: does training perception first and empathy
last beat training all tasks at once? One SynthAffect corpus, one stand-in pre-training of
the tiny backbones and one feature cache are made once (`nanoemox demo`'s stages, seed 0);
then for every seed both runs start from that same pre-trained model and train with the
demo's configs (`demo_p2e_tiny.yaml`, `demo_jot_tiny.yaml`: 3,400 steps each), with the
seed deciding the new weights (adapters, fusion, LoRA), data order and dropout. Each run is
scored on dev and test with the SynthAffect benchmark.

Printed and saved: per figure and split, the mean and (sample) standard deviation over
seeds of P2E and joint, the mean of the per-seed difference P2E - joint and how many seeds
P2E won; every run's figures; a bar plot with the standard deviations as error bars.

    python benchmarks/p2e_vs_joint.py [--seeds 0 1 2] [--clips 800] [--work DIR]
        [--out benchmarks/results/p2e_vs_joint.json]

Finished runs are kept under --work (default ./p2e-vs-joint), so an interrupted
benchmark resumes where it stopped. `nanoemox demo` no longer trains joint training
itself (`nanoemox demo --joint` still does, for one seed); this benchmark is where the
comparison lives.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from nanoemox.data.manifest import load_manifest
from nanoemox.demo import pipeline
from nanoemox.demo.report import COLUMNS, LABELS, TARGETS, figures
from nanoemox.reproducible import seed_all

HEADLINE = list(TARGETS) + ["eri_token_f1", "erg_dist2"]


def _run(name: str, config: Path, seed: int, shared: dict, work: Path) -> dict:
    """Train one run (or reuse its finished result) and score it on dev and test."""
    folder = work / f"seed{seed}"
    done = folder / f"{name}.json"
    if done.is_file():
        return json.loads(done.read_text())
    opts = dataclasses.replace(shared["opts"], out=folder, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seed_all(seed)
    model = pipeline.train(config, name, shared["init"], shared["corpus"], shared["features"], opts)
    seconds = time.perf_counter() - started
    out = {"seconds": round(seconds, 1)}
    for split in ("dev", "test"):
        result = pipeline.evaluate(model, shared["features"], shared["corpus"], shared[split],
                                   folder / f"eval_{name}_{split}", opts, f"{name} seed {seed}")
        out[split] = figures(result)
    done.write_text(json.dumps(out, indent=2))
    return out


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def summarise(runs: dict[int, dict[str, dict]]) -> dict:
    """Mean and std per run kind, split and figure; paired differences P2E - joint."""
    summary: dict = {}
    for split in ("dev", "test"):
        summary[split] = {}
        for key in COLUMNS:
            p2e = [runs[s]["p2e"][split][key] for s in runs]
            joint = [runs[s]["joint"][split][key] for s in runs]
            if any(v is None for v in p2e + joint):
                continue
            diff = [a - b for a, b in zip(p2e, joint)]
            summary[split][key] = {"p2e": _stats(p2e), "joint": _stats(joint), "difference": _stats(diff),
                                   "p2e_wins": sum(d > 0 for d in diff), "ties": sum(d == 0 for d in diff)}
    return summary


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), dpi=110, sharey=True)
    for ax, split in zip(axes, ("dev", "test")):
        keys = [k for k in HEADLINE if k in summary[split]]
        for i, kind in enumerate(("p2e", "joint")):
            means = [100 * summary[split][k][kind]["mean"] for k in keys]
            stds = [100 * summary[split][k][kind]["std"] for k in keys]
            ax.bar([x + 0.4 * i for x in range(len(keys))], means, 0.4, yerr=stds, capsize=3,
                   label="P2E" if kind == "p2e" else "joint")
        ax.set_xticks([x + 0.2 for x in range(len(keys))], [LABELS[k] for k in keys], rotation=25, ha="right")
        ax.set_title(f"{split} split")
        ax.set_ylim(0, 105)
    axes[0].set_ylabel("score (%), mean ± std over seeds")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path)
    plt.close(fig)


def table(summary: dict, split: str) -> str:
    lines = [f"{split}: figure                 P2E            joint          P2E-joint   P2E wins"]
    for key, s in summary[split].items():
        if key not in HEADLINE:
            continue
        lines.append(f"  {LABELS[key]:<24} {100 * s['p2e']['mean']:5.1f} ± {100 * s['p2e']['std']:4.1f}   "
                     f"{100 * s['joint']['mean']:5.1f} ± {100 * s['joint']['std']:4.1f}   "
                     f"{100 * s['difference']['mean']:+5.1f}       {s['p2e_wins']}/{len(s['p2e']['values'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clips", type=int, default=1200, help="SynthAffect clips (default 1200, as the demo)")
    parser.add_argument("--work", default="p2e-vs-joint", help="folder for the corpus, models and runs")
    parser.add_argument("--out", default="benchmarks/results/p2e_vs_joint.json")
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("give at least two seeds: a standard deviation needs them")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from nanoemox.cli import _quiet_libraries

    _quiet_libraries()  # no weight-loading progress bars between the runs' log lines
    work = Path(args.work).expanduser().resolve()
    out = Path(args.out).expanduser().resolve()
    opts = pipeline.DemoOptions(out=work, clips=args.clips, seed=0,
                                joint_config=pipeline.packaged_config("demo_jot_tiny.yaml"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seed_all(0)
    corpus = pipeline.make_corpus(opts, None)
    records = load_manifest(corpus / "manifest.jsonl")
    init, _ = pipeline.pretrained_model(opts, pipeline.standins_folder(opts, None))
    features = pipeline.cache_features(init, corpus, records, opts, None)
    shared = {"opts": opts, "corpus": corpus, "init": init, "features": features,
              "dev": [r for r in records if r.split == "dev"], "test": [r for r in records if r.split == "test"]}
    runs = {}
    for seed in args.seeds:
        runs[seed] = {"p2e": _run("p2e", opts.p2e_config, seed, shared, work),
                      "joint": _run("joint", opts.joint_config, seed, shared, work)}
        print(f"seed {seed}: " + ", ".join(f"{kind} {LABELS['mer_accuracy']} {r['test']['mer_accuracy']:.3f}"
                                           for kind, r in runs[seed].items()), flush=True)
    summary = summarise(runs)
    result = {"summary": summary, "runs": {str(s): r for s, r in runs.items()}, "seeds": args.seeds,
              "clips": args.clips, "steps": "3,400 per run (demo configs)",
              "p2e_config": str(opts.p2e_config), "joint_config": str(opts.joint_config),
              "minutes": round((time.perf_counter() - started) / 60, 1),
              "setup": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "machine": platform.machine(), "command": " ".join(["python"] + sys.argv)}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(summary, out.with_suffix(".png"))
    print(table(summary, "dev"))
    print(table(summary, "test"))
    print(f"saved {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
