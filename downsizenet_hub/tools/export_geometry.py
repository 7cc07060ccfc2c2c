"""How a resizer's sampling geometry gets into an exported graph, exactly or not at all.

DownsizeNet builds its geometry (which input pixels each output pixel mixes) in Python, in
float64, from the shapes, and caches it per shape. Two ways to export it:

* **as constants** (:func:`warmed`): run the resizer once on the example first, so the export
  records the cached float64 geometry. Exact, for one input size.
* **in the graph** (:func:`cache_free`): rebuild the geometry on every call from the (symbolic)
  shapes, so the input size can vary. The cache must be bypassed (its keys are shapes, which are
  symbols during export), and the dynamo ONNX exporter (torch 2.14) writes Python float scalars
  and the symbolic ``H / h`` as float32. Where an output pixel's centre falls exactly on an input
  pixel edge, float32 rounding moves its anchor pixel by one: classical weights barely change,
  but a learned resizer reads its texture features at the anchor, so its coefficients change.
  :func:`check_dynamic_possible` refuses the cases where that happens (see its docstring).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.target import ScaleArg, SizeArg, resize_target


class BoundResizer(nn.Module):
    """A resizer bound to one ``size`` or ``scale_factor``: ``forward(images)`` only.

    Exporters need a single-tensor forward. With a scale factor the module also states to the
    exporter that the output is smaller (or larger) than the input and at least one pixel, which
    lets the dynamo exporter keep the input size symbolic.

    Example:
        >>> import torch
        >>> from downsizenet_hub import DownsizeNet
        >>> bound = BoundResizer(DownsizeNet(), scale_factor=0.5)
        >>> bound(torch.rand(1, 3, 64, 48)).shape
        torch.Size([1, 3, 32, 24])
    """

    def __init__(
        self, resizer: nn.Module, size: SizeArg | None = None, scale_factor: ScaleArg | None = None
    ) -> None:
        super().__init__()
        resize_target(size, scale_factor)  # checked now, not at the first call
        self.resizer = resizer
        self.size = size
        self.scale_factor = scale_factor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.scale_factor is not None and torch.compiler.is_exporting():
            _state_scale_facts(images, self.scale_factor)
        return self.resizer(images, size=self.size, scale_factor=self.scale_factor)


def check_dynamic_possible(
    net: nn.Module, size: SizeArg | None, scale_factor: ScaleArg | None
) -> None:
    """Refuse a dynamic input size where the in-graph float32 geometry would differ.

    A fixed output size: refused for DownsizeNet (``H / h`` is computed in float32 and many input
    sizes put some output centre exactly on a pixel edge, e.g. 50 -> 18 at column 4; the
    ``antialias`` neighbourhood also changes its tap count ``2 * ceil(H / h) + 1``). A scale
    factor: the step ``1 / s`` is one constant, allowed when its float32 rounding moves no anchor
    for the first 4096 output pixels. Fixed resizers map to one ONNX op and are not checked here.
    """
    if not isinstance(net, DownsizeNet):
        return  # F.interpolate maps to one ONNX op; the numerical check decides
    if size is not None:
        raise ValueError(
            "a DownsizeNet with a fixed output size cannot take a dynamic input size: the ONNX "
            "exporter computes the scale H/h in float32, which moves anchor pixels for some "
            "input sizes; export a fixed input size, or use a scale factor."
        )
    assert scale_factor is not None
    factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
    for factor in factors:
        index = first_float32_flip(float(factor), net.config.neighbourhood)
        if index is not None:
            raise ValueError(
                f"scale factor {factor}: the ONNX exporter rounds 1/{factor} to float32, which "
                f"moves the anchor of output pixel {index}; export a fixed input size, or use a "
                "scale whose inverse float32 keeps (e.g. 0.25, 0.3, 0.35, 0.5)."
            )


def first_float32_flip(scale_factor: float, neighbourhood: str, limit: int = 4096) -> int | None:
    """The first output index < ``limit`` whose integer sampling decisions change when ``1 / s``
    is rounded to float32, as the dynamo ONNX exporter does; None when there is none.

    The decisions are the anchor ``floor((i + 0.5) / s - 0.5)`` (bilinear, bicubic, floating
    pooling) and, for ``antialias``, the filter bounds ``floor(c -+ support + 0.5)``.
    """
    step = 1.0 / scale_factor
    rounded = float(np.float32(step))
    i = torch.arange(limit, dtype=torch.float64)

    def decisions(scale: float) -> torch.Tensor:
        anchors = [
            ((i + 0.5) * scale - 0.5).floor(),
            ((i + 0.5) * scale - 0.5).clamp_min(0).floor(),
        ]
        if neighbourhood == "antialias":
            support = max(scale, 1.0)
            centre = scale * (i + 0.5)
            anchors += [(centre - support + 0.5).floor(), (centre + support + 0.5).floor()]
        return torch.stack(anchors)

    differs = (decisions(step) != decisions(rounded)).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else None


def warmed(bound: BoundResizer, example: torch.Tensor) -> BoundResizer:
    """A copy that has computed its geometry for ``example`` eagerly, in float64: the export then
    records it as exact constants instead of recomputing it in the graph."""
    clone = copy.deepcopy(bound)
    with torch.no_grad():
        clone(example)
    return clone


def cache_free(bound: BoundResizer) -> BoundResizer:
    """A copy whose DownsizeNet rebuilds its geometry on every call (needed for symbolic shapes).

    DownsizeNet caches geometry per shape; during export shapes are symbols, which a dict cannot
    key, so the copy turns the cache off (:attr:`DownsizeNet.cache_geometry`) and every call runs
    :func:`~downsizenet_hub.resizing.geometry.build_geometry` on the shapes it is given.
    """
    clone = copy.deepcopy(bound)
    if isinstance(clone.resizer, DownsizeNet):
        clone.resizer.cache_geometry = False
    return clone


def _state_scale_facts(images: torch.Tensor, scale_factor: ScaleArg) -> None:
    """Tell the exporter how ``floor(n * s)`` compares to ``n`` (it cannot prove it alone)."""
    factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
    for dim, factor in zip((2, 3), factors, strict=True):
        length = images.shape[dim]
        out = math.floor(length * float(factor))
        torch._check(out >= 1)
        if factor < 1:
            torch._check(out < length)
        elif factor > 1:
            torch._check(out > length)
