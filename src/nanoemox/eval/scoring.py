"""Score raw model generations against reference manifests, benchmark by benchmark.

Predictions are JSONL, one line per sample: {"id": ..., "prediction": "<raw text>"}
(an optional "task" is checked when present). `score_predictions` parses each
generation for its task, applies the benchmark's metric per dataset, and returns a
result whose columns carry our number beside the paper's published Nano-EmoX number.
Missing predictions count as wrong and are reported. `markdown_table` lays a result
out like the paper's tables (percentages with two decimals; EMER on its 1-10 scale).

Benchmarks: mer-unibench (9 sets), emer, mintrec, mintrec2, avamerg, synthaffect.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from nanoemox.data.manifest import Record, iter_jsonl
from nanoemox.eval import BENCHMARKS
from nanoemox.eval.extract import EmotionExtractor
from nanoemox.eval.sentiment import sentiment_classifier
from nanoemox.metrics import erg_scores, hit_rate, intent_scores, ov_fscore, sentiment_waf
from nanoemox.tasks import REPLY_TASK, TASK_NAMES, get_task, tasks_of_level, tasks_scored_by

log = logging.getLogger(__name__)

# Published Nano-EmoX (2.2B) results, in the paper's units (percent; EMER 1-10).
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "mer-unibench": {
        "MER2023": 79.09, "MER2024": 77.94, "MELD": 56.55, "IEMOCAP": 60.12,
        "MOSI": 76.82, "MOSEI": 79.81, "SIMS": 86.25, "SIMSv2": 84.76,
        "OV-MERD+": 64.75, "Average": 74.01,
    },
    "emer": {"Clue Overlap": 7.83, "Label Overlap": 5.78},
    "avamerg": {"Hit rate": 91.13},
    "mintrec": {"WAF": 58.17},
    "mintrec2": {"WAF": 47.27},
}


@dataclass(frozen=True)
class DatasetSpec:
    """One MER-UniBench column: its name, the metric kind and accepted dataset names."""

    column: str
    kind: str  # "hit" | "waf" | "ovf"
    aliases: tuple[str, ...]


MER_UNIBENCH = (
    DatasetSpec("MER2023", "hit", ("mer2023",)),
    DatasetSpec("MER2024", "hit", ("mer2024",)),
    DatasetSpec("MELD", "hit", ("meld",)),
    DatasetSpec("IEMOCAP", "hit", ("iemocap", "iemocapfour", "iemocap4")),
    DatasetSpec("MOSI", "waf", ("mosi", "cmumosi")),
    DatasetSpec("MOSEI", "waf", ("mosei", "cmumosei")),
    DatasetSpec("SIMS", "waf", ("sims", "chsims")),
    DatasetSpec("SIMSv2", "waf", ("simsv2", "chsimsv2")),
    DatasetSpec("OV-MERD+", "ovf", ("ovmerd", "ovmerdplus", "ovmerd+", "mer2025ov")),
)


class PredictionsError(ValueError):
    """A predictions file could not be read."""


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9+]", "", name.lower())


def load_predictions(path: str | os.PathLike) -> dict[str, str]:
    """Read a predictions JSONL into {id: raw text}; every bad line is reported at once.

    Lines of failed samples (an "error" field or a null prediction) are left out, so
    scoring counts them as missing, exactly as `nanoemox eval` does.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"predictions file not found: {path}")
    out: dict[str, str] = {}
    problems: list[str] = []
    for lineno, obj, problem in iter_jsonl(path):
        problem = problem or check_prediction(obj, out)
        if problem:
            problems.append(f"line {lineno}: {problem}")
            continue
        if obj.get("error") or obj["prediction"] is None:
            continue  # a sample that failed is missing (counted wrong), not an empty answer
        out[str(obj["id"])] = obj["prediction"]
    if problems:
        shown = "\n  ".join(problems[:20])
        raise PredictionsError(
            f"{path}: {len(problems)} bad line(s); each line must be "
            f'{{"id": ..., "prediction": "<text>"}}\n  {shown}'
        )
    return out


