"""Run a benchmark end to end: inference with a model, resumable predictions, scores, tables, figures.

    from nanoemox.eval.harness import load_references, run_benchmark
    refs = load_references("synthaffect", data_root="data/synth")   # test split
    result = run_benchmark("synthaffect", "runs/tiny", refs, out_dir="eval/synth")

Files written under `out_dir`:
    predictions.jsonl   one line per sample, appended and flushed as samples finish:
                        {"id", "task", "prediction", "decoding"} (+ "max_new_tokens" and
                        "truncated" for generated answers, "error" when the sample failed)
    run.json            the settings the predictions were made with (checked on resume),
                        and under "effective" the decoding and per-task budgets in force
    results.json        scores (`score_predictions` layout) + run summary + confusion counts
    results.md          paper-style table with the published Nano-EmoX numbers beside ours
    confusion_<set>.png one figure per closed-set group (see `nanoemox.eval.plots`)

Resume: ids already present in predictions.jsonl are not run again; a truncated last
line (a crash in mid-write) is cut off and that sample is run again. A sample whose
media cannot be read is stored with an "error" field and scored as wrong.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from nanoemox.data.converters import CONVERTERS, convert
from nanoemox.data.manifest import Record, load_manifest
from nanoemox.data.synth import EMOTIONS
from nanoemox.decoding import Decoding
from nanoemox.eval import BENCHMARKS
from nanoemox.eval.plots import closed_sets, confusion, save_confusion_png
from nanoemox.eval.scoring import check_prediction, markdown_table, score_predictions
from nanoemox.shards import current_shard, merge_parts, parts_of, shard_sets
from nanoemox.inference import Predictor, pick_device, pick_dtype
from nanoemox.model.build import check_backbones, read_model_config
from nanoemox.results_file import ResultsFile
from nanoemox.tasks import TASKS, get_task

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
RUN_FILE = "run.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"

# With a data root, MER-UniBench expects one sub-folder per set, under its own name or
# AffectGPT's (docs/datasets.md);
# the other raw benchmarks take the dataset folder itself; SynthAffect its corpus folder.
MER_UNIBENCH_SETS = ("MER2023", "MER2024", "MELD", "IEMOCAP", "MOSI", "MOSEI", "SIMS", "SIMSv2", "OV-MERD+")
DATASET_OF_BENCHMARK = {"emer": "EMER", "mintrec": "MIntRec", "mintrec2": "MIntRec2.0", "avamerg": "AvaMERG"}
# Settings that change what a prediction is; a resumed run must use the same ones.
_RESUME_KEYS = ("benchmark", "model", "decode", "decoding", "max_new_tokens", "dtype")


@dataclass
class ReferenceSet:
    """Reference records whose media paths are relative to one root folder."""

    root: Path
    records: list[Record]


# ---------------------------------------------------------------- references
def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def mer_unibench_folders(root: Path) -> dict[str, Path | None]:
    """The folder of each of the nine sets under `root` (None when absent).

    A set's folder is found under its own name (`MER2023/`, `OV-MERD+/`, ...), any
    converter alias, or the name AffectGPT gives it (`mer2023-dataset-process`,
    `meld-process`, `cmumosi-process`, ...); case and punctuation are ignored.
    """
    folders = {_squash(p.name): p for p in sorted(root.iterdir()) if p.is_dir()}
    found: dict[str, Path | None] = {}
    for name in MER_UNIBENCH_SETS:
        conv = CONVERTERS[name]
        keys = [_squash(k) for k in (name, *conv.aliases)]
        found[name] = next((folders[k] for k in keys if k in folders), None)
    return found


def _mer_unibench_sets(root: Path, split: str | None) -> list[ReferenceSet]:
    """Records of the MER-UniBench sets found as sub-folders of `root`; absent sets are skipped.

    A set whose folder exists but does not convert raises (its error names the file),
    so a damaged set never drops out of the average unnoticed.
    """
    sets = []
    for name, folder in mer_unibench_folders(root).items():
        if folder is None:
            log.warning("MER-UniBench set %s not found under %s; skipped (see docs/datasets.md for the "
                        "folder names)", name, root)
            continue
        sets.append(ReferenceSet(folder, convert(name, folder, split=split).records))
    if not sets:
        raise FileNotFoundError(f"no MER-UniBench set found under {root}: expected folders such as "
                                "MER2023/ or mer2023-dataset-process/, meld-process/, cmumosi-process/ "
                                "(docs/datasets.md)")
    return sets


def _synthaffect_set(root: Path, split: str | None) -> ReferenceSet:
    manifest = root / f"{split or 'manifest'}.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: --data-root must be a SynthAffect folder "
                                "(made by `nanoemox synth`) holding train/dev/test.jsonl")
    return ReferenceSet(root, load_manifest(manifest))


def load_references(benchmark: str, *, data_root: str | os.PathLike | None = None,
                    manifests: Sequence[str | os.PathLike] | None = None, split: str | None = "test",
                    media_root: str | os.PathLike | None = None) -> list[ReferenceSet]:
    """A benchmark's reference records, from a raw data root or from manifests.

    `data_root`: converted on the fly (`split` only); for mer-unibench the folder holding
    the sets (`mer_unibench_folders` says which names are found); for synthaffect a
    SynthAffect corpus (its `<split>.jsonl`).
    `manifests`: read as they are, keeping only `split` when it is not None; media are
    found under `media_root`, by default each manifest's own folder.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if (data_root is None) == (not manifests):
        raise ValueError("give either a data root or reference manifests, not both and not neither")
    if manifests:
        sets = []
        for path in manifests:
            records = [r for r in load_manifest(path) if split is None or r.split == split]
            sets.append(ReferenceSet(Path(media_root) if media_root else Path(path).parent, records))
        return sets
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a folder")
    if benchmark == "mer-unibench":
        return _mer_unibench_sets(root, split)
    if benchmark == "synthaffect":
        return [_synthaffect_set(root, split)]
    return [ReferenceSet(root, convert(DATASET_OF_BENCHMARK[benchmark], root, split=split).records)]


