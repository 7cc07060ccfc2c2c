"""The last texture convolution at the anchors only: the grid of 3x3 blocks it reads.

Floating pooling reads the texture branch's last feature map at one input pixel per output
pixel (its *anchor*, the top-left neighbour of its projection). That map is a 3x3 convolution
(padding 1, stride 1) followed by a ReLU, so its value at an anchor ``(r, c)`` depends only on the
3x3 neighbourhood ``r-1..r+1, c-1..c+1`` of the previous feature map, zeros outside the image.
Gather those neighbourhoods, for the ``h x w`` anchors, into a ``(3h, 3w)`` grid of 3x3 blocks
(block ``(i, j)`` is the neighbourhood of anchor ``(i, j)``, pixels outside the image set to zero):
a 3x3 convolution with stride 3 and no padding then visits each block exactly once, with the same
weights, the same 9 products and the same zero padding as the full convolution at the anchor. Its
``(h, w)`` output *is* the pooled features, exact up to float summation order, whether anchors
repeat (upsizing), skip pixels (downsizing) or sit on a border.

It pays when the grid is small next to the map it replaces: ``9 h w`` pixels against ``H W``
(513->179: 0.27M against 0.26M pixels, 1/8 of that layer's arithmetic). Beyond
:data:`ANCHOR_MOSAIC_MAX_RATIO` the gather costs more than the convolution it saves, and the
whole map is computed (and the grid, held at once with one feature map, stays under twice a map,
which :meth:`DownsizeNet.memory_estimate <.downsizenet.DownsizeNet.memory_estimate>` counts).

This module builds the grid's indices (per band of input rows, :class:`Band`) and gathers it; the
convolution itself runs in :mod:`.texture`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch

from downsizenet_hub.resizing.functional import pixel_major
from downsizenet_hub.resizing.geometry import Geometry
from downsizenet_hub.resizing.workspace import Workspace

#: The last texture conv runs at the anchors only when the grid of their 3x3 neighbourhoods
#: (``9 h w`` pixels) is at most this many times the input (issue 19): 513->179 (1.1x; 8x less
#: arithmetic for that layer) pays, 300->160 (3.5x less arithmetic but a gather 2.6x the map's
#: size) did not (resizer alone, batch 8: 365 ms against 298 with the full layer; f9b2cf7).
ANCHOR_MOSAIC_MAX_RATIO = 2.0
_BAND_CACHE_SIZE = 16


def anchors_pay(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether the last conv runs at the anchors only for this resize (see the module)."""
    return 9 * out_size[0] * out_size[1] <= ANCHOR_MOSAIC_MAX_RATIO * in_size[0] * in_size[1]


class Band(NamedTuple):
    """Output rows ``start:stop`` whose texture features come from input rows ``top:bottom``.

    ``mosaic_index`` flattens, for each of those output pixels, the 3x3 input neighbourhood of
    its anchor (rows relative to ``top``, clamped to the image) into a ``(3n, 3w)`` grid of
    pixel indices; ``zero_rows`` / ``zero_cols`` are the grid rows and columns that fall
    outside the image, which the last convolution must read as its zero padding.
    """

    start: int
    stop: int
    top: int
    bottom: int
    mosaic_index: torch.Tensor  # (3n * 3w,) long, flat pixel index into rows top:bottom
    zero_rows: torch.Tensor  # long, grid rows outside the image
    zero_cols: torch.Tensor  # long, grid columns outside the image


def build_bands(
    geometry: Geometry, height: int, width: int, rows_per_band: int, halo: int
) -> list[Band]:
    """Split the output rows into bands of about ``rows_per_band`` input rows (see :class:`Band`).

    Each band reads ``halo`` (the number of conv layers) rows above its first anchor row and
    below its last, so that the features the last conv reads (anchor rows +-1) are exact."""
    out_rows = geometry.anchor_rows.cpu()
    cols = geometry.anchor_cols.cpu()
    offsets = torch.arange(-1, 2)
    col_taps = (cols[:, None] + offsets).reshape(-1)
    zero_cols = ((col_taps < 0) | (col_taps >= width)).nonzero().flatten()
    col_taps = col_taps.clamp(0, width - 1)
    device = geometry.anchor_rows.device
    bands = []
    start = 0
    while start < len(out_rows):
        # Output rows whose anchors fall in the next band of input rows.
        first = int(out_rows[start])
        stop = int(torch.searchsorted(out_rows, first + rows_per_band))
        stop = max(stop, start + 1)
        last = int(out_rows[stop - 1])
        top, bottom = max(0, first - halo), min(height, last + 1 + halo)
        row_taps = (out_rows[start:stop, None] + offsets).reshape(-1)
        outside = (row_taps < 0) | (row_taps >= height)
        row_taps = row_taps.clamp(0, height - 1) - top
        index = row_taps[:, None] * width + col_taps[None, :]
        bands.append(
            Band(
                start=start,
                stop=stop,
                top=top,
                bottom=bottom,
                mosaic_index=index.reshape(-1).to(device),
                zero_rows=outside.nonzero().flatten().to(device),
                zero_cols=zero_cols.to(device),
            )
        )
        start = stop
    return bands


class BandCache:
    """The bands of the last few geometries (a DownsizeNet holds one and clears it on ``_apply``,
    since the indices live on the module's device)."""

    def __init__(self) -> None:
        # (id(geometry), height, width, rows per band, halo) -> (geometry, bands); holding the
        # geometry keeps its id from being reused while the entry lives.
        self._entries: OrderedDict[tuple[int, ...], tuple[Geometry, list[Band]]] = OrderedDict()

    def bands(
        self, geometry: Geometry, height: int, width: int, rows_per_band: int, halo: int
    ) -> list[Band]:
        """:func:`build_bands`, cached per geometry and band height."""
        key = (id(geometry), height, width, rows_per_band, halo)
        cached = self._entries.get(key)
        if cached is not None and cached[0] is geometry:  # a copied cache holds other objects
            self._entries.move_to_end(key)
            return cached[1]
        bands = build_bands(geometry, height, width, rows_per_band, halo)
        self._entries[key] = (geometry, bands)
        if len(self._entries) > _BAND_CACHE_SIZE:
            self._entries.popitem(last=False)
        return bands

    def clear(self) -> None:
        self._entries.clear()


def gather_blocks(
    features: torch.Tensor, band: Band, out_width: int, *, workspace: Workspace | None = None
) -> torch.Tensor:
    """The grid of 3x3 blocks of ``band``'s anchors, ``(B, C, 3n, 3w)`` channels-last, zero
    outside the image; ``features`` are the input rows ``band.top:band.bottom`` of the last conv,
    channels-last. With a ``workspace`` (inference) the grid is written into its buffer, which
    the next call overwrites: use the grid before then."""
    batch = features.shape[0]
    rows = 3 * (band.stop - band.start)
    pixels = pixel_major(features)
    shape = (batch, band.mosaic_index.numel(), pixels.shape[-1])
    kept = None if workspace is None else workspace.buffer("grid", shape, pixels)
    if kept is None:
        grid = pixels.index_select(1, band.mosaic_index)
    else:
        grid = torch.index_select(pixels, 1, band.mosaic_index, out=kept)
    grid = grid.view(batch, rows, 3 * out_width, -1)
    # The last conv's zero padding (index_fill_: a tenth of the cost of index_put_ here).
    if len(band.zero_rows):
        grid.index_fill_(1, band.zero_rows, 0)
    if len(band.zero_cols):
        grid.index_fill_(2, band.zero_cols, 0)
    return grid.permute(0, 3, 1, 2)
