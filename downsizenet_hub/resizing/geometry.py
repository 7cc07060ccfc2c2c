"""The per-shape sampling constants of a DownsizeNet: :class:`Geometry` and :func:`build_geometry`.

:mod:`.sampling` describes one axis (which input pixels feed each output pixel, with which
classical weights); this module takes the outer product of a row and a column sampling and lays
the result out the way :class:`~downsizenet_hub.resizing.downsizenet.DownsizeNet` consumes it:
flat gather indices, the relative-distance map the 1x1 head reads (Ma et al., "Task
Generalizable Spatial and Texture Aware Image Downsizing Network": the
``[(1-dx)(1-dy), dx(1-dy), (1-dx)dy, dxdy]`` for 2x2 taps), the classical prior and the mask of
real taps. Everything depends only on the configuration, the sizes and the scale factors.

DownsizeNet caches one Geometry per shape; :func:`build_geometry` is the uncached builder, public so
that an exported graph (the ONNX exporter of the tools) can rebuild it from symbolic shapes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from downsizenet_hub.resizing.config import ANTIALIAS_GRID, DownsizeNetConfig
from downsizenet_hub.resizing.sampling import AxisSampling, axis_sampling


def _hat_weights(position: torch.Tensor, nodes: int) -> torch.Tensor:
    """Linear-interpolation weights of ``position`` in [-1, 1] on ``nodes`` evenly spaced nodes."""
    grid = torch.linspace(-1.0, 1.0, nodes, dtype=position.dtype)
    spacing = 2.0 / (nodes - 1)
    return (1.0 - (position[..., None] - grid).abs() / spacing).clamp_min(0.0)


class Geometry(NamedTuple):
    """Per-shape constants, in pixel-major (channels-last) order: output pixel, then tap.

    Flat indices address ``H * W`` input pixels, so gathers move whole pixel vectors.
    """

    taps_index: torch.Tensor  # (h * w * Ky * Kx,) long, flat input pixel of every tap
    anchor_index: torch.Tensor  # (h * w,) long, flat input pixel of each top-left neighbour
    distance: torch.Tensor  # (h * w, D), the relative-distance vectors
    log_prior: torch.Tensor  # (h, w, Ky, Kx), log(prior): -inf on padding taps
    prior: torch.Tensor  # (h, w, Ky, Kx), convex weights, 0 on padding taps (else ones if no prior)
    mask: torch.Tensor  # (h, w, Ky, Kx), 1 for real taps, 0 for padding taps
    grid_y: torch.Tensor | None  # (h, Ky, G) hat-function weights of the antialias logit grid
    grid_x: torch.Tensor | None  # (w, Kx, G)
    out_size: tuple[int, int]
    taps: tuple[int, int]
    anchor_rows: torch.Tensor  # (h,) long, non-decreasing
    anchor_cols: torch.Tensor  # (w,) long


def build_geometry(
    config: DownsizeNetConfig,
    in_size: tuple[int, ...],
    out_size: tuple[int, int],
    scales: tuple[float | None, float | None],
    device: torch.device,
) -> Geometry:
    rows = axis_sampling(config.neighbourhood, in_size[0], out_size[0], scales[0])
    cols = axis_sampling(config.neighbourhood, in_size[1], out_size[1], scales[1])
    ky, kx = rows.index.shape[1], cols.index.shape[1]
    width = in_size[1]

    def outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (h, Ky), (w, Kx) -> (h,w,Ky,Kx)
        return a[:, None, :, None] * b[None, :, None, :]

    grid_y: torch.Tensor | None = None
    grid_x: torch.Tensor | None = None
    if config.neighbourhood == "antialias":
        distance = _distance_map(_bilinear_pair(rows), _bilinear_pair(cols))
        grid_y = _hat_weights(rows.position, ANTIALIAS_GRID).float().to(device)
        grid_x = _hat_weights(cols.position, ANTIALIAS_GRID).float().to(device)
    else:
        distance = _distance_map(rows.weight, cols.weight)
    mask = outer(rows.valid.double(), cols.valid.double()).float()
    prior = (
        outer(rows.prior, cols.prior).float() if config.distance_prior else torch.ones_like(mask)
    ) * mask
    taps_index = rows.index[:, None, :, None] * width + cols.index[None, :, None, :]
    anchor_index = rows.anchor[:, None] * width + cols.anchor[None, :]
    return Geometry(
        taps_index=taps_index.reshape(-1).to(device),
        anchor_index=anchor_index.reshape(-1).to(device),
        distance=distance.float().to(device),
        log_prior=prior.log().to(device),
        prior=prior.to(device),
        mask=mask.to(device),
        grid_y=grid_y,
        grid_x=grid_x,
        out_size=out_size,
        taps=(ky, kx),
        anchor_rows=rows.anchor.to(device),
        anchor_cols=cols.anchor.to(device),
    )


def _bilinear_pair(axis: AxisSampling) -> torch.Tensor:
    return torch.stack([1 - axis.offset, axis.offset], dim=1)


def _distance_map(weight_y: torch.Tensor, weight_x: torch.Tensor) -> torch.Tensor:
    """The relative-distance vectors ``(h*w, Ky*Kx)``: products ``wy[a] * wx[b]``, row-major.

    For 2 taps this is the paper's ``[(1-dx)(1-dy), dx(1-dy), (1-dx)dy, dxdy]``.
    """
    products = weight_y[:, None, :, None] * weight_x[None, :, None, :]  # (h, w, Ky, Kx)
    h, w, ky, kx = products.shape
    return products.reshape(h * w, ky * kx)