def _as_sets(references: Sequence[Record] | Sequence[ReferenceSet], root) -> list[ReferenceSet]:
    if all(isinstance(r, ReferenceSet) for r in references):
        return list(references)
    if root is None:
        raise ValueError("records given without a media root: pass root=, or ReferenceSet objects")
    return [ReferenceSet(Path(root), list(references))]


def _limit(sets: list[ReferenceSet], limit: int | None) -> list[ReferenceSet]:
    """The first `limit` records over all sets, in order."""
    if limit is None:
        return sets
    kept, left = [], max(0, int(limit))
    for s in sets:
        kept.append(ReferenceSet(s.root, s.records[:left]))
        left -= len(kept[-1].records)
    return [s for s in kept if s.records]


# ---------------------------------------------------------------- predictions file
def read_predictions(path: str | os.PathLike) -> dict[str, dict]:
    """Entries of a predictions file by id; repairs a truncated last line by cutting it off.

    Any other unreadable line raises ValueError naming the file and line: such a file
    was not written by an interrupted run and should be checked by hand (`ResultsFile`).
    """
    entries = ResultsFile(path, what="prediction", check=lambda obj: check_prediction(obj, {})).read()
    return {str(obj["id"]): obj for obj in entries}


def _check_settings(out: Path, settings: dict, write: bool = True) -> None:
    """Refuse to mix predictions made with other settings into an existing run; then record
    these settings (`write`: only the main process of several writes, every one checks)."""
    run_file = out / RUN_FILE
    if run_file.is_file() and ((out / PREDICTIONS_FILE).is_file() or parts_of(out / PREDICTIONS_FILE)):
        before = json.loads(run_file.read_text(encoding="utf-8"))
        changed = [k for k in _RESUME_KEYS if before.get(k) != settings.get(k)]
        if changed:
            diff = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise ValueError(f"{out / PREDICTIONS_FILE} was made with other settings ({diff}); "
                             "choose another output folder or delete it to start over")
    if write:
        run_file.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- inference
def pending(references: Sequence[Record] | Sequence[ReferenceSet], out_dir: str | os.PathLike, *,
            root: str | os.PathLike | None = None, limit: int | None = None) -> int:
    """How many samples a `run_benchmark` with these arguments still has to predict."""
    done = read_predictions(Path(out_dir) / PREDICTIONS_FILE)
    return sum(r.id not in done for s in _limit(_as_sets(references, root), limit) for r in s.records)


