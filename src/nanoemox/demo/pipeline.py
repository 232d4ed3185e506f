"""`nanoemox demo`: the whole pipeline on a CPU, from nothing to a report.

1. generate SynthAffect (train/dev/test: 600/200/200 clips, all six tasks);
2. build the tiny preset on the stand-in backbones shipped with the package
   (`nanoemox.standins`, built once by `nanoemox standins build`: the language model,
   its whole-word tokenizer and the scene, speech and face encoders, none of which read a
   clip of this corpus); with `build_standins`, build them into `OUT/standins` first;
3. cache the frozen encoders' outputs for every clip (`nanoemox.features`);
4. train P2E (configs/demo_p2e_tiny.yaml); with `joint_config`, also joint training with
   the same number of steps from the same start (`benchmarks/p2e_vs_joint.py` compares the
   two over seeds);
5. evaluate on the dev and the test split with the SynthAffect benchmark of the harness
   (dev is where the demo's settings were chosen; test is only reported), the same model
   with video and audio masked (the text-only baseline), and MER with each modality
   masked in turn; the same figures on a seeded draw of training records (fit against
   generalisation);
6. diagnostics (`nanoemox.demo.diagnostics`): probes of every stage, the stand-ins' own
   heads on dev, chance and majority baselines, bootstrap intervals;
7. write `report.md`, `report.json` and plots; the P2E model goes to `OUT/model`.

Every stage runs under `reproducible(seed, threads)` and reseeds every generator before
it starts, so two runs on one machine (or a run resumed after any stage) write the same
figures and the same bytes in every `.safetensors` file.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from transformers import AutoTokenizer

from nanoemox.data.manifest import Record, load_manifest
from nanoemox.data.synth import generate
from nanoemox.decoding import BUDGETS_FILE, read_budgets
from nanoemox.demo import diagnostics
from nanoemox.demo.report import headline, write_report
from nanoemox.eval.harness import run_benchmark
from nanoemox.features import FeatureCache, build_cache
from nanoemox.inference import FeatureCachePredictor
from nanoemox.model import build_model, load_model
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.reproducible import reproducible, seed_all
from nanoemox.standins import HEADS, MANIFEST, packaged, read_manifest, standin_config
from nanoemox.standins.build import BuildConfig, build_standins
from nanoemox.tasks import EMOTION_TASK, get_task
from nanoemox.train import Trainer, load_train_config
from nanoemox.train.absent import AbsentModalities

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
MODALITY_CUES = ("face", "voice", "text")
# Train, dev and test shares of the corpus: 1,000 clips give 600 / 200 / 200.
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def packaged_config(name: str) -> Path:
    return Path(str(resources.files("nanoemox.resources").joinpath(f"configs/{name}")))


# Changes to the stand-ins' LoRA config for the demo, chosen on the dev split: LoRA rank 16
# (alpha 32), taken together with phase 3's 3e-3 learning rate (the dev runs changed both at
# once, so their shares are not separated).
DEMO_LORA = {"r": 16, "alpha": 32}


@dataclass
class DemoOptions:
    out: Path
    clips: int = 1000
    seed: int = 0
    threads: int = 2  # torch's intra-op threads, pinned: float sums depend on how work is split
    p2e_config: Path = field(default_factory=lambda: packaged_config("demo_p2e_tiny.yaml"))
    joint_config: Path | None = None  # e.g. packaged_config("demo_jot_tiny.yaml") to compare
    workers: int = 2
    batch_size: int = 16
    # The stand-in backbones: None loads the packaged ones; with `build_standins`, they are
    # built into OUT/standins first (`standin_build` says how; about an hour on 2 cores).
    standins: Path | None = None
    build_standins: bool = False
    standin_build: BuildConfig = field(default_factory=BuildConfig)
    # Overrides of the LoRA config (empty: the tiny preset's).
    lora: dict = field(default_factory=lambda: dict(DEMO_LORA))
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    # The training split's figures (fit against generalisation) read at most this many records per task.
    train_eval_per_task: int = 200


class Stopwatch:
    """Wall-clock seconds per named stage, in order; every stage starts from freshly seeded generators."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.stages: dict[str, float] = {}
        self.started = time.perf_counter()

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        logger.info("demo: %s", name)
        seed_all(self.seed)  # a stage's draws never depend on what ran before it (or on a resume)
        result = fn()
        self.stages[name] = round(time.perf_counter() - start, 1)
        return result

    @property
    def minutes(self) -> float:
        return (time.perf_counter() - self.started) / 60


