"""Sampling geometry: which input pixels feed each output pixel, and with which classical weights.

Conventions follow ``F.interpolate(align_corners=False)``: pixel ``i`` of an axis of length ``n``
has its centre at ``i + 0.5``; output pixel ``i`` projects to the input coordinate
``(i + 0.5) * scale - 0.5``, where ``scale`` is ``in_size / out_size`` when a size is given and
``1 / scale_factor`` when a scale factor is given (as PyTorch does). Neighbour indices are clamped
to the image, so border pixels repeat.

Everything here is separable: an :class:`AxisSampling` describes one axis, and a 2-D neighbourhood
is the outer product of a row and a column sampling (:mod:`.geometry`). The results depend only
on the sizes and the scale, so :class:`~downsizenet_hub.resizing.downsizenet.DownsizeNet` computes
them once per shape and reuses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from downsizenet_hub.resizing.config import Neighbourhood

#: PyTorch's bicubic kernel parameter (``aten/src/ATen/native/UpSample.h``).
CUBIC_A = -0.75
#: Weight of the uniform part mixed into the bicubic prior so that no neighbour is unreachable.
BICUBIC_PRIOR_EPS = 1e-4


@dataclass(frozen=True)
class AxisSampling:
    """Sampling along one axis.

    Attributes:
        index: ``(out, K)`` long, the input index of each of the ``K`` neighbours.
        weight: ``(out, K)`` float64, the classical interpolation weights of the neighbourhood
            (bilinear, cubic with a = -0.75, or the antialiasing triangle filter); they sum to 1.
        prior: ``(out, K)`` float64, the convex weights a learned resizer starts from (bilinear,
            or the triangle filter for ``antialias``); non-negative, sum to 1.
        anchor: ``(out,)`` long, the top-left (here: lower) neighbour of the projected pixel, the
            position the floating pooling reads the texture feature from.
        offset: ``(out,)`` float64 in [0, 1], the distance from the anchor to the projected pixel
            (the paper's ``dx``), in input pixels.
        position: ``(out, K)`` float64 in [-1, 1], each neighbour's position relative to the
            projected pixel, in units of the filter support (used by the antialias head).
        valid: ``(out, K)`` bool, False for the padding taps of a variable-width support.
    """

    index: torch.Tensor
    weight: torch.Tensor
    prior: torch.Tensor
    anchor: torch.Tensor
    offset: torch.Tensor
    position: torch.Tensor
    valid: torch.Tensor


def coordinate_scale(in_size: int, out_size: int, scale_factor: float | None) -> float:
    """The input-per-output step PyTorch uses: ``1 / scale_factor`` if given, else ``in / out``.

    An axis whose length does not change is copied as is, whatever the scale factor, as
    PyTorch's CPU kernels do.
    """
    if in_size == out_size:
        return 1.0
    if scale_factor is not None and scale_factor > 0:
        return 1.0 / scale_factor
    return in_size / out_size


def _bilinear_frame(in_size: int, out_size: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor index and offset of ``F.interpolate(mode='bilinear', align_corners=False)``."""
    i = torch.arange(out_size, dtype=torch.float64)
    src = ((i + 0.5) * scale - 0.5).clamp_min(0.0)
    anchor = src.floor().long().clamp_max(in_size - 1)
    offset = src - anchor.double()
    return anchor, offset


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """The four cubic-convolution weights for fractional offsets ``t`` (shape ``(out, 4)``)."""
    a = CUBIC_A

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=1)


def _bilinear(in_size: int, out_size: int, scale: float) -> AxisSampling:
    anchor, offset = _bilinear_frame(in_size, out_size, scale)
    index = torch.stack([anchor, (anchor + 1).clamp_max(in_size - 1)], dim=1)
    weight = torch.stack([1 - offset, offset], dim=1)
    position = torch.stack([-offset, 1 - offset], dim=1)
    valid = torch.ones_like(index, dtype=torch.bool)
    return AxisSampling(index, weight, weight, anchor, offset, position, valid)