def model_backbones(model, allow_random: bool) -> list[str]:
    """Random backbones of a model folder (checked before loading); [] for a ready predictor."""
    if not isinstance(model, (str, os.PathLike)):
        config = getattr(getattr(model, "model", None), "config", None)
        return list(getattr(config, "random_backbones", []) or [])
    config, _ = read_model_config(model)
    return check_backbones(config, allow=allow_random, purpose="evaluation")


def _resolved_dtype(model, dtype: str | None, device: str | None) -> str | None:
    """The precision a model folder will run in ("auto" resolved), so a resume on other hardware is caught."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    return str(pick_dtype(dtype, pick_device(device))).replace("torch.", "")


def _load_predictor(model, options: dict):
    """The predictor for `model`: a model folder is loaded with `options` (device, dtype, batch_size,
    decoding); any other object is used as it is (it has predict_records(records, root))."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    return Predictor.from_pretrained(model, **{k: v for k, v in options.items() if v is not None})


def _predict(predictor, sets: list[ReferenceSet], done: dict[str, dict], path: Path,
             progress: Callable[[int], None] | None, decode: str, decoding: dict) -> dict:
    """Run the samples not yet in `done`, appending one flushed line per finished sample."""
    counts = Counter()
    # Only the real predictor knows decode modes; the default keeps duck-typed predictors working.
    extra = {} if decode == "generate" else {"decode": decode}
    with ResultsFile(path, what="prediction").appending() as out:
        for s in sets:
            todo = [r for r in s.records if r.id not in done]
            counts["resumed"] += len(s.records) - len(todo)
            if not todo:
                continue
            for answer in predictor.predict_records(todo, s.root, **extra):
                record, text, error = answer
                entry = {"id": record.id, "task": record.task, "prediction": None if error else text,
                         "decoding": decoding}
                if getattr(answer, "max_new_tokens", None) is not None:  # a generated (not scored) answer
                    entry["max_new_tokens"] = answer.max_new_tokens
                    entry["truncated"] = bool(answer.truncated)
                if error:
                    entry["error"] = str(error)
                    counts["failed_now"] += 1
                out.append(entry)  # flushed: a crash loses at most the sample being written
                done[record.id] = entry
                counts["predicted"] += 1
                if progress:
                    progress(1)
    return counts


# ---------------------------------------------------------------- scoring
def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def reason_overlap(prediction: str | None, reference: str, task: str | None = None) -> float:
    """Token F1 of a predicted reason (read by `task`'s parser; default the first judged task, ERI)
    against the reference (lower-cased word tokens); 0 if missing."""
    if not prediction:
        return 0.0
    reader = get_task(task) if task else next(t for t in TASKS.values() if t.judged)
    pred, ref = Counter(_tokens(reader.parse(prediction))), Counter(_tokens(reference))
    common = sum((pred & ref).values())
    if not common:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def _overlap_column(records: list[Record], predictions: dict[str, str]) -> dict:
    scores = [reason_overlap(predictions.get(r.id), str(r.target), r.task) for r in records]
    missing = sum(r.id not in predictions for r in records)
    return {"name": "ERI token overlap", "metric": "token F1", "value": 100.0 * sum(scores) / len(scores),
            "paper": None, "n": len(records), "missing": missing, "scale": "percent",
            "details": {"note": "offline proxy for the EMER judge: mean token F1 of predicted vs "
                                "reference reason", "per_sample_mean": sum(scores) / len(scores)}}


def score_run(benchmark: str, predictions: dict[str, str], records: list[Record], *,
              extractor=None, judge=None) -> dict:
    """`score_predictions`, plus SynthAffect's offline ERI proxy and closed-set MER accuracy."""
    if benchmark != "synthaffect":
        return score_predictions(benchmark, predictions, records, extractor=extractor, judge=judge)
    eri = [r for r in records if get_task(r.task).judged]
    # Without a judge the judged (ERI) records are scored by the token-overlap proxy only.
    scored = records if judge is not None else [r for r in records if not get_task(r.task).judged]
    coarse = {e: e for e in EMOTIONS}  # SynthAffect's emotions are their own coarse classes
    result = score_predictions(benchmark, predictions, scored, extractor=extractor, judge=judge,
                               coarse_map=coarse)
    if eri:
        result["columns"].append(_overlap_column(eri, predictions))
        if judge is None:
            result["n_references"] += len(eri)
            result["n_missing"] += sum(r.id not in predictions for r in eri)
    return result


