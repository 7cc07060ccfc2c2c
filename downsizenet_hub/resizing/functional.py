"""The functional form of the resizers: plain functions the modules are thin wrappers around.

As kornia pairs ``warp_affine`` with its module, a DownsizeNet resize is three steps that can be
called on their own (by the exporters, by tests):

1. the sampling geometry of a resize (:meth:`DownsizeNet.prepare`, or
   :func:`~downsizenet_hub.resizing.geometry.build_geometry` uncached, e.g. from symbolic shapes);
2. the per-pixel coefficients (:meth:`DownsizeNet.coefficients`);
3. :func:`mix`: gather every tap and take the convex combination.

:func:`downsize` runs the three; :func:`interpolate` is the classical counterpart of the fixed
resizers. Conventions: images ``(B, C, H, W)`` float; coordinates as ``F.interpolate(
align_corners=False)`` (see :mod:`.target`); output ``(B, C, h, w)`` in the images' dtype.

Example:
    >>> import torch
    >>> from downsizenet_hub.resizing import DownsizeNet
    >>> images = torch.rand(1, 3, 40, 40)
    >>> out = downsize(images, DownsizeNet.as_bilinear(), scale_factor=0.5)
    >>> bool(torch.allclose(out, interpolate(images, "bilinear", scale_factor=0.5), atol=1e-6))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from downsizenet_hub.resizing.target import ScaleArg, SizeArg, resolve_output_size

if TYPE_CHECKING:
    from downsizenet_hub.resizing.downsizenet import DownsizeNet
    from downsizenet_hub.resizing.geometry import Geometry

#: Classical resizers, all from ``F.interpolate`` with ``align_corners=False`` where it applies.
FIXED_MODES: tuple[str, ...] = ("bilinear", "bicubic", "area", "antialias", "nearest")


def downsize(
    images: torch.Tensor,
    net: DownsizeNet,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    *,
    geometry: Geometry | None = None,
) -> torch.Tensor:
    """``net(images, size=..., scale_factor=...)`` as a function: check the call, take the
    cached geometry (or the one given, e.g. built from symbolic shapes), mix the taps."""
    checked = net.prepare(images, size, scale_factor)
    return net.resample(images, checked if geometry is None else geometry)


def mix(images: torch.Tensor, coefficients: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Gather every tap's pixel vector and take the convex mix: ``(B, C, h, w)``.

    ``coefficients`` ``(B, h, w, Ky, Kx)`` as :meth:`DownsizeNet.coefficients` returns them.
    """
    pixels = pixel_major(images)
    batch, channels = images.shape[:2]
    h, w = geometry.out_size
    taps = pixels.index_select(1, geometry.taps_index)  # (B, h*w*K, C)
    taps = taps.view(batch, h * w, -1, channels)
    weights = coefficients.reshape(batch, h * w, 1, -1).to(taps.dtype)
    out = torch.matmul(weights, taps).view(batch, h, w, channels)
    return out.permute(0, 3, 1, 2).to(images.dtype)


def pixel_major(images: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` as ``(B, H*W, C)`` pixel vectors (a view when already channels-last)."""
    batch, channels = images.shape[:2]
    return images.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def interpolate(
    images: torch.Tensor,
    mode: str,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
) -> torch.Tensor:
    """A classical resize (one of :data:`FIXED_MODES`) with the package's checks and geometry.

    ``antialias`` is bilinear with ``antialias=True`` (the triangle filter widened by the
    downscale factor); ``area`` is adaptive average pooling. A scale factor keeps
    ``F.interpolate``'s own geometry (coordinate step ``1 / s``), as DownsizeNet does.
    """
    if mode not in FIXED_MODES:
        raise ValueError(f"mode must be one of {list(FIXED_MODES)}, got {mode!r}.")
    target, _ = resolve_output_size(images, size, scale_factor)
    kwargs: dict[str, Any] = target.resize_kwargs()
    if mode in ("nearest", "area"):
        return F.interpolate(images, mode=mode, **kwargs)
    if mode == "antialias":
        return F.interpolate(images, mode="bilinear", align_corners=False, antialias=True, **kwargs)
    return F.interpolate(images, mode=mode, align_corners=False, **kwargs)
