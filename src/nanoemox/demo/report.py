"""The demo's report: headline figures on train, dev and test, targets, what shows the model did not learn,
modality ablation, P2E vs joint; JSON, markdown, plots."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Sequence

import torch

from nanoemox.data.synth import EMOTIONS
from nanoemox.demo.diagnostics import BOOTSTRAP_RESAMPLES as BOOTSTRAP

# The headline figures and what the demo must reach on the SynthAffect test split (fractions).
TARGETS = {"mer_accuracy": 0.90, "msa_waf": 0.90, "mir_accuracy": 0.85, "ovmer_fscore": 0.65,
           "erg_emotion_accuracy": 0.80}
CUES = ("face", "voice", "text")  # the single-cue groups: the emotion lives in that modality alone
# Further targets: name -> (target, where its value is in the report, whether it is a ceiling).
EXTRA_TARGETS: dict[str, tuple[float, tuple[str, ...], bool]] = {
    "erg_think_intact": (0.95, ("erg_think_intact",), False),
    "train_mer_accuracy": (0.95, ("train", "mer_accuracy"), False),
    **{f"{cue}_cue_mer_accuracy": (0.80, ("per_cue_accuracy", cue), False) for cue in CUES}}
BASELINES = ("text_only", "majority", "chance")
# How far above chance MER accuracy on a single-cue group must be before the model counts as reading that cue.
CUE_MARGIN = 0.30
# How far above chance a single-cue group may stay once its cue's modality is masked.
MASKED_MARGIN = 0.15
# Masking the modality that carries a single-cue group's emotion must take that group near chance
# (at most MASKED_MARGIN above it): the model reads the cue from that modality, not from elsewhere.
EXTRA_TARGETS.update({f"{cue}_masked_mer_accuracy": (1.0 / len(EMOTIONS) + MASKED_MARGIN,
                                                      ("modality_ablation", "accuracy_by_cue", cue, cue), True)
                      for cue in CUES})
# Report key -> column name in the SynthAffect benchmark result (nanoemox.eval.harness).
COLUMNS = {"mer_accuracy": "MER accuracy", "msa_waf": "MSA", "mir_accuracy": "MIR accuracy",
           "ovmer_fscore": "OVMER", "erg_emotion_accuracy": "ERG emotion accuracy",
           "mer_hit_rate": "MER", "mir_waf": "MIR", "erg_coarse_hit_rate": "ERG hit rate",
           "erg_dist1": "ERG Dist-1", "erg_dist2": "ERG Dist-2", "eri_token_f1": "ERI token overlap"}
LABELS = {"mer_accuracy": "MER accuracy", "msa_waf": "MSA WAF", "mir_accuracy": "MIR accuracy",
          "ovmer_fscore": "OV-MER F-score", "erg_emotion_accuracy": "ERG emotion accuracy",
          "mer_hit_rate": "MER hit rate", "mir_waf": "MIR WAF", "erg_coarse_hit_rate": "ERG coarse hit rate",
          "erg_dist1": "ERG Dist-1", "erg_dist2": "ERG Dist-2", "eri_token_f1": "ERI token F1",
          "erg_think_intact": "ERG answers with an intact `<think>` template"}


def figures(result: dict, optional: Sequence[str] = ()) -> dict[str, float | None]:
    """Fractions from a SynthAffect benchmark result (its columns are in percent); the figures named in
    `optional` (report keys) may lack a column (None: that task was not evaluated)."""
    by_name = {c["name"]: c["value"] for c in result["columns"]}
    missing = [name for key, name in COLUMNS.items() if name not in by_name and key not in optional]
    if missing:
        raise KeyError(f"SynthAffect result lacks column(s) {missing}; it has {sorted(by_name)}")
    return {key: (None if by_name.get(name) is None else by_name[name] / 100.0) for key, name in COLUMNS.items()}


def _ablation_summary(ablation: dict) -> dict:
    """Accuracy on single-cue clips per masked modality, and the chance level."""
    table = {}
    for masked, groups in ablation.items():
        table[masked] = {cue: groups[cue]["accuracy"] for cue in ("face", "voice", "text") if cue in groups}
    return {"accuracy_by_cue": table, "groups": ablation, "chance": 1.0 / len(EMOTIONS),
            "note": "MER accuracy on test clips grouped by which modality carries the emotion "
                    "(conflict clips left out); a masked modality is replaced by blank video, silence "
                    "or no subtitle"}


def _split_figures(results: dict, optional: Sequence[str] = ()) -> dict[str, Any]:
    """One split's headline figures of P2E, all its figures, and P2E against joint (None without joint)."""
    p2e = figures(results["p2e"], optional)
    out: dict[str, Any] = {**{k: p2e[k] for k in TARGETS}, "all_figures": p2e, "p2e_vs_joint": None}
    if "joint" in results:
        joint = figures(results["joint"])
        out["p2e_vs_joint"] = {k: {"p2e": p2e[k], "joint": joint[k]} for k in COLUMNS}
    return out


