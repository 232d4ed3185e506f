"""Training: the P2E curriculum as data (config), the Accelerate trainer, checkpoints and resume."""

from nanoemox.train.config import DataConfig, ModelSource, PhaseConfig, TrainConfig, load_train_config
from nanoemox.train.trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "DataConfig",
    "ModelSource",
    "PhaseConfig",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "load_train_config",
]
