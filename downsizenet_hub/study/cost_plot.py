"""The cost/accuracy figure: each task's score against its pipeline's multiply-adds per image."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from downsizenet_hub.study.cells import StudyPlan
from downsizenet_hub.study.chart import DPI, colour, from_zero, note_single_seed, plot_points
from downsizenet_hub.study.report import RowSummary

if TYPE_CHECKING:
    from downsizenet_hub.study.cost import CostPoints


def score_vs_cost(plan: StudyPlan, summaries: Sequence[RowSummary]) -> Figure | None:
    """The cost/accuracy frontier: each task's score against its pipeline's multiply-adds per
    image. None unless some resizer has two scales."""
    from downsizenet_hub.study.cost import cost_points  # builds models: only when drawing

    points = cost_points(plan, summaries)
    if not any(len(p) > 1 for task in points.values() for p in task.values()):
        return None
    figure = cost_figure(points)
    note_single_seed(figure, summaries)
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
    figure = Figure(figsize=(6.4 * columns, 6.2 * rows), dpi=DPI, layout="constrained")
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
                plot_points(axes, xs, estimates, label, colour(label), line=True)
                for x, (_, estimate, scale, _) in zip(xs, measured, strict=True):
                    axes.annotate(f"x{scale:g}", (x, estimate.mean), xytext=(4, -10),
                                  textcoords="offset points", fontsize=7,
                                  color="dimgray")  # fmt: skip
                continue
            name = f"{label} (x{measured[0][2]:g} only)"
            plot_points(axes, xs, estimates, name, colour(label), line=False, marker=next(markers))
        heading = f"{title}, {variant} scenes" if panels_per_task[task] > 1 else title
        axes.set(title=heading, xlabel=f"GMACs per image ({counted})", ylabel=ylabel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
        from_zero(axes, [("", "", [], [p[1] for p in s]) for s in series.values()])
    for axes in grid:  # what the panels left over
        axes.set_visible(False)
    return figure
