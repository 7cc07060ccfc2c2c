"""The fixed (classical) resizers behind the same call signature as DownsizeNet.

Every resizer of the package is called ``resizer(images, size=(h, w))`` or
``resizer(images, scale_factor=s)``, so pipelines, the tools and the commands treat learned and
classical resizing alike. :class:`FixedResizer` is ``F.interpolate`` in that form, through
:func:`~downsizenet_hub.resizing.functional.interpolate`; the registry
(:func:`downsizenet_hub.registry.create_resizer`) builds one from its name.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from downsizenet_hub.resizing.functional import FIXED_MODES, interpolate
from downsizenet_hub.resizing.target import ScaleArg, SizeArg

FixedMode = Literal["bilinear", "bicubic", "area", "antialias", "nearest"]
#: The names of the fixed resizers (the modes of :func:`.functional.interpolate`).
FIXED_RESIZERS: tuple[str, ...] = FIXED_MODES


class FixedResizer(nn.Module):
    """``F.interpolate`` behind the resizer call signature; no parameters.

    ``antialias`` is bilinear with ``antialias=True`` (the triangle filter widened by the
    downscale factor); ``area`` is adaptive average pooling.
    """

    def __init__(self, mode: FixedMode) -> None:
        super().__init__()
        if mode not in FIXED_RESIZERS:
            raise ValueError(f"mode must be one of {list(FIXED_RESIZERS)}, got {mode!r}.")
        self.mode = mode

    def forward(
        self,
        images: torch.Tensor,
        size: SizeArg | None = None,
        scale_factor: ScaleArg | None = None,
    ) -> torch.Tensor:
        return interpolate(images, self.mode, size, scale_factor)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"
