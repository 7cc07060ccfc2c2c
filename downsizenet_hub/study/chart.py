"""What the study's charts share: one colour per resizer, means with their 95% intervals, score
axes from 0, and the one-seed note.

Points are means over seeds with the 95% t-interval of the mean as error bars; with one seed there
are no bars and the figure says so. Score axes start at 0 (scores are never negative; an interval
reaching below 0 is cut there), so a gap of half a point looks like one.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from downsizenet_hub.study.aggregate import Estimate
from downsizenet_hub.study.report import RowSummary

DPI = 110
#: One colour per resizer in every figure, so that bilinear is always the same line; the other
#: resizers a study may name get the next unused colour, in the order they are first drawn.
_COLOURS = {"bilinear": "tab:orange", "downsizenet": "tab:blue", "antialias": "tab:green",
            "area": "tab:red", "bicubic": "tab:purple", "downsizenet-antialias": "tab:brown",
            "downsizenet-bicubic": "tab:pink", "talebi": "tab:gray",
            "strided": "tab:olive"}  # fmt: skip
_NAMED = len(_COLOURS)
_MORE_COLOURS = ("tab:cyan", "black", "gold", "navy", "teal", "maroon", "lime", "darkviolet")
ONE_SEED = "1 seed: no intervals; differences this small may be seed noise"
#: A series: its legend label, the resizer whose colour it takes, x values and estimates.
Series = tuple[str, str, list[float], list[Estimate]]


def colour(label: str) -> str:
    """The resizer's colour in every figure (a new label takes the next unused one)."""
    if label not in _COLOURS:
        _COLOURS[label] = _MORE_COLOURS[(len(_COLOURS) - _NAMED) % len(_MORE_COLOURS)]
    return _COLOURS[label]


def interval(estimate: Estimate) -> tuple[float, float] | None:
    """The 95% interval as error-bar lengths below and above the mean, cut at 0; None for 1 seed."""
    if estimate.n < 2 or estimate.ci_low is None or estimate.ci_high is None:
        return None
    return estimate.mean - max(estimate.ci_low, 0.0), estimate.ci_high - estimate.mean


def plot_points(axes: Axes, xs: list[float], estimates: list[Estimate], label: str, shade: str,
                line: bool, marker: str = "o") -> None:  # fmt: skip
    """Means as markers (joined when ``line``), with error bars only where there are intervals,
    so the legend shows bars only for series that have them."""
    means = [e.mean for e in estimates]
    intervals = [interval(e) for e in estimates]
    style = "-" if line else "none"
    if all(i is None for i in intervals):
        axes.plot(xs, means, marker=marker, linestyle=style, color=shade, label=label)
        return
    below = [i[0] if i else 0.0 for i in intervals]
    above = [i[1] if i else 0.0 for i in intervals]
    axes.errorbar(xs, means, yerr=[below, above], marker=marker, capsize=3, linestyle=style,
                  color=shade, label=label)  # fmt: skip


def from_zero(axes: Axes, series: Sequence[Series]) -> None:
    """Scores start at 0; the top leaves room for the highest interval and the labels. A panel
    with no score yet (a report of a study whose transfers have not run) keeps its limits."""
    tops = [
        (e.ci_high if e.n > 1 and e.ci_high is not None else e.mean)
        for _, _, _, estimates in series
        for e in estimates
    ]
    if tops:
        axes.set_ylim(0.0, max(max(tops), 1e-6) * 1.18)


def note_single_seed(figure: Figure, summaries: Sequence[RowSummary]) -> None:
    """Say in the title that there are no intervals when every row has a single seed."""
    counts = [len(seeds) for s in summaries for seeds in s.seeds.values() if seeds]
    if counts and max(counts) == 1:
        figure.suptitle(ONE_SEED, fontsize=9, color="dimgray")
