"""What a training run is told (:class:`TrainConfig`) and gives back (:class:`FitResult`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from downsizenet_hub.resizing.config import config_from_dict

OptimizerName = Literal["adamw", "sgd"]
Schedule = Literal["constant", "cosine", "poly"]
AmpMode = Literal["auto", "on", "off"]

_OPTIMIZERS = ("adamw", "sgd")
_SCHEDULES = ("constant", "cosine", "poly")
_AMP_MODES = ("auto", "on", "off")
#: Fields that change what is logged, never what is learned: a resume may change them freely.
RESULT_NEUTRAL_FIELDS = frozenset({"log_every"})
#: The largest seed (2**32 - 1, what every library's generator accepts as a seed).
MAX_SEED = 2**32 - 1


class TrainingError(RuntimeError):
    """Training stopped and cannot go on by itself (e.g. a non-finite loss). One-line message."""


class TrainingInterrupted(TrainingError):
    """Training was stopped by Ctrl-C (SIGINT); the checkpoint it names resumes exactly.

    ``epoch`` and ``step`` say where a resume continues: ``step`` completed steps into 1-based
    ``epoch + 1`` (``step == 0``: at the start of that epoch).
    """

    def __init__(self, message: str, *, checkpoint: Path | None, epoch: int, step: int) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.step = step


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Everything here except ``log_every`` must match on resume."""

    # Passes over the training set.
    epochs: int = 10
    # Images per optimiser step *per process*; under torchrun the global batch is this x world size.
    # The last incomplete batch of an epoch is dropped (batch norm cannot train on one image).
    batch_size: int = 8
    # Peak learning rate; the schedule scales it per step.
    lr: float = 1e-3
    # AdamW: decoupled weight decay; SGD: L2 penalty.
    weight_decay: float = 1e-4
    # "adamw" or "sgd" (with ``momentum``).
    optimizer: OptimizerName = "adamw"
    # SGD momentum (unused by AdamW).
    momentum: float = 0.9
    # Per-step learning-rate factor: "constant"; "cosine" from 1 to 0 over the run; "poly" as
    # DeepLab, (1 - step / total) ** 0.9.
    schedule: Schedule = "cosine"
    # Max global L2 norm of the gradients; None turns clipping off (non-finite norms still stop).
    grad_clip: float | None = 1.0
    # Everything random in training derives from (seed, epoch, rank): data order, augmentation,
    # dropout. Model initialisation happens before fit() and is the caller's to seed.
    seed: int = 0
    # DataLoader worker processes; 0 loads in the main process (required for mid-epoch checkpoints).
    num_workers: int = 0
    # Mixed precision: "auto" is float16 autocast + GradScaler on CUDA and off elsewhere; "on"
    # requires CUDA; "off" never.
    amp: AmpMode = "auto"
    # Evaluate every N epochs; the last epoch is always evaluated.
    eval_every: int = 1
    # Write a train.log line every N steps; 0 writes epoch summaries only.
    log_every: int = 50
    # "auto": CUDA when available (cuda:LOCAL_RANK under torchrun), else CPU; or "cpu", "cuda",
    # "cuda:1".
    device: str = "auto"
    # torch.use_deterministic_algorithms (warn-only) and deterministic cuDNN for the run. CPU
    # training is deterministic without it; on CUDA it costs speed.
    deterministic: bool = False
    # DistributedDataParallel's flag: set it when some trainable parameters skip a step's graph.
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}.")
        for name in ("seed", "num_workers", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 0, got {value!r}.")
        if self.seed > MAX_SEED:  # torch.manual_seed overflows past 64 bits
            raise ValueError(f"TrainConfig.seed must be at most {MAX_SEED}, got {self.seed}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}.")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"TrainConfig.momentum must be in [0, 1), got {self.momentum!r}.")
        if self.grad_clip is not None and not (
            self.grad_clip > 0 and math.isfinite(self.grad_clip)
        ):
            raise ValueError(
                f"TrainConfig.grad_clip must be a positive number or None, got {self.grad_clip!r}."
            )
        _check_choice("optimizer", self.optimizer, _OPTIMIZERS)
        _check_choice("schedule", self.schedule, _SCHEDULES)
        _check_choice("amp", self.amp, _AMP_MODES)
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(
                f"TrainConfig.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (stored in checkpoints and metrics.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (through the package's one
        dict-to-config helper, ``resizing.config.config_from_dict``)."""
        return config_from_dict(cls, values, "TrainConfig")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"TrainConfig.{name} must be one of {', '.join(choices)}; got {value!r}.")


@dataclass
class EpochRecord:
    """One epoch of the run's history (1-based ``epoch``); ``metrics`` empty if not evaluated."""

    epoch: int
    # Mean over the epoch's steps of the loss averaged across processes.
    train_loss: float
    # Learning rate after the epoch's last step (first parameter group).
    lr: float
    # Training images seen in the epoch, all processes together.
    images: int
    # Seconds spent in training steps (evaluation excluded).
    train_seconds: float
    eval_seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.train_seconds if self.train_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": self.images_per_s}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass
class FitResult:
    """What :func:`~downsizenet_hub.engine.fit` returns (on every process)."""

    # Metrics of the last evaluated epoch (empty without a validation set).
    final_metrics: dict[str, float]
    history: list[EpochRecord]
    metrics_path: Path
    log_path: Path
    checkpoint_path: Path
    # Seconds this call took (a resumed run counts only its own part).
    wall_time_s: float
    # Training throughput over the whole history, all processes together, evaluation excluded.
    images_per_s: float
    # Completed epochs; < config.epochs never happens on return (interruptions raise).
    epochs_completed: int
    # Completed epochs found in the checkpoint when resuming (None for a fresh run).
    resumed_from_epoch: int | None = None


def throughput(history: list[EpochRecord]) -> float:
    """Training images per second over ``history`` (evaluation time excluded)."""
    seconds = sum(record.train_seconds for record in history)
    return sum(record.images for record in history) / seconds if seconds > 0 else 0.0


def final_metrics(history: list[EpochRecord]) -> dict[str, float]:
    """Metrics of the last evaluated epoch; empty if none was evaluated."""
    evaluated = [record for record in history if record.metrics]
    return dict(evaluated[-1].metrics) if evaluated else {}
