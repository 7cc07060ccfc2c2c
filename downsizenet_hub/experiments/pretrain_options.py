"""What ``downsizenet pretrain`` takes (:class:`PretrainOptions`) and gives back
(:class:`PretrainReport`). Defaults come from :mod:`.defaults`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.experiments import defaults
from downsizenet_hub.experiments.common import ArmResult, DataOptions

__all__ = ["PretrainOptions", "PretrainReport"]


@dataclass
class PretrainOptions:
    """Everything ``downsizenet pretrain`` takes; see ``downsizenet pretrain --help``."""

    data: DataOptions = field(default_factory=DataOptions)
    # The resizer under training: "downsizenet" or a learned baseline ("talebi", "strided"), or
    # a fixed one.
    resizer: str = "downsizenet"
    # Config overrides for the learned resizer: DownsizeNetConfig fields for downsizenet (also
    # when it is the --compare arm), TalebiConfig or StridedConfig fields for a baseline. The
    # strided resizer's k comes from the scale (1/k) unless given.
    resizer_config: dict[str, Any] = field(default_factory=dict)
    # The baseline trained beside it under identical settings (None: no comparison).
    compare: str | None = "bilinear"
    backbone: str = "tiny"
    width: int = 32
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=defaults.PRETRAIN_EPOCHS,
            batch_size=defaults.PRETRAIN_BATCH_SIZE,
            lr=defaults.PRETRAIN_LR,
        )
    )
    run_dir: Path = Path("runs/pretrain")
    resume: bool = False
    publish: str | None = None
    force: bool = False
    push_to_hub: str | None = None
    progress: bool = True


@dataclass
class PretrainReport:
    arms: list[ArmResult]
    published: str | None
    pushed: str | None
    summary_path: Path
    # The trained learned resizer (None when --resizer is a fixed one), on the CPU, eval mode.
    resizer: nn.Module | None = None
