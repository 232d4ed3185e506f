"""The demo's report: headline figures, targets, modality ablation, P2E vs joint; JSON, markdown, plots."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

# The figures the demo must reach on the SynthAffect test split (fractions).
TARGETS = {"mer_accuracy": 0.90, "msa_waf": 0.90, "mir_accuracy": 0.90, "ovmer_fscore": 0.70,
           "erg_emotion_accuracy": 0.80}
# Report key -> column name in the SynthAffect benchmark result (nanoemox.eval.harness).
COLUMNS = {"mer_accuracy": "MER accuracy", "msa_waf": "MSA", "mir_accuracy": "MIR accuracy",
           "ovmer_fscore": "OVMER", "erg_emotion_accuracy": "ERG emotion accuracy",
           "mer_hit_rate": "MER", "mir_waf": "MIR", "erg_coarse_hit_rate": "ERG hit rate",
           "erg_dist1": "ERG Dist-1", "erg_dist2": "ERG Dist-2", "eri_token_f1": "ERI token overlap"}
LABELS = {"mer_accuracy": "MER accuracy", "msa_waf": "MSA WAF", "mir_accuracy": "MIR accuracy",
          "ovmer_fscore": "OV-MER F-score", "erg_emotion_accuracy": "ERG emotion accuracy",
          "mer_hit_rate": "MER hit rate", "mir_waf": "MIR WAF", "erg_coarse_hit_rate": "ERG coarse hit rate",
          "erg_dist1": "ERG Dist-1", "erg_dist2": "ERG Dist-2", "eri_token_f1": "ERI token F1"}


def figures(result: dict) -> dict[str, float | None]:
    """Fractions from a SynthAffect benchmark result (its columns are in percent)."""
    by_name = {c["name"]: c["value"] for c in result["columns"]}
    missing = [name for name in COLUMNS.values() if name not in by_name]
    if missing:
        raise KeyError(f"SynthAffect result lacks column(s) {missing}; it has {sorted(by_name)}")
    return {key: (None if by_name[name] is None else by_name[name] / 100.0) for key, name in COLUMNS.items()}


def _ablation_summary(ablation: dict) -> dict:
    """Accuracy on single-cue clips per masked modality, and the chance level."""
    from nanoemox.data.synth import EMOTIONS

    table = {}
    for masked, groups in ablation.items():
        table[masked] = {cue: groups[cue]["accuracy"] for cue in ("face", "voice", "text") if cue in groups}
    return {"accuracy_by_cue": table, "groups": ablation, "chance": 1.0 / len(EMOTIONS),
            "note": "MER accuracy on test clips grouped by which modality carries the emotion "
                    "(conflict clips left out); a masked modality is replaced by blank video, silence "
                    "or no subtitle"}


def _split_figures(results: dict) -> dict[str, Any]:
    """One split's headline figures of P2E, all its figures, and P2E against joint (None without joint)."""
    p2e = figures(results["p2e"])
    out: dict[str, Any] = {**{k: p2e[k] for k in TARGETS}, "all_figures": p2e, "p2e_vs_joint": None}
    if "joint" in results:
        joint = figures(results["joint"])
        out["p2e_vs_joint"] = {k: {"p2e": p2e[k], "joint": joint[k]} for k in COLUMNS}
    return out