def _check_scored(split: str, figures_: dict, scored: dict) -> None:
    """The per-clip recomputation behind each interval must give the benchmark's own figure, or nothing is reported."""
    for key in TARGETS:
        ours, theirs = scored["p2e"][key]["value"], figures_[key]
        if theirs is None or abs(ours - theirs) > 1e-6:
            raise RuntimeError(f"{split}: {key} is {theirs} in the benchmark but {ours} when recomputed per clip "
                               "for its interval; the two scorings disagree")


def _add_scores(where: dict, split: str, scored: dict, cues: dict) -> None:
    """A split's intervals, baselines, intact-template share and MER accuracy per cue group, into `where`."""
    _check_scored(split, where["all_figures"], scored)
    where["erg_think_intact"] = scored["p2e"]["erg_think_intact"]["value"]
    where["intervals"] = {k: [v["low"], v["high"]] for k, v in scored["p2e"].items()}
    where["baselines"] = {name: {k: v["value"] for k, v in figures_.items()}
                          for name, figures_ in scored.items() if name != "p2e"}
    where["baseline_intervals"] = {name: {k: [v["low"], v["high"]] for k, v in figures_.items()}
                                   for name, figures_ in scored.items() if name != "p2e"}
    where["per_cue_accuracy"] = {cue: v["accuracy"] for cue, v in cues.items()}


def _target_entry(target: float, value: float | None, at_most: bool) -> dict:
    met = value is not None and (value <= target if at_most else value >= target)
    return {"target": target, "value": value, **({"at_most": True} if at_most else {}), "met": met}


def _lookup(report: dict, path: Sequence[str]) -> float | None:
    for key in path:
        report = report.get(key) if isinstance(report, dict) else None
    return report


def learning_problems(report: dict) -> list[str]:
    """What shows the model did not learn (empty: nothing does), read from a report's test split.

    Each headline figure's 95% interval must lie wholly above the best of its baselines
    (text only, majority, chance), and MER accuracy on each single-cue group (face, voice,
    text) must be at least CUE_MARGIN above chance.
    """
    problems = []
    baselines, intervals = report.get("baselines") or {}, report.get("intervals") or {}
    for key in TARGETS:
        low = (intervals.get(key) or [None])[0]
        values = {name: (baselines.get(name) or {}).get(key) for name in BASELINES}
        lacks = ["a 95% interval"] * (low is None) + [f"the {n} baseline" for n, v in values.items() if v is None]
        if lacks:
            problems.append(f"{LABELS[key]}: the report lacks {' and '.join(lacks)}")
            continue
        best = max(values, key=values.get)
        if not low > values[best]:
            problems.append(f"{LABELS[key]}: the 95% interval starts at {_pct(low)}, not above the {best} "
                            f"baseline's {_pct(values[best])}")
    chance = 1.0 / len(EMOTIONS)
    for cue in CUES:
        accuracy = (report.get("per_cue_accuracy") or {}).get(cue)
        if accuracy is None:
            problems.append(f"MER accuracy on {cue}-cue clips: the report has none (no such test clips?)")
        elif accuracy < chance + CUE_MARGIN:
            problems.append(f"MER accuracy on {cue}-cue clips is {_pct(accuracy)}, less than "
                            f"{_pct(CUE_MARGIN)} points above chance ({_pct(chance)})")
    return problems


