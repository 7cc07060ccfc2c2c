"""Rough time of a cell on an idle 2-core CPU: for planning (``--dry-run``), and as the relative
cost of cells when the study scales them by the pace it measures
(:func:`remaining_at_measured_pace`).

The rates are seconds per image, calibrated on the ``cpu`` preset's cells (noisy built-in scenes at
300 px, the tiny segmentation backbone, the frozen VGG16 detector with CenterNet-style heads) as
they ran on the project's 2-core development machine: three one-thread processes, one per seed,
which together train as fast as one two-thread process, so each cell's idle time is a third of
its measured time. They scale with the input's pixel count; for other backbones or data there is
no estimate (None). A running study never shows these a priori numbers as its time left.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from downsizenet_hub.data import SCENES_PRESETS
from downsizenet_hub.engine.progress import format_duration
from downsizenet_hub.study.cells import Cell
from downsizenet_hub.study.config import PretrainSettings

__all__ = ["estimate_seconds", "format_duration", "remaining_at_measured_pace", "run_seconds"]

_REFERENCE_PIXELS = 300 * 300
#: Seconds per image at 300 px: segmentation training step (a learned resizer's full-resolution
#: convolutions are the gap: a 2x2 DownsizeNet or another learned resizer, talebi, a DownsizeNet
#: with the antialias neighbourhood, whose 4x4 grid of logits costs half as much again),
#: evaluation, and the detection heads' step with cached features.
SEGMENTATION_TRAIN_S = {"fixed": 0.023, "learned": 0.033, "talebi": 0.041, "antialias": 0.048}
SEGMENTATION_EVAL_S = 0.02
TRANSFER_TRAIN_S = 0.004
TRANSFER_FIRST_EPOCH_EXTRA_S = 0.017  # computing resizer + VGG16 features once per image
TRANSFER_EVAL_S = 0.03
#: Share of a segmentation step spent after the resize at x0.3 (backbone and head); it grows with
#: the square of the scale, the rest (resizer, loss at full resolution) does not. A transfer's
#: whole cost (VGG16 features and heads at the output size) grows with the square of the scale.
BACKBONE_SHARE_AT_X03 = 0.25
#: Per cell: building datasets, loading VGG16, writing files.
CELL_OVERHEAD_S = {"segmentation": 2.0, "transfer": 5.0}


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
        share = BACKBONE_SHARE_AT_X03
        step = SEGMENTATION_TRAIN_S[_rate(cell)] * (1 - share + share * (cell.scale / 0.3) ** 2)
        seconds = cell.epochs * train * step + val * SEGMENTATION_EVAL_S
    else:
        seconds = (
            cell.epochs * train * TRANSFER_TRAIN_S
            + (train + val) * TRANSFER_FIRST_EPOCH_EXTRA_S
            + val * TRANSFER_EVAL_S
        ) * (cell.scale / 0.3) ** 2
    return seconds * size + CELL_OVERHEAD_S[cell.task]


def _rate(cell: Cell) -> str:
    """Which segmentation rate a cell's resizer trains at."""
    resizer = cell.resizer
    if not resizer.learned:
        return "fixed"
    if resizer.architecture == "talebi":
        return "talebi"
    return "antialias" if resizer.config.get("neighbourhood") == "antialias" else "learned"


#: Cores of the machine the rates were measured on. There, three one-thread processes together
#: trained as fast as one two-thread process: a core does the same work either way, so workers
#: gain through more cores, not on their own.
CALIBRATION_CORES = 2


def run_seconds(cells: Sequence[Cell], workers: int = 1, cores: int | None = None) -> float | None:
    """Rough wall time of computing ``cells`` with ``workers`` one-thread workers on ``cores``
    cores (default: this machine's): the cells' total at the calibration machine's pace, spread
    over the cores the workers can use, and never less than the longest chain of a segmentation
    cell and the transfer that loads it. None when a cell has no estimate."""
    rough = {cell.key: estimate_seconds(cell) for cell in cells}
    if any(seconds is None for seconds in rough.values()):
        return None
    seconds = {key: value or 0.0 for key, value in rough.items()}
    total = sum(seconds.values())
    if workers <= 1:
        return total
    usable = min(workers, cores or os.cpu_count() or 1)
    chain = max(
        seconds[c.key] + (seconds.get(c.source.key, 0.0) if c.source is not None else 0.0)
        for c in cells
    )
    return max(total * CALIBRATION_CORES / max(usable, CALIBRATION_CORES), chain)


def remaining_at_measured_pace(
    timed: Sequence[tuple[str, float | None, float]],
    remaining: Sequence[tuple[str, float | None]],
) -> float | None:
    """Seconds the ``remaining`` cells (task, rough estimate) should take at the pace measured on
    the cells in ``timed`` (task, rough estimate, measured seconds) computed so far in this run.

    Each task's cells are scaled by the pace of that task's timed cells, and by the pace of all
    timed cells until one of its own has been timed: the rough rates are off by different
    factors per task (in the quickstart on the idle 2-core machine, a segmentation cell took 1.1x
    its estimate and a transfer cell 1.8x). None until a cell with an estimate has been timed,
    or when a remaining cell has no estimate.
    """
    known = [(task, rough, took) for task, rough, took in timed if rough]
    if not known or any(rough is None for _, rough in remaining):
        return None

    def pace(cells: Sequence[tuple[str, float | None, float]]) -> float:
        return sum(took for _, _, took in cells) / sum(rough or 0.0 for _, rough, _ in cells)

    overall = pace(known)
    tasks = {task for task, _, _ in known}
    by_task = {task: pace([c for c in known if c[0] == task]) for task in tasks}
    return sum(by_task.get(task, overall) * (rough or 0.0) for task, rough in remaining)
