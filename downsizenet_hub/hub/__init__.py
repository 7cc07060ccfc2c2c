"""Publishing and loading resizers: the local hub, the Hugging Face Hub, model cards.

A published resizer is a folder in the Hugging Face repo layout: ``config.json`` (its
architecture's config: a DownsizeNetConfig, or a learned baseline's, see :mod:`.architectures`;
a format version and the training record), ``model.safetensors`` and ``README.md`` (the model
card). References resolve as described in :mod:`.refs`.

Example:
    >>> from downsizenet_hub import DownsizeNet
    >>> from downsizenet_hub.hub import publish, list_published
    >>> folder = publish(DownsizeNet(), "me/first-resizer")  # doctest: +SKIP
    >>> DownsizeNet.from_pretrained("me/first-resizer")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from downsizenet_hub.hub.errors import HubAccessError
from downsizenet_hub.hub.local import PublishedResizer, list_published, publish, remove
from downsizenet_hub.hub.names import validate_name
from downsizenet_hub.hub.record import TrainingRecord
from downsizenet_hub.hub.refs import ResolvedRef, resolve, show

if TYPE_CHECKING:
    from downsizenet_hub.hub.api import (
        from_pretrained,
        load,
        push_published,
        push_to_hub,
        save_pretrained,
    )

#: Loading, saving and showing go through :mod:`.api`, which imports torch: it is imported on
#: first use, so that listing the hub (``downsizenet hub list``) stays fast.
_API = ("from_pretrained", "load", "push_published", "push_to_hub", "save_pretrained")


def __getattr__(name: str) -> Any:
    if name in _API:
        from downsizenet_hub.hub import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HubAccessError",
    "PublishedResizer",
    "ResolvedRef",
    "TrainingRecord",
    "from_pretrained",
    "list_published",
    "load",
    "publish",
    "push_published",
    "push_to_hub",
    "remove",
    "resolve",
    "save_pretrained",
    "show",
    "validate_name",
]