def headline(results: dict, ablation: dict, standins: dict, clock, opts, corpus: Path, checks: dict,
             scored: dict) -> dict[str, Any]:
    """report.json: test figures at the top (targets, intervals, baselines), the same under "dev" and
    "train", what shows the model did not learn, diagnostics."""
    report = _split_figures(results)  # the test split
    report["dev"] = _split_figures(results["dev"])  # where the demo's settings are chosen
    report["train"] = _split_figures(results["train"], optional=("eri_token_f1",))  # ERI not evaluated there
    for split, where in (("test", report), ("dev", report["dev"]), ("train", report["train"])):
        _add_scores(where, split, scored[split], ablation[split]["none"])
    report["modality_ablation"] = _ablation_summary(ablation["test"])
    report["dev"]["modality_ablation"] = _ablation_summary(ablation["dev"])
    goals = {**{k: (t, (k,), False) for k, t in TARGETS.items()}, **EXTRA_TARGETS}
    report["targets"] = {k: _target_entry(t, _lookup(report, path), at_most)
                         for k, (t, path, at_most) in goals.items()}
    report["learning_problems"] = learning_problems(report)
    report["diagnostics"] = {**checks, "notes": {
        "probes": "logistic regression on one vector per clip (encoder features averaged over frames or windows, "
                  "branch tokens averaged), fitted on the training clips",
        "labels": "branches are probed on what their modality shows, the fused token and all tokens on the "
                  "clip's emotion",
        "stand_in_heads_dev": "the encoder stand-ins' own heads on dev clips, on the frames and audio window "
                              "they were trained on",
        "baselines": "chance: a uniformly random answer per clip (seeded); majority: the training split's "
                     "commonest answer; text_only: the same model with video and audio masked",
        "intervals": f"95% percentile bootstrap over clips ({BOOTSTRAP} resamples)",
        "training_records": f"at most {opts.train_eval_per_task} training records per headline task (a seeded "
                            "draw; ERI left out); baselines chance and majority only",
        "erg_think_intact": "an ERG answer starting with <think>, one </think>, four numbered steps on lines "
                            "of their own between them, and a non-empty reply after it",
        "learning_problems": "on test: a headline figure whose 95% interval does not lie above its best "
                             f"baseline, a single-cue MER group less than {CUE_MARGIN:.2f} above chance"}}
    report["standins"] = standins  # what the stand-in backbones read and reached (their manifest)
    report["stages_seconds"] = clock.stages
    report["minutes"] = round(clock.minutes, 2)
    report["setup"] = {"clips": opts.clips, "split_fractions": list(opts.split_fractions), "seed": opts.seed,
                       "train_eval_per_task": opts.train_eval_per_task,
                       "corpus": str(corpus),
                       "p2e_config": str(Path(opts.p2e_config).resolve()),
                       "joint_config": str(Path(opts.joint_config).resolve()) if opts.joint_config else None,
                       "torch": torch.__version__, "threads": opts.threads,
                       "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                       "machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    return report


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _interval(pair) -> str:
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def _target(targets: dict | None, key: str) -> str:
    if not targets:
        return "–"
    bound = "at most " if targets[key].get("at_most") else ""
    return f"{bound}{_pct(targets[key]['target'])}{' (met)' if targets[key]['met'] else ''}"


def _figure_rows(where: dict, targets: dict | None) -> list[str]:
    """The headline figures and the intact-template share of one split: value, interval, baselines."""
    head = "| figure | target | P2E | 95% interval | text only | majority | chance |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for key in (*TARGETS, "erg_think_intact"):
        base = [_pct(where["baselines"].get(name, {}).get(key)) for name in BASELINES]
        rows.append(f"| {LABELS[key]} | {_target(targets, key)} | {_pct(where[key])} "
                    f"| {_interval(where['intervals'][key])} | " + " | ".join(base) + " |")
    return rows


def _fit_rows(report: dict) -> list[str]:
    """Train against dev against test: each figure with its interval, then MER accuracy per single-cue group."""
    splits = (report["train"], report["dev"], report)
    rows = ["| figure | target | train | dev | test |", "|---|---|---|---|---|"]
    for key in (*TARGETS, "erg_think_intact"):
        cells = [f"{_pct(s[key])} {_interval(s['intervals'][key])}" for s in splits]
        rows.append(f"| {LABELS[key]} | {_target(report['targets'], key)} | " + " | ".join(cells) + " |")
    for cue in CUES:
        cells = [_pct(s["per_cue_accuracy"].get(cue)) for s in splits]
        target = _target(report["targets"], f"{cue}_cue_mer_accuracy")
        rows.append(f"| MER accuracy, {cue}-cue clips | {target} | " + " | ".join(cells) + " |")
    return rows


def _diagnostic_rows(diag: dict) -> list[str]:
    rows = ["| stage | probed on | dev | test | dev, clips it carries | test, clips it carries |",
            "|---|---|---|---|---|---|"]
    for stage, row in diag["probes"].items():
        own = [k for k in row if k.startswith("dev_") and k.endswith("_cue_clips")]
        if len(own) == 1:
            cue = [_pct(row[own[0]]), _pct(row["test" + own[0][3:]])]
        else:
            cue = [" / ".join(_pct(row[f"{split}_{c}_cue_clips"]) for c in ("face", "voice", "text"))
                   + " (face / voice / text)" for split in ("dev", "test")]
        rows.append(f"| {stage} | {row['label']} | {_pct(row['dev'])} | {_pct(row['test'])} | {cue[0]} | {cue[1]} |")
    return rows


def markdown(report: dict, results: dict) -> str:
    setup = report["setup"]
    lines = ["# Nano-EmoX demo report", "",
             f"Tiny preset, SynthAffect ({setup['clips']} clips, seed {setup['seed']}), P2E curriculum, "
             f"{setup['threads']} threads; {report['minutes']:.1f} minutes for this invocation (a rerun in the "
             "same folder reuses finished stages). Every generator is seeded and the thread count pinned: a "
             "second run on the same machine writes the same figures and weights.", "",
             "## Test split", "",
             "Baselines: *text only* is the same model with video and audio masked; *majority* answers the "
             "training split's commonest answer for every clip; *chance* a uniformly random one (seeded). "
             "Intervals: 95% bootstrap over clips.", ""]
    lines += _figure_rows(report, report["targets"])
    lines += ["", "Every column of the benchmark (percent):", "", results["p2e"]["table"], ""]
    train_mer = report["targets"]["train_mer_accuracy"]
    lines += ["## Fit against generalisation", "",
              "The same figures on training records (a seeded draw of at most "
              f"{setup['train_eval_per_task']} per task), on dev and on test, with 95% intervals. MER accuracy "
              f"on the training records: target {_pct(train_mer['target'])}"
              f"{', met' if train_mer['met'] else ', not met'}.", ""]
    lines += _fit_rows(report)
    problems = report["learning_problems"]
    lines += ["", "What shows the model did not learn (on test: a headline figure whose interval does not lie "
              "above its best baseline, a single-cue MER group less than "
              f"{_pct(CUE_MARGIN)} points above chance): " + ("none." if not problems else ""), ""]
    lines += [f"- {problem}" for problem in problems] + ([""] if problems else [])
    dev = report["dev"]
    lines += ["## Dev split", "", "The demo's settings (stand-in pre-training, phase lengths, learning rates, "
              "sampling) were chosen on this split; the test split above is only reported.", ""]
    lines += _figure_rows(dev, None)
    if dev["p2e_vs_joint"]:
        lines += ["", "| figure | P2E | joint |", "|---|---|---|"]
        lines += [f"| {LABELS[k]} | {_pct(v['p2e'])} | {_pct(v['joint'])} |" for k, v in dev["p2e_vs_joint"].items()]
    lines += ["", "## Training split", "", "Only the chance and majority baselines are scored here.", ""]
    lines += _figure_rows(report["train"], None)
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
    diag = report["diagnostics"]
    heads = ", ".join(f"{k} {_pct(v)}" for k, v in diag["stand_in_heads_dev"].items()) or "none kept"
    lines += ["## Where the signal is", "",
              "Linear probes (logistic regression fitted on the training clips) of each stage. Encoder stages are "
              "the frozen stand-ins' cached features; token stages are the trained model's branch outputs. A branch "
              "is probed on what its modality shows, the fused token and all tokens on the clip's emotion; the last "
              "two columns keep the clips whose emotion that modality carries (for the fused token: face-, voice- "
              "and text-cue clips).", ""]
    lines += _diagnostic_rows(diag)
    lines += ["", f"The encoder stand-ins' own heads on dev (what the modality shows): {heads}.", ""]
    if report["p2e_vs_joint"]:
        lines += ["## P2E against joint training (same number of steps)", "", "| figure | P2E | joint |",
                  "|---|---|---|"]
        for key, pair in report["p2e_vs_joint"].items():
            lines.append(f"| {LABELS[key]} | {_pct(pair['p2e'])} | {_pct(pair['joint'])} |")
        lines += ["", "![p2e vs joint](p2e_vs_joint.png)", "",
                  "One seed, one corpus: `benchmarks/p2e_vs_joint.py` trains both over several seeds and reports "
                  "mean and standard deviation.", ""]
    lines += ["## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {sec} |" for name, sec in report["stages_seconds"].items()]
    lines += ["", *_standin_lines(report["standins"]), "",
              "Loss curves: `p2e/loss.png`. Confusion matrices: `eval_p2e/`.", ""]
    return "\n".join(lines)


def _standin_lines(standins: dict) -> list[str]:
    """What the stand-in backbones read and reached (from their manifest; built once, not in this run)."""
    checks = standins["checks"]
    oracle = ", ".join(f"{mode} {r['accuracy']:.3f}" for mode, r in checks["oracle_reading"].items())
    heads = ", ".join(f"{k} {v:.3f}" for k, v in checks["encoder_heads_held_out"].items() if k != "clips")
    minutes = sum(standins["build_seconds"].values()) / 60
    return ["## Stand-in backbones", "",
            f"Loaded from `{standins['folder']}` (built by `{standins['command']}` at commit "
            f"{standins['commit'] or 'unknown'}, {minutes:.0f} min on the build machine; not part of this run's time).",
            "", f"- language: {standins['language']['read']}; {standins['language']['steps']} steps, final loss "
            f"{standins['language']['language_loss']:.3f}; held-out generic instructions answered exactly: "
            f"{checks['generic_instructions']['accuracy']:.3f}; oracle reading of a soft prompt (MER, "
            f"{checks['oracle_reading']['placeholders']['steps']} steps): {oracle}",
            f"- encoders: {standins['encoders']['read']}; their heads on held-out clips of that corpus: {heads}"]


def _bars(groups: dict[str, dict[str, float | None]], path: Path, title: str, ylabel: str, chance=None) -> None:
    import matplotlib  # lazy: pyplot costs start-up time and only the plots need it

    matplotlib.use("Agg")  # files only; must be chosen before pyplot is imported
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