def headline(results: dict, ablation: dict, pretraining: dict, clock, opts, corpus: Path) -> dict[str, Any]:
    report = _split_figures(results)  # the test split
    p2e = report["all_figures"]
    report["targets"] = {k: {"target": t, "value": p2e[k], "met": p2e[k] is not None and p2e[k] >= t}
                         for k, t in TARGETS.items()}
    report["per_cue_accuracy"] = {cue: v["accuracy"] for cue, v in ablation["none"].items()}
    report["modality_ablation"] = _ablation_summary(ablation)
    report["dev"] = _split_figures(results["dev"])  # where the demo's settings are chosen
    report["pretraining"] = pretraining
    report["stages_seconds"] = clock.stages
    report["minutes"] = round(clock.minutes, 2)
    report["setup"] = {"clips": opts.clips, "seed": opts.seed, "corpus": str(corpus),
                       "p2e_config": str(Path(opts.p2e_config).resolve()),
                       "joint_config": str(Path(opts.joint_config).resolve()) if opts.joint_config else None,
                       "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    return report


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(report: dict, results: dict) -> str:
    lines = ["# Nano-EmoX demo report", "",
             f"Tiny preset, SynthAffect ({report['setup']['clips']} clips, seed {report['setup']['seed']}), "
             f"P2E curriculum; {report['minutes']:.1f} minutes for this invocation (a rerun in the same folder "
             "reuses finished stages).", "",
             "## Test split, P2E model", "", "| figure | target | ours | met |", "|---|---|---|---|"]
    for key, t in report["targets"].items():
        lines.append(f"| {LABELS[key]} | {_pct(t['target'])} | {_pct(t['value'])} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "Every column of the benchmark (percent):", "", results["p2e"]["table"], ""]
    dev = report["dev"]
    lines += ["## Dev split", "", "The demo's settings (stand-in pre-training, phase lengths, learning rates) were "
              "chosen on this split; the test split above is only reported.", "",
              "| figure | P2E | joint |" if dev["p2e_vs_joint"] else "| figure | P2E |",
              "|---|---|---|" if dev["p2e_vs_joint"] else "|---|---|"]
    for key in COLUMNS:
        joint = f" {_pct(dev['p2e_vs_joint'][key]['joint'])} |" if dev["p2e_vs_joint"] else ""
        lines.append(f"| {LABELS[key]} | {_pct(dev['all_figures'][key])} |{joint}")
    lines.append("")
    lines += ["## Which modality carries the answer", "",
              "MER accuracy on test clips whose emotion lives only in one modality, with nothing masked and "
              f"with each modality masked (chance {_pct(report['modality_ablation']['chance'])}).", "",
              "| masked | face-cue clips | voice-cue clips | text-cue clips |", "|---|---|---|---|"]
    groups = report["modality_ablation"]["groups"]
    for masked, row in report["modality_ablation"]["accuracy_by_cue"].items():
        cells = [f"{_pct(row.get(c))} (n={groups[masked].get(c, {}).get('n', 0)})" for c in ("face", "voice", "text")]
        lines.append(f"| {masked} | " + " | ".join(cells) + " |")
    lines += ["", "![ablation](ablation.png)", ""]
    if report["p2e_vs_joint"]:
        lines += ["## P2E against joint training (same number of steps)", "", "| figure | P2E | joint |",
                  "|---|---|---|"]
        for key, pair in report["p2e_vs_joint"].items():
            lines.append(f"| {LABELS[key]} | {_pct(pair['p2e'])} | {_pct(pair['joint'])} |")
        lines += ["", "![p2e vs joint](p2e_vs_joint.png)", "",
                  "One seed, one corpus: the difference between the two can be within run-to-run variation. "
                  "`benchmarks/p2e_vs_joint.py` trains both over several seeds and reports mean and standard "
                  "deviation.", ""]
    lines += ["## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {sec} |" for name, sec in report["stages_seconds"].items()]
    pre = report["pretraining"]
    lines += ["", "Backbone stand-in pre-training (tiny preset only, training split): "
              + ", ".join(f"{k} {v:.3f}" for k, v in pre.items() if isinstance(v, float)) + ".", "",
              "Loss curves: `p2e/loss.png`, `joint/loss.png`. Confusion matrices: `eval_p2e/`.", ""]
    return "\n".join(lines)


def _bars(groups: dict[str, dict[str, float | None]], path: Path, title: str, ylabel: str, chance=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = list(groups)
    labels = sorted({k for g in groups.values() for k in g})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 3.8), dpi=110)
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        values = [100 * (groups[name].get(lab) or 0.0) for lab in labels]
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels, rotation=20, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, results: dict, out: Path) -> None:
    ablation = report["modality_ablation"]
    _bars({f"masked: {m}": row for m, row in ablation["accuracy_by_cue"].items()}, out / "ablation.png",
          "MER accuracy by cue modality", "accuracy (%)", chance=ablation["chance"])
    if report["p2e_vs_joint"]:
        pairs = report["p2e_vs_joint"]
        _bars({"P2E": {LABELS[k]: v["p2e"] for k, v in pairs.items()},
               "joint": {LABELS[k]: v["joint"] for k, v in pairs.items()}},
              out / "p2e_vs_joint.png", "P2E vs joint training, same steps", "score (%)")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(report, results), encoding="utf-8")
