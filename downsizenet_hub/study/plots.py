"""The study's figures (matplotlib, no pyplot state): score against scale, score against
pretraining epochs, and the resizers side by side on validation images.

Every figure fits its data. Points are means over seeds with the 95% t-interval of the mean as
error bars; with one seed there are no bars, the points say "1 seed" and the figure says so.
Where a panel has a single configuration (one scale, one epoch count) it is a dot chart, one
column per resizer with its value written on it, not a line through one point. Score axes start
at 0 (scores are never negative; an interval reaching below 0 is cut there), so a gap of half a
point looks like one. Series at the same x are spread a little sideways so that every interval
stays visible. Fixed baselines in the epochs plot need no pretraining: with several epoch counts
they are a horizontal line with their interval as a band.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.study.aggregate import Estimate
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder, data_options
from downsizenet_hub.study.cells import PRIMARY_METRIC, Cell, StudyPlan
from downsizenet_hub.study.config import (
    BASELINE,
    SegmentationExperiment,
    TransferExperiment,
)
from downsizenet_hub.study.report import RowSummary
from downsizenet_hub.tools.compare import compare_figure, save_figure

if TYPE_CHECKING:
    from downsizenet_hub.study.cost import CostPoints

_DPI = 110
#: One colour per resizer in every figure, so that bilinear is always the same line; the other
#: resizers a study may name get the next unused colour, in the order they are first drawn.
_COLOURS = {"bilinear": "tab:orange", "downsizenet": "tab:blue", "antialias": "tab:green",
            "area": "tab:red", "bicubic": "tab:purple", "downsizenet-antialias": "tab:brown",
            "downsizenet-bicubic": "tab:pink", "talebi": "tab:gray",
            "strided": "tab:olive"}  # fmt: skip
_NAMED = len(_COLOURS)
_MORE_COLOURS = ("tab:cyan", "black", "gold", "navy", "teal", "maroon", "lime", "darkviolet")
_ONE_SEED = "1 seed: no intervals; differences this small may be seed noise"
#: A series: its legend label, the resizer whose colour it takes, x values and estimates.
Series = tuple[str, str, list[float], list[Estimate]]


def _colour(label: str) -> str:
    if label not in _COLOURS:
        _COLOURS[label] = _MORE_COLOURS[(len(_COLOURS) - _NAMED) % len(_MORE_COLOURS)]
    return _COLOURS[label]


def _interval(estimate: Estimate) -> tuple[float, float] | None:
    """The 95% interval as error-bar lengths below and above the mean, cut at 0; None for 1 seed."""
    if estimate.n < 2 or estimate.ci_low is None or estimate.ci_high is None:
        return None
    return estimate.mean - max(estimate.ci_low, 0.0), estimate.ci_high - estimate.mean


def _plot(axes: Axes, xs: list[float], estimates: list[Estimate], label: str, colour: str,
          line: bool, marker: str = "o") -> None:  # fmt: skip
    """Means as markers (joined when ``line``), with error bars only where there are intervals,
    so the legend shows bars only for series that have them."""
    means = [e.mean for e in estimates]
    intervals = [_interval(e) for e in estimates]
    style = "-" if line else "none"
    if all(i is None for i in intervals):
        axes.plot(xs, means, marker=marker, linestyle=style, color=colour, label=label)
        return
    below = [i[0] if i else 0.0 for i in intervals]
    above = [i[1] if i else 0.0 for i in intervals]
    axes.errorbar(xs, means, yerr=[below, above], marker=marker, capsize=3, linestyle=style,
                  color=colour, label=label)  # fmt: skip


def _from_zero(axes: Axes, series: Sequence[Series]) -> None:
    """Scores start at 0; the top leaves room for the highest interval and the labels."""
    top = max(
        (e.ci_high if e.n > 1 and e.ci_high is not None else e.mean)
        for _, _, _, estimates in series
        for e in estimates
    )
    axes.set_ylim(0.0, max(top, 1e-6) * 1.18)


def _draw(axes: Axes, series: Sequence[Series], xlabel: str, ylabel: str, title: str) -> None:
    """A line chart over x, or a dot chart when the panel holds a single x value."""
    series = [s for s in series if s[2]]
    axes.set(title=title, ylabel=ylabel)
    axes.grid(alpha=0.3, axis="y")
    if not series:
        axes.text(0.5, 0.5, "no finished cells", ha="center", transform=axes.transAxes)
        return
    xs = sorted({x for _, _, values, _ in series for x in values})
    if len(xs) == 1:
        _dot_chart(axes, series)
        axes.set_xlabel(f"{xlabel}: {xs[0]:g} (a single configuration)")
    else:
        spread = (xs[-1] - xs[0]) * 0.012
        for index, (label, name, values, estimates) in enumerate(series):
            offset = (index - (len(series) - 1) / 2) * spread
            _plot(axes, [x + offset for x in values], estimates, label, _colour(name), line=True)
        axes.set_xticks(xs)
        axes.set_xlabel(xlabel)
        axes.legend(fontsize=8, loc="lower right")
    _from_zero(axes, series)


def _dot_chart(axes: Axes, series: Sequence[Series]) -> None:
    """One column per series: the mean, its interval, and the value (and "1 seed") written."""
    for index, (_, name, _, estimates) in enumerate(series):
        estimate = estimates[0]
        _plot(axes, [float(index)], [estimate], name, _colour(name), line=False)
        note = f"{estimate.mean:.2f}" + ("\n1 seed" if estimate.n < 2 else f"\n{estimate.n} seeds")
        axes.annotate(note, (index, estimate.mean), xytext=(9, 0), textcoords="offset points",
                      va="center", fontsize=8)  # fmt: skip
    axes.set_xticks(range(len(series)), [label for label, _, _, _ in series], fontsize=8)
    axes.set_xlim(-0.6, len(series) - 0.4)


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
        series: list[Series] = []
        for label in dict.fromkeys(s.row.resizer.label for s in rows):
            points = sorted(
                (s.row.scale, s.scores["segmentation"]["miou"])
                for s in rows
                if s.row.resizer.label == label and "miou" in s.scores.get("segmentation", {})
            )
            series.append((label, label, [p[0] for p in points], [p[1] for p in points]))
        _draw(axes, series, "output scale", "mIoU (%)", f"{title}\n({variant} data)")
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
            (s for s in rows if s.row.resizer == experiment.resizer),
            key=lambda s: s.row.pretrain_epochs or 0,
        )
        label = experiment.resizer.label
        # Fixed resizers, and learned baselines pretrained once (the longest length).
        fixed = [s for s in rows if s.row.resizer != experiment.resizer]
        seg = [
            _learned_series(learned, "segmentation", label),
            _baseline_series(learned, "segmentation"),
            *(  # the learned baselines' own scores, a point each at their pretraining length
                _learned_series([s], "segmentation", s.row.resizer.label)
                for s in fixed
                if s.row.pretrain_epochs is not None
            ),
        ]
        _draw(seg_axes, seg, "pretraining epochs", "mIoU (%)",
              f"Segmentation, {variant} data, x{experiment.scale:g}")  # fmt: skip
        det = [_learned_series(learned, "transfer", label)]
        epochs = det[0][2]  # the epoch counts with a transfer score
        title = f"Frozen transfer to detection, {variant} data, x{experiment.scale:g}"
        if len(epochs) != 1:
            _draw(det_axes, det, "pretraining epochs of the resizer", "mAP@0.5 (%)", title)
            for summary in fixed:
                score = summary.scores.get("transfer", {}).get("map_50")
                if score is not None:
                    name = summary.row.resizer.label
                    _band(det_axes, score, _other_label(summary), name)
            # Below the panel: inside, it would hide the bands it names.
            det_axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
            _from_zero(det_axes, [*det, *_fixed_series(fixed, epochs)])
        else:  # one epoch count: the fixed resizers are columns beside the learned one
            columns: list[Series] = [  # "name\n(how)": each label fits under its column
                (name.replace(" (", "\n("), colour, xs, ys)
                for name, colour, xs, ys in [*det, *_fixed_series(fixed, epochs)]
            ]
            _draw(det_axes, columns,
                  "pretraining epochs of the resizer", "mAP@0.5 (%)", title)  # fmt: skip
    _note_single_seed(figure, summaries)
    return figure


def _learned_series(learned: list[RowSummary], task: str, label: str) -> Series:
    metric = PRIMARY_METRIC[task]
    points = [
        (float(s.row.pretrain_epochs or 0), s.scores[task][metric])
        for s in learned
        if metric in s.scores.get(task, {})
    ]
    return label, label, [p[0] for p in points], [p[1] for p in points]


def _baseline_series(learned: list[RowSummary], task: str) -> Series:
    """The baseline trained beside each learned row (same epochs, seeds and data)."""
    points = [
        (float(s.row.pretrain_epochs or 0), s.baseline[task]) for s in learned if task in s.baseline
    ]
    return BASELINE, BASELINE, [p[0] for p in points], [p[1] for p in points]


def _fixed_series(fixed: list[RowSummary], epochs: list[float]) -> list[Series]:
    """Fixed resizers' transfer scores, placed at the learned resizer's epoch count."""
    series: list[Series] = []
    for summary in fixed:
        score = summary.scores.get("transfer", {}).get("map_50")
        if score is not None and epochs:
            name = summary.row.resizer.label
            series.append((_other_label(summary), name, [epochs[0]], [score]))
    return series


def _other_label(summary: RowSummary) -> str:
    """A compared resizer's legend entry: fixed, or a learned baseline and its pretraining."""
    epochs = summary.row.pretrain_epochs
    how = "no pretraining" if epochs is None else f"pretrained {epochs} ep"
    return f"{summary.row.resizer.label} ({how})"