def check_prediction(obj: Any, seen: dict[str, str]) -> str | None:
    """The problem of one decoded predictions line, or None."""
    if not isinstance(obj, dict) or "id" not in obj or "prediction" not in obj:
        return 'needs the fields "id" and "prediction"'
    if obj["prediction"] is not None and not isinstance(obj["prediction"], str):
        return '"prediction" must be a string'
    if "task" in obj and obj["task"] not in TASK_NAMES:
        return f'"task" must be one of {TASK_NAMES}, got {obj["task"]!r}'
    if str(obj["id"]) in seen:
        return f"duplicate id {obj['id']!r}"
    return None


# ---------------------------------------------------------------- parsing generations

def _intent(text: str | None, record: Record) -> str | None:
    """The label an intent answer names (the record's task's parser, with its candidates)."""
    return get_task(record.task).parse(text, candidates=record.candidates) if text is not None else None


def parse_erg(text: str | None, task: str = REPLY_TASK) -> tuple[str | None, str | None]:
    """(speaker emotion, reply) of an ERG generation (`task`'s parser); (None, None) when missing."""
    if text is None:
        return None, None
    parsed = get_task(task).parse(text)
    return parsed.get("emotion"), parsed.get("reply")


def erg_reference(record: Record) -> str:
    """The reference speaker emotion of an ERG record (its target's `speaker_emotion`, or the target itself)."""
    return str(record.target.get("speaker_emotion") if isinstance(record.target, dict) else record.target)


def msa_reference(target: Any) -> float:
    if isinstance(target, str):
        return {"positive": 1.0, "negative": -1.0}.get(target.strip().lower(), 0.0)
    return float(target)


# ---------------------------------------------------------------- one column per metric
def _column(name: str, metric: str, value: float | None, n: int, missing: int, details: dict,
            paper: float | None = None, scale: str = "percent") -> dict:
    return {"name": name, "metric": metric, "value": value, "paper": paper, "n": n,
            "missing": missing, "scale": scale, "details": details}


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _words(extractor, texts: Sequence[str | None]) -> list[list[str]]:
    present = [i for i, t in enumerate(texts) if t is not None]
    found = extractor.extract_many([texts[i] for i in present]) if present else []
    out: list[list[str]] = [[] for _ in texts]
    for i, words in zip(present, found):
        out[i] = words
    return out


def score_hit(name, records, texts, ctx) -> list[dict]:
    words = _words(ctx["extractor"], texts)
    res = hit_rate(words, [str(r.target) for r in records])
    return [_column(name, "hit rate", _pct(res["score"]), len(records), _n_missing(texts), res)]


def score_ovf(name, records, texts, ctx) -> list[dict]:
    words = _words(ctx["extractor"], texts)
    res = ov_fscore(words, [list(r.target) for r in records])
    return [_column(name, "F-score", _pct(res["fscore"]), len(records), _n_missing(texts), res)]


def score_waf(name, records, texts, ctx) -> list[dict]:
    """MSA WAF: each answer -> sentiment directly, or through its emotion words (`eval.sentiment`)."""
    refs = [msa_reference(r.target) for r in records]
    classifier = ctx["sentiment"]
    present = [i for i, t in enumerate(texts) if t is not None]
    found = dict(zip(present, classifier.classify_many([texts[i] for i in present])))
    # A missing prediction is given the wrong sign so that it always counts as an error.
    preds = [found[i][0] if i in found else ("negative" if ref > 0 else "positive") for i, ref in enumerate(refs)]
    res = sentiment_waf(preds, refs)
    res["routes"] = dict(Counter(route for _, route in found.values()))
    res["note"] = ("answers naming a sentiment are taken as they are; other answers are scored through "
                   f"their emotion words: {classifier.description}")
    return [_column(name, "WAF", _pct(res["waf"]), len(records), _n_missing(texts), res)]


def score_intent(name, records, texts, ctx) -> list[dict]:
    preds = [_intent(t, r) for t, r in zip(texts, records)]
    res = intent_scores(preds, [str(r.target) for r in records])
    return [_column(name, "WAF", _pct(res["weighted_f1"]), len(records), _n_missing(texts), res)]


def score_erg(name, records, texts, ctx) -> list[dict]:
    parsed = [parse_erg(t, r.task) for t, r in zip(texts, records)]
    refs = [erg_reference(r) for r in records]
    # A missing reply becomes "", which has no n-grams and so is left out of Dist-n.
    res = erg_scores([reply or "" for _, reply in parsed], [e for e, _ in parsed], refs,
                     coarse_map=ctx.get("coarse_map"))
    n, missing = len(records), _n_missing(texts)
    return [
        _column(f"{name} emotion accuracy", "accuracy", _pct(res["emotion_accuracy"]), n, missing, res),
        _column(f"{name} hit rate", "coarse hit rate", _pct(res["coarse_hit_rate"]), n, missing, res),
        _column(f"{name} Dist-1", "Dist-1", _pct(res["dist1"]), n, missing, res),
        _column(f"{name} Dist-2", "Dist-2", _pct(res["dist2"]), n, missing, res),
    ]


