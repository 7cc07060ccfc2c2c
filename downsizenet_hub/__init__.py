"""downsizenet-hub: learned image downsizing (DownsizeNet) for PyTorch vision pipelines.

The public names are imported on first use (PEP 562), so ``import downsizenet_hub`` and the
command line's help screens do not pay for torch and torchvision.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from downsizenet_hub.hub.model import DownsizeNet
    from downsizenet_hub.resizing.config import DownsizeNetConfig
    from downsizenet_hub.tools.wrap_model import with_resizer

#: Public name -> the module that defines it.
_LAZY = {
    "DownsizeNet": "downsizenet_hub.hub.model",
    "DownsizeNetConfig": "downsizenet_hub.resizing.config",
    "with_resizer": "downsizenet_hub.tools.wrap_model",
}

__all__ = ["DownsizeNet", "DownsizeNetConfig", "__version__", "with_resizer"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
