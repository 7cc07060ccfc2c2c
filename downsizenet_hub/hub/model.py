"""``downsizenet_hub.DownsizeNet``: the core resizer plus its storage methods.

The core class (:class:`downsizenet_hub.resizing.DownsizeNet`) knows nothing of storage, so that
the resizing core imports nothing else of the package. This subclass adds huggingface_hub-style
``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``, each one line over
:mod:`downsizenet_hub.hub.api`; ``from_pretrained`` and the registry load published resizers as
this class. Why it is split this way is written in :mod:`downsizenet_hub.registry`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from downsizenet_hub.resizing.downsizenet import DownsizeNet as CoreDownsizeNet


class DownsizeNet(CoreDownsizeNet):
    """:class:`downsizenet_hub.resizing.DownsizeNet` with ``save_pretrained``, ``from_pretrained``
    and ``push_to_hub`` (see the core class for the resizer itself).

    Example:
        >>> import torch
        >>> from downsizenet_hub import DownsizeNet
        >>> DownsizeNet()(torch.rand(1, 3, 64, 64), size=(32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write ``model.safetensors``, ``config.json`` and a model card to ``save_directory``;
        return the folder. Keywords: ``record`` (a hub.TrainingRecord), ``name`` (how the card
        says to load it). See :func:`downsizenet_hub.hub.save_pretrained`."""
        from downsizenet_hub.hub import api  # torch-backed storage, imported on first use

        return api.save_pretrained(self, save_directory, **kwargs)

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike[str], **kwargs: Any) -> DownsizeNet:
        """Load a published resizer, strictly, in eval mode: a directory, a local-hub name, a
        shipped resizer, or ``hf-hub:owner/name[@revision]``. Keywords: ``revision``,
        ``device``, ``cache_dir``, ``token``. See :func:`downsizenet_hub.hub.from_pretrained`."""
        from downsizenet_hub.hub import api

        model = api.from_pretrained(ref, build=cls, **kwargs)
        if not isinstance(model, cls):
            raise ValueError(
                f"{os.fspath(ref)} holds a {type(model).__name__}, not a DownsizeNet; load it with "
                f"downsizenet_hub.registry.create_resizer({os.fspath(ref)!r})."
            )
        return model

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload this resizer to the Hugging Face Hub (safetensors, config.json, model card);
        return the commit URL. Keywords: ``record``, ``private``, ``revision``, ``force``
        (replace a resizer already there), ``token``. See
        :func:`downsizenet_hub.hub.push_to_hub`."""
        from downsizenet_hub.hub import api

        return api.push_to_hub(self, repo_id, **kwargs)
