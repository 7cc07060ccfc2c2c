"""The study's score charts (matplotlib, no pyplot state): score against output scale and
against pretraining epochs.

Every figure fits its data (what the charts share: :mod:`.chart`). Points are means over seeds
with the 95% t-interval of the mean as error bars; with one seed there are no bars, the points say
"1 seed" and the figure says so. Where a panel has a single configuration (one scale, one epoch
count) it is a dot chart, one column per resizer with its value written on it, not a line through
one point. Score axes start at 0, so a gap of half a point looks like one. Series at the same x
are spread a little sideways so that every interval stays visible. Fixed baselines in the epochs
plot need no pretraining: with several epoch counts they are a horizontal line with their
interval as a band.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from downsizenet_hub.study.aggregate import Estimate
from downsizenet_hub.study.cells import PRIMARY_METRIC, StudyPlan
from downsizenet_hub.study.chart import (
    DPI,
    Series,
    colour,
    from_zero,
    interval,
    note_single_seed,
    plot_points,
)
from downsizenet_hub.study.config import BASELINE, SegmentationExperiment, TransferExperiment
from downsizenet_hub.study.report import RowSummary


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
            plot_points(
                axes, [x + offset for x in values], estimates, label, colour(name), line=True
            )
        axes.set_xticks(xs)
        axes.set_xlabel(xlabel)
        axes.legend(fontsize=8, loc="lower right")
    from_zero(axes, series)


def _dot_chart(axes: Axes, series: Sequence[Series]) -> None:
    """One column per series: the mean, its interval, and the value (and "1 seed") written."""
    for index, (_, name, _, estimates) in enumerate(series):
        estimate = estimates[0]
        plot_points(axes, [float(index)], [estimate], name, colour(name), line=False)
        note = f"{estimate.mean:.2f}" + ("\n1 seed" if estimate.n < 2 else f"\n{estimate.n} seeds")
        axes.annotate(note, (index, estimate.mean), xytext=(9, 0), textcoords="offset points",
                      va="center", fontsize=8)  # fmt: skip
    axes.set_xticks(range(len(series)), [label for label, _, _, _ in series], fontsize=8)
    axes.set_xlim(-0.6, len(series) - 0.4)


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
    figure = Figure(figsize=(5.2 * len(panels), 4.0), dpi=DPI, layout="constrained")
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
    note_single_seed(figure, summaries)
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
    figure = Figure(figsize=(10.0, 3.8 * len(panels)), dpi=DPI, layout="constrained")
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
            # Below the panel: inside, it would hide the bands it names (none before any score).
            if det_axes.get_legend_handles_labels()[0]:
                det_axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
            from_zero(det_axes, [*det, *_fixed_series(fixed, epochs)])
        else:  # one epoch count: the fixed resizers are columns beside the learned one
            columns: list[Series] = [  # "name\n(how)": each label fits under its column
                (name.replace(" (", "\n("), resizer, xs, ys)
                for name, resizer, xs, ys in [*det, *_fixed_series(fixed, epochs)]
            ]
            _draw(det_axes, columns,
                  "pretraining epochs of the resizer", "mAP@0.5 (%)", title)  # fmt: skip
    note_single_seed(figure, summaries)
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
    shade = colour(name)
    style = "--" if name == BASELINE else ":"
    axes.axhline(value.mean, linestyle=style, linewidth=1.2, label=label, color=shade)
    bars = interval(value)
    if bars is not None:
        low, high = value.mean - bars[0], value.mean + bars[1]
        axes.axhspan(low, high, color=shade, alpha=0.12)