def _band(axes: Axes, value: Estimate, label: str, name: str) -> None:
    colour = _colour(name)
    style = "--" if name == BASELINE else ":"
    axes.axhline(value.mean, linestyle=style, linewidth=1.2, label=label, color=colour)
    interval = _interval(value)
    if interval is not None:
        low, high = value.mean - interval[0], value.mean + interval[1]
        axes.axhspan(low, high, color=colour, alpha=0.12)


def score_vs_cost(plan: StudyPlan, summaries: Sequence[RowSummary]) -> Figure | None:
    """The cost/accuracy frontier: each task's score against its pipeline's multiply-adds per
    image. None unless some resizer has two scales."""
    from downsizenet_hub.study.cost import cost_points  # builds models: only when drawing

    points = cost_points(plan, summaries)
    if not any(len(p) > 1 for task in points.values() for p in task.values()):
        return None
    figure = cost_figure(points)
    _note_single_seed(figure, summaries)
    return figure


_COST_TITLES = {
    "segmentation": ("Segmentation", "mIoU (%)", "whole pipeline"),
    "transfer": ("Detection after frozen transfer", "mAP@0.5 (%)", "resizer + VGG16 trunk"),
}
#: Markers of the resizers measured at one scale only (ablations, baselines), each its own.
_MARKERS = ("s", "^", "D", "v", "P", "X", "*", "<", ">", "h")


