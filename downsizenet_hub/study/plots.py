"""The study's figures (matplotlib, no pyplot state): score against scale, score against
pretraining epochs, and the resizers side by side on validation images.

Points are means over seeds; error bars are the 95% t-intervals of the mean (none with one seed).
Fixed baselines in the epochs plot do not depend on pretraining, so they are drawn as horizontal
lines with their interval as a band.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from downsizenet_hub.compare import compare_figure, save_figure
from downsizenet_hub.hub import from_pretrained
from downsizenet_hub.resizer import DownsizeNet
from downsizenet_hub.resizers import build_resizer
from downsizenet_hub.study.aggregate import Estimate
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder, data_options
from downsizenet_hub.study.cells import PRIMARY_METRIC, Cell, StudyPlan
from downsizenet_hub.study.config import (
    BASELINE,
    SegmentationExperiment,
    TransferExperiment,
)
from downsizenet_hub.study.report import RowSummary

_DPI = 110
#: One colour per resizer in every figure, so that bilinear is always the same line.
_COLOURS = {"bilinear": "tab:orange", "downsizenet": "tab:blue", "antialias": "tab:green",
            "area": "tab:red", "bicubic": "tab:purple"}  # fmt: skip
_MORE_COLOURS = ("tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black")
_ONE_SEED = "one seed: no error bars, and differences this small may be seed noise"


def _colour(label: str) -> str:
    if label not in _COLOURS:
        _COLOURS[label] = _MORE_COLOURS[(len(_COLOURS) - 5) % len(_MORE_COLOURS)]
    return _COLOURS[label]


def _errorbar(axes: Axes, xs: list[float], estimates: list[Estimate], label: str) -> None:
    means = [e.mean for e in estimates]
    low = [e.mean - e.ci_low if e.ci_low is not None else 0.0 for e in estimates]
    high = [e.ci_high - e.mean if e.ci_high is not None else 0.0 for e in estimates]
    axes.errorbar(
        xs, means, yerr=[low, high], marker="o", capsize=3, label=label, color=_colour(label)
    )


def _band(axes: Axes, value: Estimate, label: str, name: str, style: str) -> None:
    colour = _colour(name)
    axes.axhline(value.mean, linestyle=style, linewidth=1.2, label=label, color=colour)
    if value.ci_low is not None and value.ci_high is not None:
        axes.axhspan(value.ci_low, value.ci_high, color=colour, alpha=0.12)


def _note_single_seed(figure: Figure, summaries: Sequence[RowSummary]) -> None:
    counts = [len(seeds) for s in summaries for seeds in s.seeds.values() if seeds]
    if counts and max(counts) == 1:
        figure.suptitle(_ONE_SEED, fontsize=9, color="dimgray")


def score_vs_scale(plan: StudyPlan, summaries: Sequence[RowSummary]) -> Figure | None:
    """mIoU against output scale for segmentation experiments with several scales, per variant."""
    panels: list[tuple[str, str, list[RowSummary]]] = []
    for experiment in plan.config.experiments:
        if not isinstance(experiment, SegmentationExperiment) or len(experiment.scales) < 2:
            continue
        rows = [s for s in summaries if s.row.experiment == experiment.title]
        for variant in dict.fromkeys(s.row.variant for s in rows):
            same = [s for s in rows if s.row.variant == variant]
            panels.append((experiment.title, variant, same))
    if not panels:
        return None
    figure = Figure(figsize=(5.2 * len(panels), 4.0), dpi=_DPI, layout="constrained")
    axes_row = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (title, variant, rows) in zip(axes_row, panels, strict=True):
        for label in dict.fromkeys(s.row.resizer.label for s in rows):
            points = [
                (s.row.scale, s.scores["segmentation"]["miou"])
                for s in rows
                if s.row.resizer.label == label and "miou" in s.scores.get("segmentation", {})
            ]
            points.sort()
            if points:
                _errorbar(axes, [p[0] for p in points], [p[1] for p in points], label)
        axes.set(title=f"{title}\n({variant} data)", xlabel="output scale", ylabel="mIoU (%)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    _note_single_seed(figure, summaries)
    return figure


def score_vs_epochs(plan: StudyPlan, summaries: Sequence[RowSummary]) -> Figure | None:
    """Segmentation mIoU and transferred mAP@0.5 against pretraining epochs, per variant."""
    panels: list[tuple[TransferExperiment, str, list[RowSummary]]] = []
    for experiment in plan.config.experiments:
        if isinstance(experiment, TransferExperiment):
            rows = [s for s in summaries if s.row.experiment == experiment.title]
            for variant in dict.fromkeys(s.row.variant for s in rows):
                panels.append((experiment, variant, [s for s in rows if s.row.variant == variant]))
    if not panels:
        return None
    figure = Figure(figsize=(10.0, 3.8 * len(panels)), dpi=_DPI, layout="constrained")
    grid = figure.subplots(len(panels), 2, squeeze=False)
    for (experiment, variant, rows), (seg_axes, det_axes) in zip(panels, grid, strict=True):
        learned = sorted(
            (s for s in rows if s.row.pretrain_epochs is not None),
            key=lambda s: s.row.pretrain_epochs or 0,
        )
        _epochs_panel(seg_axes, learned, "segmentation", experiment.resizer.label)
        seg_axes.set(
            title=f"Segmentation, {variant} data, x{experiment.scale:g}",
            xlabel="pretraining epochs", ylabel="mIoU (%)",
        )  # fmt: skip
        _epochs_panel(det_axes, learned, "transfer", experiment.resizer.label)
        for summary in rows:
            score = summary.scores.get("transfer", {}).get("map_50")
            if summary.row.pretrain_epochs is None and score is not None:
                name = summary.row.resizer.label
                style = "--" if name == BASELINE else ":"
                _band(det_axes, score, f"{name} (no pretraining)", name, style)
        det_axes.set(
            title=f"Frozen transfer to detection, {variant} data, x{experiment.scale:g}",
            xlabel="pretraining epochs of the resizer", ylabel="mAP@0.5 (%)",
        )  # fmt: skip
        for axes in (seg_axes, det_axes):
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
            axes.set_xticks(sorted({s.row.pretrain_epochs or 0 for s in learned}))
    _note_single_seed(figure, summaries)
    return figure


def _epochs_panel(axes: Axes, learned: list[RowSummary], task: str, label: str) -> None:
    metric = PRIMARY_METRIC[task]
    points = [
        (float(s.row.pretrain_epochs or 0), s.scores[task][metric])
        for s in learned
        if metric in s.scores.get(task, {})
    ]
    if points:
        _errorbar(axes, [p[0] for p in points], [p[1] for p in points], label)
    if task == "segmentation":
        reference = [
            (float(s.row.pretrain_epochs or 0), s.baseline[task])
            for s in learned
            if task in s.baseline
        ]
        if reference:
            _errorbar(axes, [p[0] for p in reference], [p[1] for p in reference], BASELINE)


def grid_resizers(plan: StudyPlan, results_dir: Path) -> tuple[float, list[tuple[str, nn.Module]]]:
    """The scale and resizers of the comparison grid: the fixed ones in the study, then one trained
    DownsizeNet per neighbourhood (first seed and variant, most epochs, default-most config)."""
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
        neighbourhood = str(cell.resizer.config.get("neighbourhood", "bilinear"))
        best = chosen.get(neighbourhood)
        if best is None or _preference(cell, scale) > _preference(best, scale):
            chosen[neighbourhood] = cell
    resizers: list[tuple[str, nn.Module]] = [(name, build_resizer(name)) for name in fixed]
    for cell in chosen.values():
        folder = cell_folder(results_dir, cell) / RESIZER_DIR
        if folder.is_dir():
            label = f"{cell.resizer.label}\n(x{cell.scale:g}, {cell.epochs} ep, seed {cell.seed})"
            resizers.append((label, from_pretrained(folder)))
    return scale, resizers


def _preference(cell: Cell, scale: float) -> tuple[bool, int, int]:
    """Trained at the grid's scale, then fewest overrides (closest to the paper's), most epochs."""
    return (abs(cell.scale - scale) < 1e-9, -len(cell.resizer.config), cell.epochs)


def resizer_grids(plan: StudyPlan, results_dir: Path, count: int) -> list[Figure]:
    """``count`` comparison figures (see :func:`downsizenet_hub.compare.compare_figure`)."""
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


def write_figures(
    plan: StudyPlan, summaries: Sequence[RowSummary], results_dir: Path
) -> list[tuple[str, str]]:
    """Draw and save every figure that has data; returns ``(caption, file name)`` pairs."""
    written: list[tuple[str, str]] = []
    scale = score_vs_scale(plan, summaries)
    if scale is not None:
        save_figure(scale, results_dir / "score_vs_scale.png")
        written.append(("Segmentation mIoU against output scale (95% CIs)", "score_vs_scale.png"))
    epochs = score_vs_epochs(plan, summaries)
    if epochs is not None:
        save_figure(epochs, results_dir / "score_vs_epochs.png")
        written.append(
            (
                "Segmentation mIoU and transferred detection mAP@0.5 against pretraining epochs "
                "(95% CIs; fixed resizers need no pretraining)",
                "score_vs_epochs.png",
            )
        )
    for index, figure in enumerate(resizer_grids(plan, results_dir, plan.config.grid_images)):
        name = f"resizers_val{index}.png"
        save_figure(figure, results_dir / name)
        written.append(
            (
                f"Validation image {index}: the resizers at real size and enlarged, and where the "
                "trained DownsizeNet moved weight away from its classical filter",
                name,
            )
        )
    return written
