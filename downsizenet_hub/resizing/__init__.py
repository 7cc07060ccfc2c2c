"""The resizing core: DownsizeNet, the classical resizers, and the geometry they share.

**The method.** DownsizeNet is the learned resizer of Ma et al., "Task Generalizable Spatial and
Texture Aware Image Downsizing Network". Each output pixel is a convex mix of its input
neighbours (2x2 as bilinear interpolation, 4x4, or the widened antialiasing support); the mixing
coefficients are inferred per pixel from a few 3x3 convolutions over the full-resolution image
(the *texture branch*), read at the output pixel's top-left neighbour (*floating pooling*), plus
the classical interpolation weights of the neighbourhood (the *relative-distance map*), through a
1x1 convolution and a normalisation to sum one. Because the coefficients are convex, the output
stays an image whatever the weights, so a resizer trained in one pipeline can be reused frozen in
another; and with a zero head it is exactly bilinear interpolation, so it starts at the baseline.

**Read in this order.**

* :mod:`.target`: what a resize asks for (an output size or a scale factor), checked once, and
  the one coordinate map that images, points, boxes and masks all follow (PyTorch's
  ``align_corners=False`` rule: step ``1 / s`` with a scale factor, ``in / out`` with a size).
* :mod:`.sampling`: along one axis, which input pixels feed each output pixel and with which
  classical weights (bilinear, cubic, the antialiasing triangle filter).
* :mod:`.geometry`: the 2-D layout of that sampling as the module consumes it.
* :mod:`.config`: a DownsizeNet's architecture as plain data (torch-free, for ``config.json``).
* :mod:`.downsizenet`: the module (texture branch, floating pooling, head, normalisation).
* :mod:`.texture` and :mod:`.anchors`: the texture branch's exact fast paths (fused kernels,
  bands, the last convolution computed only at the pixels floating pooling reads).
* :mod:`.functional`: the resize as functions (``head_logits``, ``normalise``, ``mix``,
  ``downsize``, ``interpolate``), which the modules wrap; it imports no module class.
* :mod:`.workspace`: the temporaries an inference call on the CPU keeps for the next one.
* :mod:`.fixed`: the classical resizers behind the same call signature.
* :mod:`.limits`: checks that a request fits the machine before anything is allocated.
* :mod:`.talebi`, :mod:`.strided` (configs in :mod:`.baseline_config`): the learned baselines
  the paper argues against, whose outputs are not constrained to be images.

This package imports nothing else of downsizenet-hub (a contract that CI checks): storage lives in
:mod:`downsizenet_hub.hub`, names in :mod:`downsizenet_hub.registry`. Its torch-backed names are
imported on first use, so that ``resizing.config`` stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from downsizenet_hub.resizing.config import DownsizeNetConfig
    from downsizenet_hub.resizing.downsizenet import DownsizeNet
    from downsizenet_hub.resizing.fixed import FixedResizer
    from downsizenet_hub.resizing.functional import downsize, interpolate
    from downsizenet_hub.resizing.target import ResizeTarget, resize_target

_LAZY = {
    "DownsizeNet": "downsizenet",
    "DownsizeNetConfig": "config",
    "FixedResizer": "fixed",
    "ResizeTarget": "target",
    "downsize": "functional",
    "interpolate": "functional",
    "resize_target": "target",
}

__all__ = [
    "DownsizeNet",
    "DownsizeNetConfig",
    "FixedResizer",
    "ResizeTarget",
    "downsize",
    "interpolate",
    "resize_target",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
