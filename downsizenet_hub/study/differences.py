"""The paired differences from bilinear, drawn and tabled as what the study measures.

A score against scale or epochs with between-seed intervals hides effects: two resizers' intervals
overlap even where their paired difference (same seed, same initialisation and data order)
excludes zero. This module shows the difference itself:

- :func:`difference_figure`: per experiment, each resizer's difference from bilinear in its
  task's primary metric with its paired 95% interval, and a line at zero;
- :func:`transfer_targets_table`: where the transfer cells of a study detect on different data
  than the resizers were pretrained on (another scene family: new objects on new backgrounds),
  one line per resizer with its difference from bilinear on each.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from downsizenet_hub.study.aggregate import Estimate, format_estimate, paired_difference
from downsizenet_hub.study.cell import FAMILY_NAMES
from downsizenet_hub.study.cells import METRIC_NAMES, PRIMARY_METRIC
from downsizenet_hub.study.config import BASELINE
from downsizenet_hub.study.report import RowSummary


def _task(summary: RowSummary) -> str:
    return "transfer" if summary.row.kind == "transfer" else "segmentation"


def _row_label(summary: RowSummary, several_scales: bool) -> str:
    row = summary.row
    label = row.resizer.label
    if row.pretrain_epochs is not None and row.resizer.learned:
        label += f" ({row.pretrain_epochs} ep)"
    return f"{label} x{row.scale:g}" if several_scales else label


def difference_figure(summaries: Sequence[RowSummary]) -> Figure | None:
    """One panel per experiment and data: each non-bilinear row's paired difference from
    bilinear (primary metric of its task) with its 95% interval; None without differences."""
    panels: dict[tuple[str, str, str], list[RowSummary]] = {}
    for summary in summaries:
        task = _task(summary)
        if summary.row.resizer.label == BASELINE and not summary.row.resizer.learned:
            continue
        if summary.difference.get(task) is None:
            continue
        cells = summary.row.cells.get(task) or []
        family, variant = cells[0].scenes if cells else ("all", summary.row.variant)
        where = variant if family == "all" else f"{variant}, {FAMILY_NAMES.get(family, family)}"
        panels.setdefault((summary.row.experiment, task, where), []).append(summary)
    if not panels:
        return None
    heights = [max(2, len(rows)) for rows in panels.values()]
    figure = Figure(figsize=(8.0, 1.2 + 0.38 * sum(heights) + 0.9 * len(panels)), dpi=110)
    grid = figure.add_gridspec(len(panels), 1, height_ratios=heights)
    single_seed = False
    for index, ((experiment, task, where), rows) in enumerate(panels.items()):
        axes = figure.add_subplot(grid[index])
        several_scales = len({r.row.scale for r in rows}) > 1
        labels, means, lows, highs = [], [], [], []
        for summary in rows:
            difference = summary.difference[task]
            assert difference is not None
            labels.append(_row_label(summary, several_scales))
            means.append(difference.mean)
            low, high = _interval(difference)
            single_seed |= difference.ci_low is None
            lows.append(difference.mean - low)
            highs.append(high - difference.mean)
        positions = list(range(len(rows)))[::-1]
        colours = [_colour(summary.difference[task]) for summary in rows]
        for position, mean, low, high, colour in zip(
            positions, means, lows, highs, colours, strict=True
        ):
            axes.errorbar(
                [mean], [position], xerr=[[low], [high]], fmt="none", ecolor=colour, capsize=3
            )
        axes.scatter(means, positions, c=colours, zorder=3, s=22)
        axes.axvline(0.0, color="0.35", lw=1.0, ls="--")
        axes.set_yticks(positions, labels, fontsize=8)
        axes.set_ylim(-0.7, len(rows) - 0.3)
        metric = METRIC_NAMES[PRIMARY_METRIC[task]]
        axes.set_xlabel(f"{metric} minus bilinear's, same seed (points)", fontsize=8)
        axes.set_title(f"{experiment} [{where}]", fontsize=9, loc="left")
        axes.grid(axis="x", alpha=0.3)
        axes.tick_params(axis="x", labelsize=8)
    note = (
        "One seed: no interval (bars are points)."
        if single_seed
        else "Bars: paired 95% t-intervals over seeds. Green: the whole interval above 0; red: "
        "below 0; grey: it includes 0 (no difference detectable)."
    )
    figure.text(0.01, 0.005, note, fontsize=7, color="0.3")
    figure.tight_layout(rect=(0, 0.025, 1, 1))
    return figure


def _interval(difference: Estimate) -> tuple[float, float]:
    if difference.ci_low is None or difference.ci_high is None:
        return difference.mean, difference.mean
    return difference.ci_low, difference.ci_high


def _colour(difference: Estimate | None) -> str:
    if difference is None or difference.ci_low is None or difference.ci_high is None:
        return "0.45"
    if difference.ci_low > 0:
        return "tab:green"
    if difference.ci_high < 0:
        return "tab:red"
    return "0.45"


def transfer_targets_table(summaries: Sequence[RowSummary]) -> str:
    """Markdown: per resizer (and scale, pretraining length), its transferred detection score's
    difference from bilinear on each data the transfers detect on, with the pretraining data
    named; empty when every transfer detects on one kind of data."""
    transfer_rows = [
        s for s in summaries if s.row.kind == "transfer" and s.row.cells.get("transfer")
    ]
    targets = sorted({s.row.cells["transfer"][0].scenes for s in transfer_rows})
    if len(targets) < 2:
        return ""
    pretrained_on = {
        cell.scenes[0] for s in transfer_rows for cell in s.row.cells.get("segmentation", [])[:1]
    }
    lines = []
    by_resizer: dict[tuple[str, float, int | None], dict[tuple[str, str], RowSummary]] = {}
    for summary in transfer_rows:
        row = summary.row
        key = (row.resizer.label, row.scale, row.pretrain_epochs)
        by_resizer.setdefault(key, {})[row.cells["transfer"][0].scenes] = summary

    def heading(target: tuple[str, str]) -> str:
        family, variant = target
        same = " (the pretraining's objects)" if family in pretrained_on else " (new objects)"
        return f"{FAMILY_NAMES.get(family, family)}, {variant}{same if pretrained_on else ''}"

    metric = METRIC_NAMES[PRIMARY_METRIC["transfer"]]
    # With one family pretrained on and one new: how the difference changes on the new one.
    same = [t for t in targets if t[0] in pretrained_on]
    new = [t for t in targets if t[0] not in pretrained_on]
    shift = (same[0], new[0]) if len(targets) == 2 and len(same) == len(new) == 1 else None
    extra = " | new − same objects" if shift else ""
    lines.append("| resizer | scale | " + " | ".join(heading(t) for t in targets) + extra + " |")
    lines.append("|---|---|" + "---|" * (len(targets) + (shift is not None)))
    for (label, scale, epochs), found in by_resizer.items():
        name = f"{label} (pretrained {epochs} ep)" if epochs is not None else label
        cells = []
        for target in targets:
            entry = found.get(target)
            if entry is None:
                cells.append("-")
            elif label == BASELINE and not entry.row.resizer.learned:
                score = entry.scores.get("transfer", {}).get(PRIMARY_METRIC["transfer"])
                cells.append(f"{format_estimate(score)} (reference)")
            else:
                cells.append(format_estimate(entry.difference.get("transfer"), signed=True))
        if shift is not None:
            before, after = (found.get(t) for t in shift)  # bilinear's has no difference
            change = _change(before, after) if before and after else None
            cells.append(format_estimate(change, signed=True))
        lines.append(f"| {name} | x{scale:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Transferred detection {metric}: bilinear's score, then each resizer's difference from"
        " bilinear on the same data and seed, with its paired 95% t-interval."
    )
    if shift is not None:
        lines[-1] += (
            " The last column is the difference on the new objects minus the difference on the"
            " pretraining's objects, paired by seed: above 0, the resizer's advantage over"
            " bilinear grows on objects it never saw; below 0, it shrinks."
        )
    return "\n".join(lines)


def _change(before: RowSummary, after: RowSummary) -> Estimate | None:
    """Per seed, ``after``'s transferred difference from bilinear minus ``before``'s (None
    unless both paired every seed of their rows, on the same seeds)."""
    values = [_by_seed(s) for s in (before, after)]
    if values[0] is None or values[1] is None:
        return None
    return paired_difference(values[1], values[0])


def _by_seed(summary: RowSummary) -> dict[int, float] | None:
    """The row's per-seed transferred difference from bilinear, when every seed of the row was
    paired (the difference's values are then in seed order)."""
    difference = summary.difference.get("transfer")
    seeds = sorted(summary.seeds.get("transfer", []))
    if difference is None or difference.n != len(seeds):
        return None
    return dict(zip(seeds, difference.values, strict=True))
