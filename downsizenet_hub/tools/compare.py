"""Compare resizers by eye: one image, several resizers, and what DownsizeNet's coefficients do.

:func:`compare_figure` draws a matplotlib figure with one column per resizer (the input first):

1. the resized image at its real size (one image pixel per figure pixel at the figure's dpi);
2. a detailed crop of it enlarged with nearest neighbour (the input column shows the same region
   of the input), picked where the image has the most gradient energy;
3. for each DownsizeNet: how far its per-pixel coefficients are from the classical filter of its
   neighbourhood (bilinear, or the antialias triangle filter): the total-variation distance
   ``0.5 * sum_k |a_k - c_k|`` in [0, 1], the share of weight the network moved;
4. for a 2x2 (bilinear) neighbourhood, the weight on each of the four neighbours over the crop;
   for larger neighbourhoods, the change in coefficient entropy over the crop (negative: the
   network concentrates weight on fewer input pixels than the classical filter).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from downsizenet_hub.atomic import write_atomic_path
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.target import ScaleArg, SizeArg, resolve_output_size
from downsizenet_hub.tools.channels import guide_image, resize_any_channels

_PAD = 14  # pixels between panels
_TITLE = 40  # pixels above each panel for its caption
_MIN_COLUMN = 200  # captions need some width
_FONT = 8


@dataclass(frozen=True)
class CoefficientMaps:
    """A DownsizeNet's coefficients on one image and the classical ones it started from."""

    learned: torch.Tensor  # (h, w, Ky, Kx), non-negative, sum to 1 per pixel
    classical: torch.Tensor  # (h, w, Ky, Kx), the neighbourhood's classical filter

    @property
    def deviation(self) -> torch.Tensor:
        """``(h, w)`` total-variation distance between learned and classical, in [0, 1]."""
        return 0.5 * (self.learned - self.classical).abs().sum(dim=(-2, -1))

    @property
    def entropy_change(self) -> torch.Tensor:
        """``(h, w)`` entropy of the learned coefficients minus the classical ones' (nats)."""
        return _entropy(self.learned) - _entropy(self.classical)


def coefficient_maps(
    net: DownsizeNet,
    image: torch.Tensor,
    *,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
) -> CoefficientMaps:
    """The coefficients ``net`` uses on ``image`` ``(C, H, W)`` (1 or 3 channels, [0, 1]).

    Example:
        >>> import torch
        >>> from downsizenet_hub import DownsizeNet
        >>> maps = coefficient_maps(DownsizeNet(), torch.rand(3, 40, 40), size=(16, 16))
        >>> maps.learned.shape, bool(maps.deviation.max() < 1e-3)  # a fresh net is ~bilinear
        (torch.Size([16, 16, 2, 2]), True)
    """
    batch = image.unsqueeze(0).float()
    guide = batch if not net.config.conv_layers else guide_image(batch, net.config.in_channels)
    classical_net = DownsizeNet(neighbourhood=net.config.neighbourhood, conv_layers=0)
    with torch.no_grad():
        learned = net.coefficient_maps(guide, size=size, scale_factor=scale_factor)[0]
        classical = classical_net.coefficient_maps(batch, size=size, scale_factor=scale_factor)[0]
    return CoefficientMaps(learned.cpu(), classical.cpu())


