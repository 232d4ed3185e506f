"""What a training config will do, computed without building a model (`nanoemox train --dry-run`).

    plan = plan_training(load_train_config("configs/p2e_paper.yaml"))
    print(format_plan(plan))

Reads every manifest, checks the model source, the datasets each phase names and
the media files (or the feature cache) the phases will read, and for each phase
reports the pool size per task and dataset, the effective mixture (the probability
of each task or task/dataset group), steps, samples seen and how many epochs that is
over each pool. Every problem found is collected; `PlanError` lists them all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from nanoemox.config import get_preset
from nanoemox.data.manifest import MEDIA_KINDS, ManifestError, Record, load_manifest
from nanoemox.model.build import check_backbones, random_backbones_of
from nanoemox.model.saving import read_model_config
from nanoemox.train.config import PhaseConfig, TrainConfig
from nanoemox.train.data import phase_mixture

MEDIA_CHECK_LIMIT = 200_000  # records whose media files are checked on disk (stat calls)


class PlanError(ValueError):
    """A training config that cannot run; the message lists every problem found."""


def _manifests(config: TrainConfig, problems: list[str]) -> tuple[list[Record], list[dict]]:
    records, summary = [], []
    for path in config.data.train:
        try:
            loaded = load_manifest(path)
        except (ManifestError, OSError, ValueError) as exc:
            problems.append(f"manifest {path}: {exc}")
            continue
        train = [r for r in loaded if r.split == "train"]
        summary.append({"manifest": str(path), "records": len(loaded), "train": len(train)})
        if not train:
            problems.append(f"manifest {path}: no record of split 'train' (it holds {len(loaded)} records)")
        records += train
    if not config.data.train:
        problems.append("data.train lists no manifest")
    return records, summary


def _model_source(config: TrainConfig, problems: list[str]) -> str:
    source = config.model
    try:
        if source.path:
            if not (Path(source.path) / "config.json").is_file():
                problems.append(f"model.path {source.path} is not a model folder (no config.json)")
                return f"model folder {source.path}"
            model_config, _ = read_model_config(source.path)
            described = f"model folder {source.path}"
        else:
            model_config = get_preset(source.preset)
            model_config.face.encoder = source.face_checkpoint or model_config.face.encoder
            model_config.random_backbones = random_backbones_of(model_config, pretrained=True)
            described = f"preset {source.preset}" + (f" + FaceXFormer {source.face_checkpoint}"
                                                     if source.face_checkpoint else "")
            if source.face_checkpoint and not Path(source.face_checkpoint).is_file():
                problems.append(f"model.face_checkpoint {source.face_checkpoint} not found")
        random = check_backbones(model_config, allow=source.allow_random_backbones, purpose="training")
    except (OSError, ValueError) as exc:  # unknown preset, unreadable folder, random backbones refused
        problems.append(str(exc))
        return f"model folder {source.path}" if source.path else f"preset {source.preset}"
    return described + (f"; random backbones: {', '.join(random)}" if random else "")


def _phase(phase: PhaseConfig, records: list[Record], seed: int, problems: list[str]) -> dict[str, Any] | None:
    present = {r.dataset.lower(): r.dataset for r in records}
    for name in phase.datasets or ():
        if name.lower() not in present:
            problems.append(f"phase {phase.name!r} names dataset {name!r}, which no training record has "
                            f"(datasets present: {', '.join(sorted(present.values())) or 'none'})")
    try:
        mixture = phase_mixture(records, phase, seed)
    except ValueError as exc:
        problems.append(str(exc))
        return None
    pools = {group: len(recs) for group, recs in mixture._groups.items()}
    by_dataset: dict[str, Counter] = defaultdict(Counter)
    for group_records in mixture._groups.values():
        for r in group_records:
            by_dataset[r.task][r.dataset] += 1
    per_step = phase.micro_batch * phase.grad_accum
    seen = phase.steps * per_step
    return {
        "name": phase.name, "trainable": list(phase.trainable), "steps": phase.steps, "lr": phase.lr,
        "batch": per_step, "samples_seen": seen, "mode": phase.mixture_mode,
        "groups": {g: {"pool": pools[g], "probability": round(p, 4), "samples": round(seen * p),
                       "epochs": round(seen * p / pools[g], 3)} for g, p in mixture.probabilities.items()},
        "pool_by_task_and_dataset": {t: dict(c) for t, c in by_dataset.items()},
        "_records": [r for recs in mixture._groups.values() for r in recs],
    }


def _media(records: list[Record], root: Path, problems: list[str]) -> dict[str, dict[str, int]]:
    """Per dataset and kind: files found and missing (the first MEDIA_CHECK_LIMIT distinct records)."""
    unique = list({r.id: r for r in records}.values())[:MEDIA_CHECK_LIMIT]
    counts: dict[str, Counter] = defaultdict(Counter)
    first_missing = []
    for record in unique:
        for kind in MEDIA_KINDS:
            rel = record.media.get(kind)
            if not rel:
                continue
            path = root / rel
            ok = path.is_dir() if rel.endswith("/") else path.is_file()
            counts[record.dataset][f"{kind}_{'found' if ok else 'missing'}"] += 1
            if not ok and len(first_missing) < 5:
                first_missing.append(str(path))
    missing = sum(c[k] for c in counts.values() for k in c if k.endswith("_missing"))
    if missing:
        problems.append(f"{missing} media file(s) the phases read are missing under {root}, e.g. "
                        + ", ".join(first_missing))
    return {d: dict(c) for d, c in sorted(counts.items())}


def plan_training(config: TrainConfig, check_media: bool = True) -> dict[str, Any]:
    """The plan as a dict; PlanError listing every problem when the config cannot run."""
    problems: list[str] = []
    records, manifests = _manifests(config, problems)
    model = _model_source(config, problems)
    phases = [p for p in (_phase(ph, records, config.seed, problems) for ph in config.phases) if p is not None]
    used = [r for p in phases for r in p.pop("_records")]
    plan: dict[str, Any] = {"config": config.source, "model": model, "manifests": manifests,
                            "train_records": len(records), "phases": phases}
    if config.data.features:
        folder = Path(config.data.features)
        if not folder.is_dir():
            problems.append(f"data.features {folder} is not a folder (make it with `nanoemox cache-features`)")
        plan["media"] = f"read from the feature cache {folder} (checked when training opens it)"
    elif check_media:
        plan["media"] = _media(used, Path(config.data.root), problems)
    if problems:
        raise PlanError(f"{config.source or 'training config'}: {len(problems)} problem(s):\n- "
                        + "\n- ".join(problems))
    return plan


def format_plan(plan: dict[str, Any]) -> str:
    lines = [f"config: {plan['config']}", f"model: {plan['model']}",
             f"training records (split train): {plan['train_records']}"]
    lines += [f"  {m['manifest']}: {m['train']} of {m['records']}" for m in plan["manifests"]]
    for phase in plan["phases"]:
        lines.append(f"phase {phase['name']}: trains {', '.join(phase['trainable'])}; {phase['steps']} steps x "
                     f"{phase['batch']} samples = {phase['samples_seen']} samples seen per process; lr {phase['lr']}; "
                     f"mixture mode {phase['mode']}")
        for group, info in phase["groups"].items():
            lines.append(f"  {group:28s} p={info['probability']:.3f}  pool {info['pool']:>8d}  "
                         f"samples {info['samples']:>9d}  epochs {info['epochs']:.2f}")
        for task, datasets in phase["pool_by_task_and_dataset"].items():
            lines.append(f"    {task} pool: " + ", ".join(f"{d} {n}" for d, n in sorted(datasets.items())))
    media = plan.get("media")
    if isinstance(media, dict):
        lines.append("media files the phases read:")
        lines += [f"  {d}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for d, c in media.items()]
    elif media:
        lines.append(f"media: {media}")
    lines.append("(dry run: no model was built and nothing was written)")
    return "\n".join(lines) + "\n"
