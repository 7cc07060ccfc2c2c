"""Where downsizenet-hub keeps things on disk: one home folder, overridable with an env variable."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DOWNSIZENET_HOME"
KERNELS_ENV = "DOWNSIZENET_KERNELS_DIR"


def home() -> Path:
    """``$DOWNSIZENET_HOME``, else ``$XDG_CACHE_HOME/downsizenet``, else ``~/.cache/...``."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "downsizenet"


def hub_dir() -> Path:
    """The local hub: one ``namespace/name`` folder per published resizer (HF repo layout)."""
    return home() / "hub"


def data_dir() -> Path:
    """Generated datasets (the built-in ``scenes`` benchmark) and feature caches."""
    return home() / "data"


def weights_dir() -> Path:
    """Converted backbone weights (e.g. the hed VGG16 trunk as safetensors)."""
    return home() / "weights"


def kernels_dir() -> Path:
    """Compiled kernels (:mod:`downsizenet_hub.resizing.native`): ``$DOWNSIZENET_KERNELS_DIR``,
    else ``<home>/kernels``."""
    explicit = os.environ.get(KERNELS_ENV)
    return Path(explicit).expanduser() if explicit else home() / "kernels"