def score_emer(name, records, texts, ctx) -> list[dict]:
    judge = ctx.get("judge")
    if judge is None:
        raise ValueError("EMER scoring needs an LLM judge: pass --llm-url and --llm-model")
    present = [i for i, t in enumerate(texts) if t is not None]
    res = judge.score([texts[i] for i in present], [str(records[i].target) for i in present])
    missing = _n_missing(texts)
    columns = []
    for key, title in (("clue_overlap", "Clue Overlap"), ("label_overlap", "Label Overlap")):
        scores = [s["clue" if key == "clue_overlap" else "label"] for s in res["samples"]]
        # A missing prediction gets the lowest score, 1; judge failures are left out.
        kept = [s for s in scores if s is not None] + [1.0] * missing
        value = sum(kept) / len(kept) if kept else None
        columns.append(_column(title, "judge 1-10", value, len(records), missing,
                               {k: v for k, v in res.items() if k != "samples"}, scale="1-10"))
    return columns


_SCORERS: dict[str, Callable[..., list[dict]]] = {
    "hit": score_hit, "waf": score_waf, "ovf": score_ovf,
    "intent": score_intent, "reply": score_erg, "emer": score_emer,
}


def _n_missing(texts: Sequence[str | None]) -> int:
    return sum(t is None for t in texts)


# ---------------------------------------------------------------- benchmark layouts
def _mer_unibench_groups(records: Sequence[Record]) -> "OrderedDict[tuple[str, str], list[Record]]":
    """Records grouped by (column, metric kind) in the paper's column order."""
    by_alias = {alias: spec for spec in MER_UNIBENCH for alias in spec.aliases}
    groups: OrderedDict[tuple[str, str], list[Record]] = OrderedDict(
        ((spec.column, spec.kind), []) for spec in MER_UNIBENCH
    )
    for record in records:
        spec = by_alias.get(_squash(record.dataset))
        if spec is not None:
            groups[(spec.column, spec.kind)].append(record)
        elif record.task in tasks_of_level("perception"):
            # A set outside the nine still gets the metric its (perception) task names.
            groups.setdefault((record.dataset, get_task(record.task).metric), []).append(record)
    return OrderedDict((k, v) for k, v in groups.items() if v)


def _task_groups(records: Sequence[Record], tasks: Sequence[str], label: str | None = None):
    """Records grouped by task (one column group per task present)."""
    groups: OrderedDict[tuple[str, str], list[Record]] = OrderedDict()
    for task in tasks:
        chosen = [r for r in records if r.task == task]
        if chosen:
            groups[(label or task.upper(), get_task(task).metric)] = chosen
    return groups


_LAYOUT = {
    "mer-unibench": lambda recs: _mer_unibench_groups(recs),
    # Each of these benchmarks scores the tasks its metric applies to (EMER: ERI; MIntRec: MIR; AvaMERG: ERG).
    "emer": lambda recs: _task_groups(recs, tasks_scored_by("emer"), "EMER"),
    "mintrec": lambda recs: _task_groups(recs, tasks_scored_by("intent"), "MIntRec"),
    "mintrec2": lambda recs: _task_groups(recs, tasks_scored_by("intent"), "MIntRec2.0"),
    "avamerg": lambda recs: _task_groups(recs, tasks_scored_by("reply"), "AvaMERG"),
    "synthaffect": lambda recs: _task_groups(recs, TASK_NAMES),
}


def _paper_value(benchmark: str, column: dict) -> float | None:
    table = PAPER_RESULTS.get(benchmark, {})
    if column["name"] in table:
        return table[column["name"]]
    if column["metric"] == "WAF" and "WAF" in table:
        return table["WAF"]
    if column["metric"] == "coarse hit rate" and "Hit rate" in table:
        return table["Hit rate"]
    return None