def _bicubic(in_size: int, out_size: int, scale: float) -> AxisSampling:
    # PyTorch's cubic mode does not clamp the source coordinate at 0, only the indices.
    i = torch.arange(out_size, dtype=torch.float64)
    src = (i + 0.5) * scale - 0.5
    floor = src.floor()
    t = src - floor
    base = floor.long()
    index = torch.stack([base + k for k in (-1, 0, 1, 2)], dim=1).clamp(0, in_size - 1)
    weight = _cubic_weights(t)
    # The prior is bilinear written in the 4-tap frame (equal to F.interpolate bilinear, also at
    # the borders, because the clamped indices repeat the border pixel), plus a little uniform
    # mass so that the outer ring stays reachable by learning.
    zeros = torch.zeros_like(t)
    bilinear = torch.stack([zeros, 1 - t, t, zeros], dim=1)
    prior = (1 - BICUBIC_PRIOR_EPS) * bilinear + BICUBIC_PRIOR_EPS / 4
    anchor, offset = _bilinear_frame(in_size, out_size, scale)
    position = (torch.arange(-1, 3, dtype=torch.float64)[None, :] - t[:, None]) / 2
    valid = torch.ones_like(index, dtype=torch.bool)
    return AxisSampling(index, weight, prior, anchor, offset, position.clamp(-1, 1), valid)


def antialias_taps(scale: float) -> int:
    """Number of taps of PyTorch's antialiased bilinear filter at this input-per-output step."""
    support = scale if scale >= 1.0 else 1.0
    return math.ceil(support) * 2 + 1


def _antialias(in_size: int, out_size: int, scale: float) -> AxisSampling:
    """The triangle filter widened by the downscale factor, as in ``_upsample_bilinear2d_aa``."""
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    taps = antialias_taps(scale)
    i = torch.arange(out_size, dtype=torch.float64)
    center = scale * (i + 0.5)
    # C++ truncates toward zero before the max with 0; for these non-negative bounds that is floor.
    xmin = (center - support + 0.5).floor().clamp_min(0).long()
    xmax = (center + support + 0.5).floor().long().clamp_max(in_size)
    xsize = (xmax - xmin).clamp(0, taps)
    j = torch.arange(taps)
    index_unclamped = xmin[:, None] + j[None, :]
    valid = j[None, :] < xsize[:, None]
    distance = (index_unclamped.double() - center[:, None] + 0.5) * invscale
    weight = (1.0 - distance.abs()).clamp_min(0.0) * valid
    weight = weight / weight.sum(dim=1, keepdim=True).clamp_min(1e-300)
    index = index_unclamped.clamp_max(in_size - 1)
    anchor, offset = _bilinear_frame(in_size, out_size, scale)
    position = ((index_unclamped.double() + 0.5 - center[:, None]) / support).clamp(-1, 1)
    return AxisSampling(index, weight, weight, anchor, offset, position, valid)


_BUILDERS = {"bilinear": _bilinear, "bicubic": _bicubic, "antialias": _antialias}


def axis_sampling(
    neighbourhood: Neighbourhood, in_size: int, out_size: int, scale_factor: float | None = None
) -> AxisSampling:
    """Sampling of one axis from ``in_size`` to ``out_size`` pixels.

    Args:
        neighbourhood: ``"bilinear"`` (2 taps), ``"bicubic"`` (4 taps) or ``"antialias"``
            (``2 * ceil(max(in/out, 1)) + 1`` taps).
        in_size: input length, >= 1.
        out_size: output length, >= 1.
        scale_factor: the scale factor the caller asked for, if any; it sets the coordinate step
            exactly as ``F.interpolate(scale_factor=...)`` does.
    """
    scale = coordinate_scale(in_size, out_size, scale_factor)
    return _BUILDERS[neighbourhood](in_size, out_size, scale)
