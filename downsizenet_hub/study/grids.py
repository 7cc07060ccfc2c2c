"""The resizers side by side on validation images (:func:`resizer_grids`), as
:func:`downsizenet_hub.tools.compare.compare_figure` draws them: which resizers, at which scale."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder, data_options
from downsizenet_hub.study.cells import Cell, StudyPlan
from downsizenet_hub.study.config import BASELINE, TransferExperiment
from downsizenet_hub.tools.compare import compare_figure


def grid_resizers(plan: StudyPlan, results_dir: Path) -> tuple[float, list[tuple[str, nn.Module]]]:
    """The scale and resizers of the comparison grid: the fixed ones in the study, then one trained
    DownsizeNet per neighbourhood (first seed and variant, most epochs, default-most config), then
    each learned baseline trained at the grid's scale (same seed and variant, most epochs)."""
    cells = [c for c in plan.cells if c.task == "segmentation" and c.resizer.learned]
    transfers = [e for e in plan.config.experiments if isinstance(e, TransferExperiment)]
    scale = transfers[0].scale if transfers else (cells[0].scale if cells else 0.3)
    fixed = dict.fromkeys(
        [BASELINE, *(c.resizer.label for c in plan.cells if not c.resizer.learned)]
    )
    chosen: dict[str, Cell] = {}
    seed, variant = plan.config.seeds[0], plan.config.variants[0]
    for cell in cells:
        if cell.seed != seed or cell.variant != variant:
            continue
        if cell.resizer.is_downsizenet:
            kind = str(cell.resizer.config.get("neighbourhood", "bilinear"))
        elif abs(cell.scale - scale) < 1e-9:
            kind = cell.resizer.label  # a learned baseline, only at the grid's scale
        else:
            continue
        best = chosen.get(kind)
        if best is None or _preference(cell, scale) > _preference(best, scale):
            chosen[kind] = cell
    resizers: list[tuple[str, nn.Module]] = [(name, create_resizer(name)) for name in fixed]
    for cell in chosen.values():
        folder = cell_folder(results_dir, cell) / RESIZER_DIR
        if folder.is_dir():
            label = f"{cell.resizer.label}\n(x{cell.scale:g}, {cell.epochs} ep, seed {cell.seed})"
            resizers.append((label, create_resizer(str(folder))))
    return scale, resizers


def _preference(cell: Cell, scale: float) -> tuple[bool, int, int]:
    """Trained at the grid's scale, then fewest overrides (closest to the paper's), most epochs."""
    return (abs(cell.scale - scale) < 1e-9, -len(cell.resizer.config), cell.epochs)


def resizer_grids(plan: StudyPlan, results_dir: Path, count: int) -> list[Figure]:
    """``count`` comparison figures (see :func:`downsizenet_hub.tools.compare.compare_figure`)."""
    if count < 1:
        return []
    scale, resizers = grid_resizers(plan, results_dir)
    if not any(isinstance(m, DownsizeNet) for _, m in resizers):
        return []  # no trained DownsizeNet yet
    # The segmentation val split as the cells saw it (already built by them); built directly,
    # not through DataOptions.datasets, whose torchrun barriers only rank 0 would reach here.
    options = data_options(plan.config.pretrain.data, plan.config.variants[0], scale)
    val_set = options.build("val", "segmentation")
    figures = []
    for index in range(min(count, len(val_set))):
        image = val_set[index][0].as_subclass(torch.Tensor).float()
        figures.append(compare_figure(image, resizers, scale_factor=scale))
    return figures