def _average(columns: list[dict]) -> dict | None:
    """The paper's MER-UniBench average: plain mean over the nine sets' numbers."""
    known = {spec.column for spec in MER_UNIBENCH}
    columns = [c for c in columns if c["name"] in known]
    values = [c["value"] for c in columns if c["value"] is not None]
    if not values:
        return None
    note = "" if len(values) == len(MER_UNIBENCH) else f" ({len(values)} of {len(MER_UNIBENCH)} sets)"
    return _column("Average" + note, "mean", sum(values) / len(values),
                   sum(c["n"] for c in columns), sum(c["missing"] for c in columns), {},
                   paper=PAPER_RESULTS["mer-unibench"]["Average"] if not note else None)


def score_predictions(
    benchmark: str,
    predictions: dict[str, str],
    references: Sequence[Record],
    extractor=None,
    judge=None,
    coarse_map: dict[str, str] | None = None,
    sentiment=None,
) -> dict:
    """Score raw generations of one benchmark against its reference records.

    `extractor` turns text into emotion words (default: the built-in
    `EmotionExtractor`); `sentiment` turns MSA answers into sentiments (default:
    `eval.sentiment.sentiment_classifier(extractor)`, the LLM route for an LLM
    extractor, else the offline lexicon); `judge` (an `EmerJudge`) is needed for
    EMER / ERI only.
    Returns {"benchmark", "columns": [...], "n_references", "n_missing",
    "missing_ids" (first 20), "n_unused_predictions", "ignored_records"}; each
    column holds name, metric, value (percent, or 1-10 for EMER), paper, n, missing.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if extractor is None:
        extractor = EmotionExtractor()
    ctx = {"extractor": extractor, "judge": judge, "coarse_map": coarse_map,
           "sentiment": sentiment or sentiment_classifier(extractor)}
    groups = _LAYOUT[benchmark](references)
    columns: list[dict] = []
    used: set[str] = set()
    for (name, kind), records in groups.items():
        texts = [predictions.get(r.id) for r in records]
        used.update(r.id for r in records)
        columns.extend(_SCORERS[kind](name, records, texts, ctx))
    for column in columns:
        column["paper"] = column["paper"] if column["paper"] is not None else _paper_value(benchmark, column)
    extra: dict[str, Any] = {}
    if benchmark == "mer-unibench":
        average = _average(columns)
        if average:
            columns.append(average)
        present = {c["name"] for c in columns}
        extra["missing_sets"] = [spec.column for spec in MER_UNIBENCH if spec.column not in present]
    missing = [r.id for r in references if r.id in used and r.id not in predictions]
    return {
        "benchmark": benchmark,
        "columns": columns,
        "n_references": len(used),
        "n_missing": len(missing),
        "missing_ids": missing[:20],
        "n_unused_predictions": len(set(predictions) - used),
        "ignored_records": len(references) - len(used),
        **extra,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown_table(result: dict, model_name: str = "Ours") -> str:
    """The result as a paper-style table: one column per set, paper row then ours."""
    columns = result["columns"]
    header = "| Model | " + " | ".join(c["name"] for c in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    paper = "| Nano-EmoX (paper) | " + " | ".join(_fmt(c["paper"]) for c in columns) + " |"
    ours = f"| {model_name} | " + " | ".join(_fmt(c["value"]) for c in columns) + " |"
    rows = [header, rule]
    if any(c["paper"] is not None for c in columns):
        rows.append(paper)
    rows.append(ours)
    notes = [f"Benchmark: {result['benchmark']}. Values in percent"
             + ("; EMER overlap on the judge's 1-10 scale" if any(c["scale"] == "1-10" for c in columns) else "")
             + f". Samples: {result['n_references']}, missing predictions (counted wrong): {result['n_missing']}."]
    routes = Counter()
    for column in columns:
        routes.update((column.get("details") or {}).get("routes") or {})
    if routes:
        names = {"direct": "named a sentiment", "lexicon": "through emotion words and the VADER lexicon",
                 "llm": "through emotion words and the LLM", "none": "had no emotion word (neutral)"}
        notes.append("MSA answers: " + ", ".join(f"{n} {names.get(r, r)}" for r, n in sorted(routes.items())) + ".")
    if result.get("missing_sets"):
        notes.append("Not evaluated (no data for these sets; the average covers the others): "
                     + ", ".join(result["missing_sets"]) + ".")
    return "\n".join(rows + [""] + notes) + "\n"
