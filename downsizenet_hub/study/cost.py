"""What a study's pipelines cost: multiply-adds per image, for the cost/accuracy frontier.

Counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; MACs
= FLOPs / 2) on one image at the study's input size, in inference mode:

- segmentation: the whole pipeline (resizer, tiny backbone and DeepLabv3+ head);
- detection: the resizer and the VGG16 trunk up to conv4_3 it feeds (the detection heads are
  the same for every resizer and small beside the trunk; they are left out).

A resizer's cost does not depend on its weights, so fresh resizers of the same configuration
are counted; the frozen trunk is a randomly initialised VGG16 for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from downsizenet_hub.data import dataset_info
from downsizenet_hub.experiments.pretrain import PretrainOptions, arm_config, build_pipeline
from downsizenet_hub.pipelines.detection import CONV4_3_END
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.study.aggregate import Estimate
from downsizenet_hub.study.cell_run import CellResult, data_options
from downsizenet_hub.study.cells import METRIC_NAMES, PRIMARY_METRIC, TASK_NAMES, Cell, StudyPlan
from downsizenet_hub.study.config import BASELINE, PretrainSettings, TransferExperiment
from downsizenet_hub.study.report import RowSummary

#: Per task, per (resizer, variant): (multiply-adds per image, score, scale, the row's cells).
CostPoints = dict[str, dict[tuple[str, str], list[tuple[float, Estimate, float, list[Cell]]]]]


@lru_cache(maxsize=256)
def cell_macs(cell: Cell) -> int:
    """Multiply-adds per image of the pipeline ``cell`` trains (see the module docstring)."""
    info = dataset_info(cell.data.name)
    height, width = cell.data.image_size or info.image_size
    image = torch.zeros(1, 3, height, width)
    settings = cell.settings
    options = PretrainOptions(
        data=data_options(cell.data, cell.variant, cell.scale),
        resizer=cell.resizer.ref,
        resizer_config=cell.resizer.config,
        compare=None,
    )
    if isinstance(settings, PretrainSettings):
        options.backbone, options.width = settings.backbone, settings.width
    if cell.task == "segmentation":
        pipeline = build_pipeline(options, cell.resizer.ref, info.num_classes).eval()
        return _count(lambda: pipeline(image))
    resizer = create_resizer(cell.resizer.ref, **arm_config(options, cell.resizer.ref)).eval()
    trunk = _vgg16_to_conv4_3()
    return _count(lambda: trunk(resizer(image, scale_factor=cell.scale)))


def _count(forward: Callable[[], object]) -> int:
    # With autograd on, as in training: DownsizeNet's inference path runs its texture
    # convolutions in ways FlopCounterMode does not see (the counts would miss them).
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        forward()
    return counter.get_total_flops() // 2


@lru_cache(maxsize=1)
def _vgg16_to_conv4_3() -> nn.Module:
    from torchvision.models import vgg16

    return vgg16().features[:CONV4_3_END].eval()


def cost_points(plan: StudyPlan, summaries: Sequence[RowSummary]) -> CostPoints:
    """Per task, per (resizer, variant): ``(multiply-adds per image, score, scale, cells)`` of
    every row the study has, learned resizers at their longest pretraining."""
    longest = {
        e.title: max(e.pretrain_epochs)
        for e in plan.config.experiments
        if isinstance(e, TransferExperiment)
    }
    points: CostPoints = {}
    seen: set[tuple[str, str, str, float]] = set()
    for summary in summaries:
        row = summary.row
        if row.pretrain_epochs is not None and row.pretrain_epochs != longest.get(row.experiment):
            continue
        for task, cells in row.cells.items():
            score = summary.scores.get(task, {}).get(PRIMARY_METRIC[task])
            where = (task, row.resizer.label, row.variant, row.scale)
            if score is None or where in seen:
                continue
            seen.add(where)
            series = points.setdefault(task, {}).setdefault((row.resizer.label, row.variant), [])
            series.append((float(cell_macs(cells[0])), score, row.scale, cells))
    # Bilinear trained only as a learned row's reference (the quickstart has no bilinear
    # segmentation row of its own) still gets its point, so "vs bilinear" has a reference.
    for summary in summaries:
        row = summary.row
        if row.pretrain_epochs is not None and row.pretrain_epochs != longest.get(row.experiment):
            continue
        for task, cells in row.baseline.items():
            score = summary.baseline.get(task)
            where = (task, BASELINE, row.variant, row.scale)
            if score is None or not cells or where in seen:
                continue
            seen.add(where)
            series = points.setdefault(task, {}).setdefault((BASELINE, row.variant), [])
            series.append((float(cell_macs(cells[0])), score, row.scale, cells))
    return points


def cost_table(points: CostPoints, results: dict[str, CellResult]) -> str:
    """results.md's cost table: multiply-adds per image beside bilinear's at the same scale, and
    the segmentation cells' measured training throughput (median over seeds)."""
    lines = [
        "| task | resizer | data | scale | GMACs / image | vs bilinear | score | "
        "training images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, series in points.items():
        bilinear = {
            (variant, scale): macs
            for (label, variant), rows in series.items()
            if label == BASELINE
            for macs, _, scale, _ in rows
        }
        for (label, variant), rows in series.items():
            for macs, score, scale, cells in sorted(rows, key=lambda r: r[2]):
                reference = bilinear.get((variant, scale))
                ratio = f"{macs / reference:.2f}x" if reference else "-"
                rates = sorted(
                    results[c.key].images_per_s
                    for c in cells
                    if c.key in results and task == "segmentation"
                )
                rate = f"{rates[len(rates) // 2]:.1f}" if rates else "-"
                metric = METRIC_NAMES[PRIMARY_METRIC[task]]
                lines.append(
                    f"| {TASK_NAMES[task]} | {label} | {variant} | x{scale:g} | {macs / 1e9:.3f} |"
                    f" {ratio} | {score.mean:.2f} {metric} | {rate} |"
                )
    return "\n".join(lines)
