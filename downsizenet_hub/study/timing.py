"""Rough time of a cell on a 2-core CPU, for planning (``--dry-run``) and progress lines.

The rates are seconds per image measured on the project's 2-core development machine (shared
with other jobs, so on the slow side) for the built-in scenes at 300 px with the tiny
segmentation backbone and the frozen VGG16 detector. They scale with the input's pixel count; for
other backbones or devices there is no estimate (None).
"""

from __future__ import annotations

import math

from downsizenet_hub.data import SCENES_PRESETS
from downsizenet_hub.study.cells import Cell
from downsizenet_hub.study.config import PretrainSettings

_REFERENCE_PIXELS = 300 * 300
#: Seconds per image at 300 px: segmentation training step (DownsizeNet's texture branch runs at
#: full resolution, hence the gap), evaluation, and the detection heads' step with cached features.
SEGMENTATION_TRAIN_S = {"learned": 0.40, "fixed": 0.16}
SEGMENTATION_EVAL_S = 0.17
TRANSFER_TRAIN_S = 0.45
TRANSFER_FIRST_EPOCH_EXTRA_S = 0.12  # computing resizer + VGG16 features once per image
TRANSFER_EVAL_S = 0.30
#: Per cell: building datasets, loading VGG16, writing files.
CELL_OVERHEAD_S = {"segmentation": 4.0, "transfer": 8.0}


def estimate_seconds(cell: Cell) -> float | None:
    """About how long ``cell`` takes on a 2-core CPU; None where the rates do not apply."""
    data = cell.data
    if data.name != "scenes" or (
        isinstance(cell.settings, PretrainSettings) and cell.settings.backbone != "tiny"
    ):
        return None
    default_train, default_val = SCENES_PRESETS["default"]
    train = data.train_images or default_train
    val = data.val_images or (default_val if data.train_images is None else max(1, train // 4))
    height, width = data.image_size or (300, 300)
    size = height * width / _REFERENCE_PIXELS
    if cell.task == "segmentation":
        step = SEGMENTATION_TRAIN_S["learned" if cell.resizer.learned else "fixed"]
        seconds = cell.epochs * train * step + val * SEGMENTATION_EVAL_S
    else:
        seconds = (
            cell.epochs * train * TRANSFER_TRAIN_S
            + (train + val) * TRANSFER_FIRST_EPOCH_EXTRA_S
            + val * TRANSFER_EVAL_S
        )
    return seconds * size + CELL_OVERHEAD_S[cell.task]


def format_duration(seconds: float | None) -> str:
    """``"45 s"``, ``"3.2 min"``, ``"1.5 h"``; ``"n/a"`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
