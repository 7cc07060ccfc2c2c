"""One way to turn a resizer reference into a module: fixed interpolation or a DownsizeNet.

Every resizer here has the same call signature as :class:`~downsizenet_hub.DownsizeNet`:
``resizer(images, size=(h, w))`` or ``resizer(images, scale_factor=s)``, so pipelines, the
``resize`` command and the transforms treat learned and classical resizing alike.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from downsizenet_hub.resizer import DownsizeNet, ScaleArg, SizeArg, resolve_output_size

FixedMode = Literal["bilinear", "bicubic", "area", "antialias", "nearest"]
#: Classical resizers, all from ``F.interpolate`` with ``align_corners=False`` where it applies.
FIXED_RESIZERS: tuple[str, ...] = ("bilinear", "bicubic", "area", "antialias", "nearest")
#: A fresh, trainable DownsizeNet (the paper's default configuration) for pretraining.
TRAINABLE = "downsizenet"


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
        out_size, scales = resolve_output_size(images, size, scale_factor)
        kwargs: dict[str, Any] = {}
        if scales[0] is not None:
            # Keep F.interpolate's own scale_factor geometry (coordinate step 1/s).
            kwargs["scale_factor"] = (scales[0], scales[1])
        else:
            kwargs["size"] = out_size
        if self.mode in ("nearest", "area"):
            return F.interpolate(images, mode=self.mode, **kwargs)
        if self.mode == "antialias":
            return F.interpolate(
                images, mode="bilinear", align_corners=False, antialias=True, **kwargs
            )
        return F.interpolate(images, mode=self.mode, align_corners=False, **kwargs)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


def is_fixed(ref: str) -> bool:
    """Whether ``ref`` names a classical resizer."""
    return ref in FIXED_RESIZERS


def build_resizer(ref: str | nn.Module, **config: Any) -> nn.Module:
    """Resolve a resizer reference.

    Args:
        ref: a module (returned as is); one of :data:`FIXED_RESIZERS`; ``"downsizenet"`` for a
            fresh trainable DownsizeNet (``config`` overrides its DownsizeNetConfig); or a
            published resizer: a directory, a local-hub name or a Hugging Face repo id (see
            :func:`downsizenet_hub.hub.from_pretrained`).
    """
    if isinstance(ref, nn.Module):
        return ref
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"a resizer reference must be a non-empty string, got {ref!r}.")
    if is_fixed(ref):
        if config:
            raise ValueError(f"the fixed resizer {ref!r} takes no configuration.")
        return FixedResizer(ref)  # type: ignore[arg-type]
    if ref == TRAINABLE:
        return DownsizeNet(**config)
    if config:
        raise ValueError("a published resizer's configuration comes from its config.json.")
    return DownsizeNet.from_pretrained(ref)