# ---------------------------------------------------------------------- stages


def make_corpus(opts: DemoOptions, progress: Progress | None) -> Path:
    corpus = opts.out / "synthaffect"
    done = 0

    def tick(clips: int) -> None:  # the generator reports clips finished since its last call
        nonlocal done
        done += clips
        progress("synthaffect", done, opts.clips)

    if not (corpus / "synthaffect.json").is_file():
        generate(corpus, opts.clips, seed=opts.seed, workers=opts.workers, split_fractions=opts.split_fractions,
                 progress=tick if progress else None)
    return corpus


def standins_folder(opts: DemoOptions, progress: Progress | None) -> Path:
    """The stand-in backbones this demo starts from: built into OUT/standins when asked, else given or packaged."""
    if opts.build_standins:
        folder = opts.out / "standins"
        if not (folder / MANIFEST).is_file():
            build_standins(folder, opts.standin_build, progress, command="nanoemox demo --build-standins")
        return folder
    return Path(opts.standins).expanduser().resolve() if opts.standins else packaged()


def pretrained_model(opts: DemoOptions, standins: Path) -> tuple[Path, dict]:
    """The tiny model on the stand-in backbones (fresh adapters, fusion and LoRA), saved self-contained.

    Returns the folder and what the stand-ins' manifest says they read and reached.
    """
    target = opts.out / "pretrained"
    manifest = read_manifest(standins)
    summary = {"folder": str(standins), "command": manifest["command"], "commit": manifest["commit"],
               "build_seconds": manifest["build_seconds"], "language": manifest["language"],
               "encoders": manifest["encoders"], "checks": manifest["checks"]}
    if (target / "config.json").is_file():
        return target, summary
    config = standin_config(standins)
    for key, value in opts.lora.items():
        setattr(config.lora, key, value)
    processor = NanoEmoXProcessor.from_config(config, AutoTokenizer.from_pretrained(config.language.tokenizer))
    model = build_model(config, pretrained=True, tokenizer=processor.tokenizer)
    model.save_pretrained(target, self_contained=True, processor=processor)
    shutil.copy(standins / HEADS, target / HEADS)  # the encoders' own heads, for the diagnostics
    return target, summary


def cache_features(model_dir: Path, corpus: Path, records: list[Record], opts: DemoOptions, progress) -> Path:
    out = opts.out / "features"
    model = load_model(model_dir)
    processor = NanoEmoXProcessor.from_pretrained(model_dir)
    build_cache(records, corpus, model, processor, out, batch_size=opts.batch_size, workers=max(1, opts.workers - 1),
                progress=(lambda i, n: progress("features", i, n)) if progress else None)
    return out


def train(config_path: Path, name: str, model_dir: Path, corpus: Path, features: Path, opts: DemoOptions) -> Path:
    model_dir, corpus, features = (Path(p).resolve() for p in (model_dir, corpus, features))
    overrides = {"model": {"path": str(model_dir), "preset": None}, "seed": opts.seed,
                 "data": {"root": str(corpus), "train": [str(corpus / "train.jsonl")], "features": str(features),
                          "workers": 0}}
    config = load_train_config(config_path, overrides=overrides)
    return Trainer(config, opts.out / name, resume=True, progress=False).train()


# ---------------------------------------------------------------------- evaluation


def _load(model_dir: Path):
    """(model, processor, answer budgets) of a model folder."""
    return load_model(model_dir), NanoEmoXProcessor.from_pretrained(model_dir), read_budgets(model_dir)


def _predictor(loaded, features: Path, opts: DemoOptions, transform=None):
    model, processor, budgets = loaded
    cache = FeatureCache.open(features, model=model, processor=processor)
    return FeatureCachePredictor(model, processor, cache, transform=transform, batch_size=opts.batch_size,
                                 seed=opts.seed, model_budgets=budgets)