def detail_window(image: torch.Tensor, side: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``side x side`` window of ``image`` ``(C, h, w)`` with the most
    gradient energy (where resizers differ most visibly)."""
    gray = image.float().mean(dim=0, keepdim=True)[None]
    dy = (gray[..., 1:, :] - gray[..., :-1, :]).abs()[..., :, :-1]
    dx = (gray[..., :, 1:] - gray[..., :, :-1]).abs()[..., :-1, :]
    energy = F.pad(dy + dx, (0, 1, 0, 1))
    side = min(side, image.shape[-2], image.shape[-1])
    scores = F.avg_pool2d(energy, side, stride=1)[0, 0]
    flat = int(torch.argmax(scores))
    return flat // scores.shape[1], flat % scores.shape[1]


def compare_figure(
    image: torch.Tensor,
    resizers: Sequence[tuple[str, nn.Module]],
    *,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    crop_side: int = 48,
    zoom_panel: int = 240,
    dpi: int = 100,
) -> Figure:
    """The comparison figure (see the module docstring) for ``image`` ``(C, H, W)`` in [0, 1].

    Args:
        image: 1 (gray) or 3 (RGB) channels.
        resizers: ``(label, resizer)`` pairs, drawn left to right after the input.
        size, scale_factor: the resize, exactly one.
        crop_side: side of the enlarged crop, in output pixels.
        zoom_panel: about how many figure pixels the enlarged crop spans.
        dpi: figure dots per inch; saving at this dpi keeps the real-size row at 1:1 pixels.

    Example:
        >>> import torch
        >>> from downsizenet_hub import DownsizeNet
        >>> from downsizenet_hub.registry import create_resizer
        >>> figure = compare_figure(
        ...     torch.rand(3, 120, 100),
        ...     [("bilinear", create_resizer("bilinear")), ("fresh DownsizeNet", DownsizeNet())],
        ...     scale_factor=0.3,
        ... )
        >>> len(figure.axes)  # input + 2 resizers in 2 rows, + 2 coefficient panels (4 maps)
        11
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be (C, H, W) with 1 or 3 channels, got {tuple(image.shape)}.")
    if not resizers:
        raise ValueError("give at least one resizer to compare.")
    batch = image.unsqueeze(0).float()
    _, (out_h, out_w) = resolve_output_size(batch, size, scale_factor)
    outputs = []
    for _, resizer in resizers:
        with torch.no_grad():
            resized = resize_any_channels(
                resizer.eval(), batch, size=size, scale_factor=scale_factor
            )
        outputs.append(resized[0].clamp(0.0, 1.0).cpu())
    maps = {
        index: coefficient_maps(resizer, image, size=size, scale_factor=scale_factor)
        for index, (_, resizer) in enumerate(resizers)
        if isinstance(resizer, DownsizeNet)
    }
    side = min(crop_side, out_h, out_w)
    top, left = detail_window(outputs[0], side)
    zoom = max(1, round(zoom_panel / side))
    layout = _Layout(out_h, out_w, side * zoom, columns=len(resizers) + 1, learned=bool(maps))
    figure = Figure(figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi)
    crop = (top, left, side)
    _draw_input(figure, layout, image, (out_h, out_w), crop)
    deviation_top = max([float(m.deviation.max()) for m in maps.values()] + [1e-3])
    for column, ((label, _), resized) in enumerate(zip(resizers, outputs, strict=True), start=1):
        _draw_output(figure, layout, column, label, resized, crop, zoom)
        if column - 1 in maps:
            _draw_coefficients(figure, layout, column, maps[column - 1], crop, deviation_top)
        elif maps:
            learned = any(True for _ in resizers[column - 1][1].parameters())  # has weights
            what = "learned, not a convex mix" if learned else "fixed filter"
            _caption(figure, layout, column, 2, f"{what}:\nno per-pixel coefficients")
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> None:
    """Save at the figure's dpi (so the real-size row stays 1:1), atomically; format from suffix."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in figure.canvas.get_supported_filetypes():
        raise ValueError(
            f"cannot write a figure as {path.name!r}; use one of "
            f"{sorted(figure.canvas.get_supported_filetypes())} as the suffix."
        )
    write_atomic_path(
        path,
        lambda temporary: figure.savefig(
            temporary, format=suffix, dpi=figure.dpi, facecolor="white"
        ),
    )


class _Layout:
    """Panel rectangles in figure pixels (origin top-left)."""

    def __init__(self, out_h: int, out_w: int, zoomed: int, *, columns: int, learned: bool) -> None:
        self.column_width = max(out_w, zoomed, _MIN_COLUMN)
        self.rows = [out_h, zoomed] + ([out_h, zoomed] if learned else [])
        self.width = _PAD + columns * (self.column_width + _PAD)
        self.height = _PAD + sum(_TITLE + row + _PAD for row in self.rows)

    def panel(self, column: int, row: int, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x, y, width, height)`` of a panel centred in its cell, below the caption."""
        x0 = _PAD + column * (self.column_width + _PAD)
        y0 = _PAD + sum(_TITLE + r + _PAD for r in self.rows[:row]) + _TITLE
        return x0 + (self.column_width - width) // 2, y0, width, height

    def caption(self, column: int, row: int) -> tuple[int, int]:
        x0 = _PAD + column * (self.column_width + _PAD)
        y0 = _PAD + sum(_TITLE + r + _PAD for r in self.rows[:row])
        return x0 + self.column_width // 2, y0 + _TITLE - 4


def _axes(figure: Figure, layout: _Layout, rect: tuple[int, int, int, int]) -> Axes:
    x, y, w, h = rect
    axes = figure.add_axes(
        (x / layout.width, 1 - (y + h) / layout.height, w / layout.width, h / layout.height)
    )
    axes.set_axis_off()
    return axes


def _caption(figure: Figure, layout: _Layout, column: int, row: int, text: str) -> None:
    x, y = layout.caption(column, row)
    figure.text(
        x / layout.width,
        1 - y / layout.height,
        text,
        ha="center",
        va="bottom",
        fontsize=_FONT,
        wrap=True,
    )


def _show(axes: Axes, pixels: torch.Tensor) -> None:
    """``(C, h, w)`` in [0, 1] drawn pixel for pixel."""
    array = pixels.permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        axes.imshow(array[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        axes.imshow(array, interpolation="nearest")


def _draw_input(
    figure: Figure,
    layout: _Layout,
    image: torch.Tensor,
    out_size: tuple[int, int],
    crop: tuple[int, int, int],
) -> None:
    height, width = image.shape[-2:]
    fit = min(layout.rows[0] / height, layout.column_width / width)
    shown = (round(height * fit), round(width * fit))
    axes = _axes(figure, layout, layout.panel(0, 0, shown[1], shown[0]))
    _show(axes, image.cpu())
    top, left, side = crop
    ry, rx = height / out_size[0], width / out_size[1]
    axes.add_patch(
        Rectangle((left * rx - 0.5, top * ry - 0.5), side * rx, side * ry, fill=False, color="red")
    )
    _caption(figure, layout, 0, 0, f"input {height}x{width}\n(shown at {fit:.2f}x)")
    region = image[
        :, round(top * ry) : round((top + side) * ry), round(left * rx) : round((left + side) * rx)
    ]
    zoomed = layout.rows[1]
    axes = _axes(figure, layout, layout.panel(0, 1, zoomed, zoomed))
    _show(axes, region.cpu())
    _caption(
        figure, layout, 0, 1, f"input, same region\n({region.shape[-2]}x{region.shape[-1]} px)"
    )


def _draw_output(
    figure: Figure,
    layout: _Layout,
    column: int,
    label: str,
    resized: torch.Tensor,
    crop: tuple[int, int, int],
    zoom: int,
) -> None:
    height, width = resized.shape[-2:]
    axes = _axes(figure, layout, layout.panel(column, 0, width, height))
    _show(axes, resized)
    top, left, side = crop
    axes.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, color="red"))
    _caption(figure, layout, column, 0, f"{label}\n{height}x{width}, real size")
    region = resized[:, top : top + side, left : left + side]
    enlarged = region.repeat_interleave(zoom, dim=1).repeat_interleave(zoom, dim=2)
    axes = _axes(figure, layout, layout.panel(column, 1, side * zoom, side * zoom))
    _show(axes, enlarged)
    _caption(figure, layout, column, 1, f"{label}\ncrop enlarged {zoom}x (nearest)")


def _draw_coefficients(
    figure: Figure,
    layout: _Layout,
    column: int,
    maps: CoefficientMaps,
    crop: tuple[int, int, int],
    deviation_top: float,
) -> None:
    deviation = maps.deviation.numpy()
    height, width = deviation.shape
    top, left, side = crop
    # The crop, enlarged into the real-size panel: at real size the map's pixel-periodic pattern
    # (the sampling phase repeats every few output pixels) blurs into colours of no one value.
    axes = _axes(figure, layout, layout.panel(column, 2, width, height))
    axes.imshow(
        deviation[top : top + side, left : left + side],
        cmap="magma",
        vmin=0.0,
        vmax=deviation_top,
        interpolation="nearest",
    )
    _caption(
        figure,
        layout,
        column,
        2,
        f"weight moved from classical (crop)\n0 black, {deviation_top:.2g} yellow; "
        f"image mean {deviation.mean():.2g}",
    )
    taps = maps.learned[top : top + side, left : left + side]
    panel = layout.rows[3]
    if taps.shape[-2:] == (2, 2):
        half = (panel - 4) // 2
        x, y, _, _ = layout.panel(column, 3, panel, panel)
        for ty in range(2):
            for tx in range(2):
                axes = _axes(figure, layout, (x + tx * (half + 4), y + ty * (half + 4), half, half))
                axes.imshow(
                    taps[:, :, ty, tx].numpy(),
                    cmap="viridis",
                    vmin=0.0,
                    vmax=1.0,
                    interpolation="nearest",
                )
        _caption(
            figure,
            layout,
            column,
            3,
            "weight on each of the 2x2 neighbours\n(crop; 0 purple, 1 yellow)",
        )
        return
    change = maps.entropy_change[top : top + side, left : left + side].numpy()
    bound = max(float(np.abs(change).max()), 1e-3)
    axes = _axes(figure, layout, layout.panel(column, 3, panel, panel))
    axes.imshow(change, cmap="coolwarm", vmin=-bound, vmax=bound, interpolation="nearest")
    _caption(
        figure,
        layout,
        column,
        3,
        f"coefficient entropy change (crop)\nblue: sharper than classical, +-{bound:.2g} nats",
    )


def _entropy(coefficients: torch.Tensor) -> torch.Tensor:
    safe = coefficients.clamp_min(1e-12)
    return -(coefficients * safe.log()).sum(dim=(-2, -1))
