"""Training configuration: the P2E curriculum (and joint training) as data.

A run is a list of phases. Each phase names the parameter groups it trains
(`nanoemox.model.groups`), its optimiser settings, its number of optimizer steps, its
batch shape and the task mixture it samples from. YAML files under `configs/` hold
runs; `load_train_config` reads them into these dataclasses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nanoemox.model.groups import SAVED_GROUPS, check_groups
from nanoemox.train.absent import DROPPABLE
from nanoemox.tasks import TASK_NAMES

SCHEDULES = ("constant", "linear", "cosine", "constant_with_warmup")


@dataclass
class PhaseConfig:
    """One curriculum phase."""

    name: str
    trainable: list[str]
    steps: int
    lr: float
    tasks: dict[str, float]  # task -> sampling weight (normalised)
    datasets: list[str] | None = None  # keep only these source datasets (None: all)
    where: dict[str, list] | None = None  # keep records whose extra[key] is one of the values
    mixture_mode: str = "task"  # "task": true per-sample task probabilities; "dataset": the authors' mode
    # Tasks (mer, mir, msa) whose draws pick the answer's class uniformly first (data.mixture);
    # the task shares stay as `tasks` says.
    balance: list[str] | None = None
    schedule: str = "cosine"
    warmup_steps: int = 0
    micro_batch: int = 3
    grad_accum: int = 4
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    # Probability per sample of training without a modality (blank video, silence or no
    # subtitle), so the model learns that a missing modality is no evidence. Not in the
    # paper; off unless a phase sets it.
    modality_dropout: dict[str, float] | None = None
    # Learning-rate factor per trainable group (e.g. {scene_adapter: 0.1}): those groups learn at
    # lr times the factor; the others at lr.
    lr_scale: dict[str, float] | None = None

    def __post_init__(self) -> None:
        check_groups(self.trainable)
        for group, factor in (self.lr_scale or {}).items():
            if group not in self.trainable or not float(factor) > 0:
                raise ValueError(f"phase {self.name!r}: lr_scale takes trainable groups {self.trainable} with a "
                                 f"positive factor, got {group!r}: {factor!r}")
        unsaved = [g for g in self.trainable if g not in SAVED_GROUPS]
        if unsaved:
            # Model folders and checkpoints refer to the backbones and store only these groups:
            # backbone weights trained here would be lost without a word.
            raise ValueError(f"phase {self.name!r}: {unsaved} cannot be trained: model folders and checkpoints store "
                             f"only {list(SAVED_GROUPS)} (the backbones stay frozen; fine-tune the LM through `lora`)")
        for modality, p in (self.modality_dropout or {}).items():
            if modality not in DROPPABLE or not 0.0 <= float(p) < 1.0:
                raise ValueError(f"phase {self.name!r}: modality_dropout takes face/voice/text with a probability "
                                 f"in [0, 1), got {modality!r}: {p!r}")
        unknown = [t for t in self.tasks if t not in TASK_NAMES]
        if unknown:
            raise ValueError(f"phase {self.name!r}: unknown task(s) {unknown}; known: {TASK_NAMES}")
        if not self.tasks or any(w < 0 for w in self.tasks.values()) or sum(self.tasks.values()) <= 0:
            raise ValueError(f"phase {self.name!r}: task weights must be non-negative and not all zero")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"phase {self.name!r}: schedule must be one of {SCHEDULES}")
        if self.mixture_mode not in ("task", "dataset"):
            raise ValueError(f"phase {self.name!r}: mixture_mode must be 'task' or 'dataset'")
        if self.steps < 0 or self.micro_batch < 1 or self.grad_accum < 1:
            raise ValueError(f"phase {self.name!r}: steps >= 0, micro_batch >= 1 and grad_accum >= 1 are required")
        self.betas = tuple(self.betas)

    def samples_per_step(self, world_size: int = 1) -> int:
        return self.micro_batch * self.grad_accum * world_size


@dataclass
class ModelSource:
    """Where the initial model comes from: a preset (backbones from its references) or a model folder."""

    preset: str | None = "tiny"
    path: str | None = None  # a model folder (e.g. from `nanoemox init-model` or an earlier run)
    face_checkpoint: str | None = None  # FaceXFormer weights for a preset build
    # A non-tiny model with a random frozen backbone is refused unless this is true.
    allow_random_backbones: bool = False


@dataclass
class DataConfig:
    root: str = "."
    train: list[str] = field(default_factory=list)  # manifest files (relative to the config file or absolute)
    features: str | None = None  # a feature cache folder: train from cached encoder outputs
    workers: int = 0  # DataLoader worker processes decoding media


@dataclass
class TrainConfig:
    model: ModelSource
    data: DataConfig
    phases: list[PhaseConfig]
    seed: int = 0
    save_every: int = 500  # optimizer steps between checkpoints
    keep_last: int = 2
    log_every: int = 10
    mixed_precision: str = "auto"  # auto: bf16 on GPU, none on CPU; or "no" / "bf16" / "fp16"
    source: str | None = None  # the YAML file this came from

    def __post_init__(self) -> None:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        if not self.phases:
            raise ValueError("a training config needs at least one phase")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _resolve(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def train_config_from_dict(data: dict[str, Any], base: Path = Path(".")) -> TrainConfig:
    """Build a TrainConfig from plain data; relative paths are taken from `base`."""
    data = dict(data)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown training config field(s) {sorted(unknown)}; known: {sorted(known)}")
    model = ModelSource(**(data.pop("model", None) or {}))
    model.path = _resolve(model.path, base)
    model.face_checkpoint = _resolve(model.face_checkpoint, base)
    data_cfg = DataConfig(**(data.pop("data", None) or {}))
    data_cfg.root = _resolve(data_cfg.root, base)
    data_cfg.train = [_resolve(p, base) for p in data_cfg.train]
    data_cfg.features = _resolve(data_cfg.features, base)
    phases = [PhaseConfig(**p) for p in data.pop("phases", [])]
    return TrainConfig(model=model, data=data_cfg, phases=phases, **data)


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML run description; `overrides` replace top-level sections (e.g. {"data": {...}}).

    Relative paths in the file and in `overrides` are taken from the file's folder; the
    config holds them absolute. Callers with paths relative to somewhere else (the command
    line: the working directory) pass them absolute.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if overrides:
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    try:
        config = train_config_from_dict(data, base=path.parent)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    config.source = str(path.resolve())
    return config
