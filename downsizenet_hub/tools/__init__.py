"""What users do with a resizer outside training, each module named for what it does:

* :mod:`.wrap_model`: put a resizer in front of a torchvision classifier, segmenter or detector;
* :mod:`.learned_resize`: ``LearnedResize``, a torchvision ``transforms.v2`` transform;
* :mod:`.export` (and :mod:`.export_geometry`): ONNX and TorchScript files, checked against
  PyTorch;
* :mod:`.compare`: a figure of several resizers on one image;
* :mod:`.folder_resize`: resize a folder of image files;
* :mod:`.channels`: grayscale, alpha and any channel count through a 3-channel learned resizer.

They name resizers through :func:`downsizenet_hub.registry.create_resizer` and move boxes, points
and masks with the core's one coordinate map (:mod:`downsizenet_hub.resizing.target`). The public
names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from downsizenet_hub.tools.learned_resize import LearnedResize
    from downsizenet_hub.tools.wrap_model import with_resizer

_LAZY = {"LearnedResize": "learned_resize", "with_resizer": "wrap_model"}

__all__ = ["LearnedResize", "with_resizer"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
