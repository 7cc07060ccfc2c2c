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

Where the grid does not pay but the anchors skip rows (a downscale by up to about 1.5, as
300->160), the last conv runs at the anchor rows only, over their whole width: gather the three
rows around each anchor row into a ``(3h, W)`` map (rows outside the image set to zero) and run
the 3x3 convolution on it with stride 3 down and 1 across, padded across only. Its ``(h, W)``
output holds every anchor's feature, again exact up to float summation order; without autograd
it replaces the whole last map up to :data:`ANCHOR_ROWS_MAX_RATIO` (300->160: 53% of that
layer's arithmetic, for a gather of 1.6 maps' rows).

This module builds the grid's and the rows' indices (per band of input rows, :class:`Band`) and
gathers them; the convolutions themselves run in :mod:`.texture`.
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
#: Without autograd, where the grid does not pay, the last texture conv runs at the anchor rows
#: only when they number at most this fraction of the input rows, so that the ``3h`` rows it
#: gathers cost less than the ``H - h`` rows of convolution it saves. Resizer alone, interleaved,
#: at 300 px against the whole last map: 0.86-0.95x the time at 300->160 (0.53; batch 1 and 8,
#: both allocator settings), 1.00x at 300->180 (0.6, batch 1), 0.99-1.04x at 0.7 (batch 1, 4),
#: 1.06-1.07x at 0.8. Where the grid pays it is kept: at 513->179 the rows cost 1.01-1.06x.
ANCHOR_ROWS_MAX_RATIO = 0.6
_BAND_CACHE_SIZE = 16


def anchors_pay(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether the last conv runs at the anchors only for this resize (see the module)."""
    return 9 * out_size[0] * out_size[1] <= ANCHOR_MOSAIC_MAX_RATIO * in_size[0] * in_size[1]


def anchor_rows_pay(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether, without autograd, the last conv runs at the anchor rows only (see the module):
    where the grid of :func:`anchors_pay` does not pay and the anchor rows are few enough."""
    rows_pay = out_size[0] <= ANCHOR_ROWS_MAX_RATIO * in_size[0]
    return rows_pay and not anchors_pay(in_size, out_size)


class Band(NamedTuple):
    """Output rows ``start:stop`` whose texture features come from input rows ``top:bottom``.

    ``mosaic_index`` flattens, for each of those output pixels, the 3x3 input neighbourhood of
    its anchor (rows relative to ``top``, clamped to the image) into a ``(3n, 3w)`` grid of
    pixel indices; ``zero_rows`` / ``zero_cols`` are the grid rows and columns that fall
    outside the image, which the last convolution must read as its zero padding.
    ``row_taps`` are the grid's ``3n`` rows alone (the three input rows around each anchor row,
    relative to ``top``, clamped; ``zero_rows`` again the ones outside the image), and
    ``row_anchor_index`` the flat index of each anchor in the ``(n, W)`` map of a convolution at
    the anchor rows; ``anchor_rows`` the anchor rows themselves, relative to ``top`` (what the
    compiled kernel of :mod:`.native` reads, with the geometry's anchor columns).
    """

    start: int
    stop: int
    top: int
    bottom: int
    mosaic_index: torch.Tensor  # (3n * 3w,) long, flat pixel index into rows top:bottom
    zero_rows: torch.Tensor  # long, grid rows outside the image
    zero_cols: torch.Tensor  # long, grid columns outside the image
    row_taps: torch.Tensor  # (3n,) long, input rows relative to top
    anchor_rows: torch.Tensor  # (n,) long, the anchor rows relative to top
    row_anchor_index: torch.Tensor  # (n * w,) long, flat index into an (n, W) map


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
        row_anchor_index = torch.arange(stop - start)[:, None] * width + cols[None, :]
        bands.append(
            Band(
                start=start,
                stop=stop,
                top=top,
                bottom=bottom,
                mosaic_index=index.reshape(-1).to(device),
                zero_rows=outside.nonzero().flatten().to(device),
                zero_cols=zero_cols.to(device),
                row_taps=row_taps.to(device),
                anchor_rows=(out_rows[start:stop] - top).to(device),
                row_anchor_index=row_anchor_index.reshape(-1).to(device),
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


def gather_rows(
    features: torch.Tensor, band: Band, *, workspace: Workspace | None = None
) -> torch.Tensor:
    """The three rows around each of ``band``'s anchor rows, ``(B, C, 3n, W)`` channels-last,
    zero outside the image; ``features`` as for :func:`gather_blocks`. With a ``workspace`` the
    rows are written into its buffer, which the next call overwrites."""
    batch, channels, height, width = features.shape
    # Whole rows of one flat (B*H, W*C) matrix: a row copy each, 2-3x faster than a gather
    # along the rows of the 4-D tensor.
    pixels = features.permute(0, 2, 3, 1).reshape(batch * height, width * channels)
    index = band.row_taps
    if batch > 1:
        first_rows = torch.arange(0, batch * height, height, device=index.device)
        index = (first_rows[:, None] + index).reshape(-1)
    shape = (index.numel(), width * channels)
    kept = None if workspace is None else workspace.buffer("rows", shape, pixels)
    if kept is None:
        gathered = pixels.index_select(0, index)
    else:
        gathered = torch.index_select(pixels, 0, index, out=kept)
    gathered = gathered.view(batch, -1, width, channels)
    if len(band.zero_rows):
        gathered.index_fill_(1, band.zero_rows, 0)
    return gathered.permute(0, 3, 1, 2)