def _confusions(benchmark: str, records: list[Record], predictions: dict[str, str], out: Path,
                plots: bool) -> list[dict]:
    tables = []
    for group in closed_sets(benchmark, records):
        table = confusion(group, predictions)
        if plots:
            name = re.sub(r"[^A-Za-z0-9.+-]+", "_", group.name)
            table["png"] = save_confusion_png(table, out / f"confusion_{name}.png").name
        tables.append(table)
    return tables


def _add_accuracy_columns(result: dict, tables: list[dict]) -> None:
    """SynthAffect MER/MIR: closed-set accuracy beside the wheel hit rate / WAF."""
    for table in tables:
        if get_task(table["task"]).takes_candidates and table["accuracy"] is not None:
            result["columns"].append({
                "name": f"{table['name']} accuracy", "metric": "accuracy", "value": 100.0 * table["accuracy"],
                "paper": None, "n": table["n"], "missing": None, "scale": "percent",
                "details": {"note": "label parsed from the generation equals the reference"}})


# ---------------------------------------------------------------- the run
def _summary_lines(run: dict) -> str:
    lines = [f"Run: {run['n_samples']} samples, {run['predicted']} predicted now, {run['resumed']} resumed "
             f"from an earlier run, {run['failed']} failed (media errors, counted as wrong)."]
    decoding = run.get("decoding") or {}
    if decoding:
        knobs = ", ".join(f"{k} {decoding[k]}" for k in ("temperature", "top_p", "top_k", "seed")
                          if decoding.get(k) is not None)
        lines.append(f"Decoding: {decoding['strategy']}" + (f" ({knobs})" if knobs else "")
                     + f", repetition penalty {decoding['repetition_penalty']}.")
    if run.get("random_backbones"):
        lines.append("Random backbones: " + ", ".join(run["random_backbones"]) + " had untrained (random) "
                     "weights in this model; its scores say nothing about the paper's model.")
    if run.get("truncated"):
        by_task = ", ".join(f"{t} {n}" for t, n in sorted(run["truncated_by_task"].items()))
        lines.append(f"Truncated: {run['truncated']} generated answer(s) reached their token budget before "
                     f"ending ({by_task}); raise it with --max-new-tokens TASK=N.")
    if run["predicted"]:
        lines.append(f"Inference: {run['inference_seconds']:.1f} s, "
                     f"{run['samples_per_second']:.2f} samples/s.")
    return "\n".join(lines) + "\n"


def _outputs(out: Path, result: dict, model_name: str) -> None:
    table = markdown_table(result, model_name=model_name) + "\n" + _summary_lines(result["run"])
    (out / RESULTS_JSON).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / RESULTS_MD).write_text(table, encoding="utf-8")
    result["table"] = table