def evaluate(model_dir: Path, features: Path, corpus: Path, records: list[Record], out: Path, opts: DemoOptions,
             name: str, masked: tuple[str, ...] = ()) -> dict:
    """The SynthAffect benchmark of `records`; with `masked`, those modalities are replaced by their absence."""
    loaded = _load(model_dir)
    transform = _masker(loaded, masked) if masked else None
    return run_benchmark("synthaffect", _predictor(loaded, features, opts, transform=transform), records, corpus, out,
                         seed=opts.seed, model_name=name)


def _masker(loaded, modalities):
    """Replace modalities by what the model sees when they are absent (blank video, silence, no subtitle)."""
    absent = AbsentModalities(*loaded[:2])
    modalities = [modalities] if isinstance(modalities, str) else list(modalities)

    def transform(record, feats):
        return absent.drop_record(record, modalities), absent.drop_features(feats, modalities)

    return transform


def _mer_accuracy_by_cue(predictor, records: list[Record], root: Path) -> dict[str, dict]:
    """Answer `records` with `predictor` and score MER per cue group (a failed sample is a miss)."""
    texts = {record.id: (text if error is None else None)
             for record, text, error in predictor.predict_records(records, root)}
    return diagnostics.mer_accuracy_by_cue(records, texts)


def modality_ablation(model_dir: Path, features: Path, corpus: Path, records: list[Record], opts: DemoOptions) -> dict:
    """MER accuracy per cue group with nothing masked, then with each modality masked."""
    mer = [r for r in records if r.task == EMOTION_TASK and not r.extra.get("conflict")]
    loaded = _load(model_dir)
    out = {"none": _mer_accuracy_by_cue(_predictor(loaded, features, opts), mer, corpus)}
    for modality in MODALITY_CUES:
        predictor = _predictor(loaded, features, opts, transform=_masker(loaded, modality))
        out[modality] = _mer_accuracy_by_cue(predictor, mer, corpus)
    return out


def diagnose(model_dir: Path, init: Path, standins: Path, features: Path, records: list[Record]) -> dict:
    """Probes of every stage (fitted on train, scored on dev and test) and the stand-ins' own heads on dev."""
    cache = FeatureCache.open(features)
    clips = {split: diagnostics.clips_of(records, cache, split) for split in ("train", "dev", "test")}
    model = load_model(model_dir)
    probes = diagnostics.probes(clips["train"], {"dev": clips["dev"], "test": clips["test"]}, model)
    reading = read_manifest(standins)["config"]["reading"]  # the frames and audio window the heads learned on
    heads = diagnostics.stand_in_accuracy(init, clips["dev"], reading["frames"], reading["windows"])
    return {"probes": probes, "stand_in_heads_dev": heads}


def score_figures(corpus: Path, records: list[Record], eval_dirs: dict[str, Path], opts: DemoOptions) -> dict:
    """Headline figures with 95% bootstrap intervals: the model, the text-only model, chance and majority."""
    train = load_manifest(corpus / "train.jsonl")
    answers = {name: diagnostics.read_predictions(folder) for name, folder in eval_dirs.items()}
    answers.update(diagnostics.baseline_answers(records, train, seed=opts.seed))
    return {name: diagnostics.score_texts(records, texts, seed=opts.seed) for name, texts in answers.items()}


def evaluate_train(model_dir: Path, features: Path, corpus: Path, records: list[Record], opts: DemoOptions,
                   name: str) -> tuple[dict, dict, dict]:
    """The fit side of the report: (benchmark result, figures with intervals and the chance and majority
    baselines, MER accuracy per cue group) on at most `opts.train_eval_per_task` training records of each
    headline task, drawn with the demo's seed (ERI left out: no headline figure)."""
    chosen = diagnostics.train_subset(records, opts.train_eval_per_task, opts.seed)
    folder = opts.out / "eval_p2e_train"
    result = evaluate(model_dir, features, corpus, chosen, folder, opts, name)
    scored = score_figures(corpus, chosen, {"p2e": folder}, opts)
    return result, scored, diagnostics.mer_accuracy_by_cue(chosen, diagnostics.read_predictions(folder))


# ---------------------------------------------------------------------- the whole run