def cost_figure(points: CostPoints) -> Figure:
    """One panel per task and data variant (noisy and clean scenes apart). A resizer measured at
    several scales is a line through them, each point marked with its scale; one measured at a
    single scale is a marker of its own, its scale in the legend, which sits below the panel."""
    panels = [
        (task, variant)
        for task in _COST_TITLES
        if task in points
        for variant in dict.fromkeys(variant for _, variant in points[task])
    ]
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(6.4 * columns, 6.2 * rows), dpi=_DPI, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).flat
    panels_per_task = Counter(task for task, _ in panels)
    for (task, variant), axes in zip(panels, grid, strict=False):
        title, ylabel, counted = _COST_TITLES[task]
        series = {
            label: sorted(measured, key=lambda p: p[0])
            for (label, v), measured in points[task].items()
            if v == variant
        }
        markers = itertools.cycle(_MARKERS)
        for label, measured in series.items():
            xs = [p[0] / 1e9 for p in measured]
            estimates = [p[1] for p in measured]
            if len(measured) > 1:
                _plot(axes, xs, estimates, label, _colour(label), line=True)
                for x, (_, estimate, scale, _) in zip(xs, measured, strict=True):
                    axes.annotate(f"x{scale:g}", (x, estimate.mean), xytext=(4, -10),
                                  textcoords="offset points", fontsize=7,
                                  color="dimgray")  # fmt: skip
                continue
            name = f"{label} (x{measured[0][2]:g} only)"
            _plot(axes, xs, estimates, name, _colour(label), line=False, marker=next(markers))
        heading = f"{title}, {variant} scenes" if panels_per_task[task] > 1 else title
        axes.set(title=heading, xlabel=f"GMACs per image ({counted})", ylabel=ylabel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
        _from_zero(axes, [("", "", [], [p[1] for p in s]) for s in series.values()])
    for axes in grid:  # what the panels left over
        axes.set_visible(False)
    return figure


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


def write_figures(
    plan: StudyPlan, summaries: Sequence[RowSummary], results_dir: Path
) -> list[tuple[str, str]]:
    """Draw and save every figure that has data; returns ``(caption, file name)`` pairs."""
    written: list[tuple[str, str]] = []
    # One seed draws no interval: its captions must not promise one.
    cis = "95% CIs" if len(plan.config.seeds) > 1 else "one seed, no intervals"
    charts = [
        (score_vs_scale, "score_vs_scale.png",
         f"Segmentation mIoU against output scale ({cis})"),
        (score_vs_epochs, "score_vs_epochs.png",
         "Segmentation mIoU and transferred detection mAP@0.5 against pretraining epochs "
         f"({cis}; fixed resizers need no pretraining)"),
        (score_vs_cost, "score_vs_cost.png",
         "Cost/accuracy frontier: each task's score against its pipeline's multiply-adds per "
         f"image ({cis}), each resizer through its output scales"),
    ]  # fmt: skip
    for draw, name, caption in charts:
        chart = draw(plan, summaries)
        if chart is not None:
            save_figure(chart, results_dir / name)
            written.append((caption, name))
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
