"""``outputs_by_family.png``: each learned resizer's output (and bilinear's) on one validation
image of each scene family the study uses, each output in its own range.

The comparison grids (``resizers_val*.png``, drawn by
:func:`~downsizenet_hub.tools.compare.compare_figure`) clip an output to [0, 1] to show it as an
image, which hides what a resizer whose output is not an image passes on (talebi's runs from
about -22 to +25). Here an output is drawn as an image only when it is one: every value within
:data:`IMAGE_RANGE` (a convex resizer of a [0, 1] image stays in [0, 1]; the margin keeps a
classical filter's small overshoot an image, clipped when drawn). Any other output is drawn
channel by channel, each channel with its own colour range, a colourbar, and its min and max
written above it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from downsizenet_hub.study.cells import StudyPlan
from downsizenet_hub.study.chart import DPI
from downsizenet_hub.study.config import BASELINE
from downsizenet_hub.study.families import Family, family_scenes, pretraining_data
from downsizenet_hub.study.grids import grid_resizers

FIGURE = "outputs_by_family.png"
#: An output with every value in this range is an image; any other is drawn per channel.
IMAGE_RANGE = (-0.1, 1.1)
_PANEL = 1.8  # inches per panel
_RGB = ("R", "G", "B")


def is_image(output: torch.Tensor) -> bool:
    """Whether ``output`` (any shape) keeps every value within :data:`IMAGE_RANGE`."""
    return IMAGE_RANGE[0] <= float(output.min()) and float(output.max()) <= IMAGE_RANGE[1]


@torch.no_grad()
def family_outputs(plan: StudyPlan, results_dir: Path, families: Sequence[Family]) -> Figure | None:
    """The figure for the study's resizers (bilinear and the learned ones of the comparison
    grids) on validation image 0 of each family; None without families or trained resizers."""
    if not families:
        return None
    scale, resizers = grid_resizers(plan, results_dir)
    shown = [(n, m) for n, m in resizers if n == BASELINE or any(True for _ in m.parameters())]
    if len(shown) < 2:
        return None  # no trained resizer yet
    data, variant = pretraining_data(plan.config), plan.config.variants[0]
    inputs = []
    for family in families:
        images, resize = family_scenes(data, variant, scale, family)
        inputs.append(images[0][0].as_subclass(torch.Tensor).float())
    rows = [
        (label, [model.eval()(image.unsqueeze(0), **resize)[0] for image in inputs])
        for label, model in shown
    ]
    figure = output_figure([f.label for f in families], inputs, rows)
    title = (
        f"Outputs at x{scale:g}, validation image 0 of each family: an output with values outside "
        f"[{IMAGE_RANGE[0]:g}, {IMAGE_RANGE[1]:g}] is not an image and is drawn per channel in "
        "its own range (colourbar), not clipped"
    )  # wrapped to the figure's width (about 13 characters an inch at 9 points)
    figure.suptitle(textwrap.fill(title, int(figure.get_figwidth() * 13)), fontsize=9)
    return figure


def output_figure(
    families: Sequence[str],
    inputs: Sequence[torch.Tensor],
    rows: Sequence[tuple[str, Sequence[torch.Tensor]]],
) -> Figure:
    """The drawing: a column group per family (its input on top), a row per resizer; ``inputs``
    and each row's outputs are ``(C, H, W)``, one per family."""
    channels = [o.shape[0] for _, outputs in rows for o in outputs if not is_image(o)]
    width = max(channels, default=1)  # panels per family
    figure = Figure(
        figsize=(_PANEL * width * len(families) + 0.6, _PANEL * (len(rows) + 1) + 0.4),
        dpi=DPI,
        layout="constrained",
    )
    grid = figure.add_gridspec(len(rows) + 1, width * len(families))
    for index, (name, image) in enumerate(zip(families, inputs, strict=True)):
        axes = figure.add_subplot(grid[0, index * width : (index + 1) * width])
        _draw_image(axes, image, f"{name}: input, {image.shape[-2]}x{image.shape[-1]}")
        axes.set_ylabel("input" if index == 0 else "", fontsize=8)
    for line, (label, outputs) in enumerate(rows, start=1):
        for index, output in enumerate(outputs):
            first = index * width
            if is_image(output):
                axes = figure.add_subplot(grid[line, first : first + width])
                low, high = float(output.min()), float(output.max())
                _draw_image(axes, output.clamp(0.0, 1.0), f"image, values {low:.2f} to {high:.2f}")
                panels = [axes]
            else:
                panels = [
                    _draw_channel(figure, figure.add_subplot(grid[line, first + c]), output, c)
                    for c in range(output.shape[0])
                ]
            if index == 0:
                panels[0].set_ylabel(label, fontsize=8)
    return figure


def _draw_image(axes: Axes, image: torch.Tensor, title: str) -> None:
    pixels = image.permute(1, 2, 0).cpu().numpy()
    axes.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")  # fmt: skip
    axes.set_title(title, fontsize=7)
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_channel(figure: Figure, axes: Axes, output: torch.Tensor, channel: int) -> Axes:
    """One channel in its own colour range, with a colourbar and its min and max."""
    values = output[channel].cpu()
    low, high = float(values.min()), float(values.max())
    shown = axes.imshow(values.numpy(), cmap="viridis", vmin=low, vmax=high,
                        interpolation="nearest")  # fmt: skip
    bar = figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    name = _RGB[channel] if output.shape[0] == 3 else f"channel {channel}"
    axes.set_title(f"{name}: min {low:.2f}, max {high:.2f}", fontsize=7)
    axes.set_xticks([])
    axes.set_yticks([])
    return axes