def run_benchmark(benchmark: str, model: str | os.PathLike | Any,
                  references: Sequence[Record] | Sequence[ReferenceSet], root: str | os.PathLike | None = None,
                  out_dir: str | os.PathLike = "eval", *, limit: int | None = None,
                  progress: Callable[[int], None] | None = None, batch_size: int = 8,
                  max_new_tokens: int | dict[str, int] | None = None, do_sample: bool = False,
                  temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                  repetition_penalty: float | None = None, seed: int = 0, decoding: Decoding | None = None,
                  device: str | None = None, dtype: str | None = None,
                  decode: str = "generate", extractor=None, judge=None, model_name: str = "Ours",
                  plots: bool = True, allow_random_backbones: bool = False) -> dict:
    """Predict, score and report one benchmark; returns the result also written to results.json.

    `model` is a model folder (loaded with `Predictor.from_pretrained`) or a ready
    predictor (anything with `predict_records(records, root)`). `references` are
    records under `root`, or `ReferenceSet`s from `load_references`. `progress` is
    called with 1 per finished sample. `decode="score"` ranks the candidates of MSA,
    MER and MIR samples instead of generating (see `nanoemox.inference`). Decoding is
    plain greedy unless `do_sample`; `max_new_tokens` is one budget or one per task
    (see `nanoemox.decoding`); `decoding` gives all of these as one `Decoding` instead. The result is `score_predictions`' dict plus "run"
    (counts, failures, truncated answers, decoding, timing), "confusion" (closed-set
    counts) and "table" (the markdown written to results.md).
    """
    loose = {"do_sample": do_sample, "temperature": temperature, "top_p": top_p, "top_k": top_k,
             "repetition_penalty": repetition_penalty, "seed": seed, "max_new_tokens": max_new_tokens}
    if decoding is None:
        decoding = Decoding(**loose)
    elif any(loose[k] not in (None, False, 0) for k in loose):
        raise ValueError("give the decoding settings either as decoding= or one by one, not both")
    else:
        max_new_tokens = decoding.max_new_tokens  # as the run's settings record it
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if benchmark == "emer" and judge is None:
        raise ValueError("emer is scored by an LLM judge: pass judge= (CLI: --llm-url and --llm-model)")
    sets = _limit(_as_sets(references, root), limit)
    records = [r for s in sets for r in s.records]
    if not records:
        raise ValueError(f"no reference records for {benchmark} (check the split and the data root)")
    out = Path(out_dir).expanduser().resolve()  # results.json names files under it
    out.mkdir(parents=True, exist_ok=True)
    model_id = str(Path(model).resolve()) if isinstance(model, (str, os.PathLike)) else type(model).__name__
    random_backbones = model_backbones(model, allow_random_backbones)  # refused before any inference
    settings = {"benchmark": benchmark, "model": model_id, "decode": decode, "decoding": decoding.effective(),
                "max_new_tokens": max_new_tokens, "dtype": _resolved_dtype(model, dtype, device),
                "batch_size": batch_size, "limit": limit}
    shard = current_shard()  # one of several processes under `accelerate launch` (`shards`)
    _check_settings(out, settings, write=False)  # each process refuses on its own: none waits for a failed one
    shard.wait()
    if shard.main:
        _check_settings(out, settings)
        merge_parts(out / PREDICTIONS_FILE, [r.id for r in records])  # what an interrupted run of several processes left
    shard.wait()
    done = read_predictions(out / PREDICTIONS_FILE)
    mine = shard_sets(sets, shard, done)
    path = out / PREDICTIONS_FILE if shard.world == 1 else shard.part(out / PREDICTIONS_FILE)
    counts, seconds = Counter(resumed=len(records)), 0.0
    if any(r.id not in done for s in mine for r in s.records):
        predictor = _load_predictor(model, {"device": device or shard.device, "dtype": dtype,
                                            "batch_size": batch_size, "decoding": decoding})
        if hasattr(predictor, "settings") and shard.main:  # the budgets and precision actually in force
            settings["effective"] = predictor.settings()
            (out / RUN_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        start = time.perf_counter()
        counts = _predict(predictor, mine, done, path, progress, decode, decoding.effective())
        seconds = time.perf_counter() - start
    shard.wait()
    if not shard.main:  # the main process merges and scores
        return {"rank": shard.rank, "processes": shard.world, "predicted": counts["predicted"],
                "inference_seconds": round(seconds, 3)}
    if shard.world > 1:  # counts of the whole run, not of this process's share
        resumed = sum(r.id in done for r in records) - counts["predicted"]
        merge_parts(out / PREDICTIONS_FILE, [r.id for r in records])
        done = read_predictions(out / PREDICTIONS_FILE)
        counts = Counter(resumed=resumed, predicted=sum(r.id in done for r in records) - resumed)
    failed = [r.id for r in records if "error" in done.get(r.id, {})]
    truncated = [r.id for r in records if done.get(r.id, {}).get("truncated")]
    predictions = {r.id: done[r.id]["prediction"] or "" for r in records
                   if r.id in done and "error" not in done[r.id]}
    result = score_run(benchmark, predictions, records, extractor=extractor, judge=judge)
    result["confusion"] = _confusions(benchmark, records, predictions, out, plots)
    if benchmark == "synthaffect":
        _add_accuracy_columns(result, result["confusion"])
    result["run"] = {"n_samples": len(records), "predicted": counts["predicted"], "resumed": counts["resumed"],
                     "failed": len(failed), "failed_ids": failed[:20], "truncated": len(truncated),
                     "truncated_by_task": dict(Counter(done[i]["task"] for i in truncated)),
                     "truncated_ids": truncated[:20], "decoding": decoding.effective(),
                     "random_backbones": random_backbones,
                     "max_new_tokens": (settings.get("effective") or {}).get("max_new_tokens", max_new_tokens),
                     "inference_seconds": round(seconds, 3),
                     "samples_per_second": counts["predicted"] / seconds if seconds else None,
                     "predictions": str(out / PREDICTIONS_FILE)}
    _outputs(out, result, model_name)
    return result
