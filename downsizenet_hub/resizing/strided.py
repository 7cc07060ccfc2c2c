"""Downsizing by a learned strided convolution, a baseline for DownsizeNet: :class:`StridedResizer`.

The front-end that the DownsizeNet paper (Ma et al., "Task Generalizable Spatial and Texture Aware
Image Downsizing Network") argues cannot generalise to other pipelines: a k x k, stride-k
convolution from image channels to image channels, whose output, once trained, need not be an
image. It starts as k x k averaging (area resizing) and only resizes by integer factors 1/k.

Imports nothing of this package but its torch-free config (:mod:`.baseline_config`) and the
call check it shares with :mod:`.talebi`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from downsizenet_hub.resizing.baseline_config import StridedConfig, resolve_config
from downsizenet_hub.resizing.talebi import check_resize_call

__all__ = ["SCALE_TOLERANCE", "StridedConfig", "StridedResizer"]

#: How far a scale factor may be from 1/k and still count as 1/k.
SCALE_TOLERANCE = 1e-9


class StridedResizer(nn.Module):
    """A learned k x k, stride-k convolution (with bias) from image channels to image channels.

    Conventions: input ``(B, C, H, W)`` in the parameters' dtype, output
    ``(B, C, H // k, W // k)``. Output pixel ``(i, j)`` reads input pixels ``[k i, k i + k) x
    [k j, k j + k)``, centred on ``k i + (k - 1) / 2``: the same coordinate mapping as
    ``F.interpolate(scale_factor=1/k, align_corners=False)``. When ``H`` or ``W`` is not a
    multiple of ``k`` (513 at x0.5), the last ``H mod k`` rows or ``W mod k`` columns are not
    read, as in ``avg_pool2d``.

    Accepted requests: ``scale_factor=1/k`` (within 1e-9, one value or the same pair) for any
    image of at least ``k`` pixels per side, or ``size=(H // k, W // k)`` when ``H`` and ``W``
    are multiples of ``k`` (otherwise the size implies a non-integer factor). Anything else is a
    ValueError: the resizer has no geometry for other factors.

    Starting point: with ``init="area"`` (the default) the weights are ``1 / k**2`` from each
    channel to itself and 0 across channels, the bias 0: the module computes
    ``avg_pool2d(images, k)``, which equals ``F.interpolate(mode="area")`` exactly when ``H`` and
    ``W`` are multiples of ``k``.

    Example:
        >>> import torch
        >>> resizer = StridedResizer()
        >>> resizer(torch.rand(2, 3, 300, 300), scale_factor=0.5).shape
        torch.Size([2, 3, 150, 150])
        >>> resizer(torch.rand(1, 3, 513, 513), scale_factor=0.5).shape
        torch.Size([1, 3, 256, 256])
    """

    #: The classical resizer it starts as (with the default init): what ``pretrain`` measures how
    #: far the trained module moved from.
    starts_as: ClassVar[str] = "area"

    def __init__(self, config: StridedConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = resolve_config(StridedConfig, config, overrides)
        self.config = config
        self.conv = nn.Conv2d(config.channels, config.channels, config.k, stride=config.k)
        if config.init == "area":
            self.reset_to_area()

    @classmethod
    def from_config(cls, config: StridedConfig | dict[str, Any]) -> StridedResizer:
        """Build from a :class:`StridedConfig` or its dict (config.json)."""
        if isinstance(config, dict):
            config = StridedConfig.from_dict(config)
        return cls(config)

    @torch.no_grad()
    def reset_to_area(self) -> None:
        """Set the convolution to k x k averaging per channel (no mixing across channels)."""
        k = self.config.k
        self.conv.weight.zero_()
        for channel in range(self.config.channels):
            self.conv.weight[channel, channel].fill_(1.0 / (k * k))
        assert self.conv.bias is not None  # built with a bias
        self.conv.bias.zero_()

    def forward(
        self,
        images: torch.Tensor,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """Downsize ``images`` (``B x C x H x W``) by ``1/k``; see the class docstring for which
        ``size`` and ``scale_factor`` are accepted. Returns ``B x C x H // k x W // k``."""
        check_resize_call(images, self.config.channels, size, scale_factor)
        self.check_request(int(images.shape[-2]), int(images.shape[-1]), size, scale_factor)
        return self.conv(images)

    def check_request(
        self,
        height: int,
        width: int,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
    ) -> None:
        """ValueError in one sentence unless a ``height x width`` image can be resized with this
        ``size`` or ``scale_factor`` (see the class docstring), so that callers can refuse a
        request before they build or train anything."""
        if not self._supports(height, width, size, scale_factor):
            k = self.config.k
            asked = f"size={size!r}" if size is not None else f"scale_factor={scale_factor!r}"
            raise ValueError(
                f"a stride-{k} StridedResizer only downsizes by 1/{k} (scale_factor={1 / k:g}, "
                f"or size=(H // {k}, W // {k}) with H and W multiples of {k}), got {asked} "
                f"for a {height}x{width} image."
            )

    def _supports(
        self,
        height: int,
        width: int,
        size: int | tuple[int, int] | None,
        scale_factor: float | tuple[float, float] | None,
    ) -> bool:
        k = self.config.k
        if min(height, width) < k:
            return False
        if scale_factor is not None:
            factors = scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor]
            return all(
                isinstance(s, (int, float))
                and not isinstance(s, bool)
                and math.isfinite(s)
                and abs(s - 1 / k) <= SCALE_TOLERANCE
                for s in factors
            ) and len(factors) in (1, 2)
        if height % k or width % k:
            return False
        target = tuple(size) if isinstance(size, (tuple, list, torch.Size)) else (size, size)
        return target == (height // k, width // k)

    def extra_repr(self) -> str:
        return f"k={self.config.k}"