def run_demo(opts: DemoOptions, progress: Progress | None = None) -> dict:
    """The whole demo under pinned threads and seeded generators (see the module docstring)."""
    # A relative --out is the user's working directory, never the packaged config's folder:
    # every path the demo writes into a training config below is absolute.
    opts.out = Path(opts.out).expanduser().resolve()
    opts.out.mkdir(parents=True, exist_ok=True)
    with reproducible(opts.seed, opts.threads):
        return _run_stages(opts, progress)


def _run_stages(opts: DemoOptions, progress: Progress | None) -> dict:
    clock = Stopwatch(opts.seed)
    corpus = clock.run("synthaffect", lambda: make_corpus(opts, progress))
    records = load_manifest(corpus / "manifest.jsonl")
    splits = {split: [r for r in records if r.split == split] for split in ("dev", "test")}
    standins = clock.run("stand-ins", lambda: standins_folder(opts, progress))
    init, pre = clock.run("model", lambda: pretrained_model(opts, standins))
    features = clock.run("feature cache", lambda: cache_features(init, corpus, records, opts, progress))
    runs = {"p2e": ("P2E", opts.p2e_config, "Nano-EmoX tiny, P2E")}
    if opts.joint_config is not None:
        runs["joint"] = ("joint", opts.joint_config, "Nano-EmoX tiny, joint")
    results: dict[str, dict] = {"dev": {}}
    trained: dict[str, Path] = {}
    folders: dict[str, dict[str, Path]] = {"dev": {}, "test": {}}
    for key, (label, config, name) in runs.items():
        trained[key] = clock.run(f"{label} training", lambda: train(config, key, init, corpus, features, opts))
        # Dev is where choices are made; test is reported, never looked at to choose anything.
        for split in ("dev", "test"):
            folder = folders[split][key] = opts.out / (f"eval_{key}" if split == "test" else f"eval_{key}_dev")
            result = clock.run(f"{label} evaluation ({split})", lambda: evaluate(
                trained[key], features, corpus, splits[split], folder, opts, name))
            (results if split == "test" else results["dev"])[key] = result
    p2e = trained["p2e"]
    for split in ("dev", "test"):  # the text-only baseline: the same model, video and audio masked
        folder = folders[split]["text_only"] = opts.out / ("eval_text_only" + ("_dev" if split == "dev" else ""))
        headline_only = [r for r in splits[split] if not get_task(r.task).judged]  # ERI (judged) is no headline figure
        clock.run(f"text-only evaluation ({split})", lambda: evaluate(
            p2e, features, corpus, headline_only, folder, opts, "Nano-EmoX tiny, P2E, video and audio masked",
            masked=("face", "voice")))
    ablation = {split: clock.run(f"modality ablation ({split})", lambda: modality_ablation(
        p2e, features, corpus, splits[split], opts)) for split in ("dev", "test")}
    checks = clock.run("diagnostics", lambda: diagnose(p2e, init, standins, features, records))
    scored = {split: clock.run(f"intervals and baselines ({split})", lambda: score_figures(
        corpus, splits[split], {k: v for k, v in folders[split].items() if k != "joint"}, opts))
        for split in ("dev", "test")}
    # Fit against generalisation: the same figures on training records (no masked runs there, so
    # the train "ablation" holds only its unmasked row).
    train_result, scored["train"], train_cues = clock.run("P2E evaluation (train)", lambda: evaluate_train(
        p2e, features, corpus, records, opts, runs["p2e"][2]))
    results["train"] = {"p2e": train_result}
    ablation["train"] = {"none": train_cues}
    final = opts.out / "model"
    clock.run("export", lambda: _export(p2e, final))
    report = headline(results, ablation, pre, clock, opts, corpus, checks, scored)
    write_report(report, results, opts.out)
    return report


def _export(model_dir: Path, target: Path) -> None:
    """The trained P2E model as a self-contained folder every `--model` command can load."""
    model, processor, _ = _load(model_dir)
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target, self_contained=True, processor=processor)
    if (model_dir / BUDGETS_FILE).is_file():  # the measured answer budgets travel with the model
        shutil.copy(model_dir / BUDGETS_FILE, target / BUDGETS_FILE)
