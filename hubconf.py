"""torch.hub entry points of downsizenet-hub.

From a clone (works offline)::

    import torch
    resizer = torch.hub.load("path/to/downsizenet-hub", "downsizenet", source="local",
                             pretrained="downsizenet/<name>")

From GitHub (downloads the repository once into torch.hub's cache; the dependencies below must
already be installed)::

    resizer = torch.hub.load("<owner>/downsizenet-hub", "downsizenet", pretrained="...")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keep hubconf's namespace to its entry points: torch.hub.list shows callables
    from typing import Any

    from downsizenet_hub import DownsizeNet

dependencies = ["torch", "safetensors", "huggingface_hub"]


def downsizenet(pretrained: str | None = None, **config: Any) -> DownsizeNet:
    """A DownsizeNet learned image resizer: ``resizer(images, size=(h, w))`` or
    ``resizer(images, scale_factor=s)`` on ``(B, C, H, W)`` float images.

    Args:
        pretrained: None for a fresh resizer (the paper's default: 3 conv layers x 16 channels,
            2x2 bilinear taps, starting exactly as bilinear interpolation); or a published one: a
            directory, a local-hub name ``namespace/name`` (see ``downsizenet hub list``), a
            resizer shipped with the package, or ``hf-hub:owner/name[@revision]`` on the Hugging
            Face Hub (only this form goes online).
        **config: DownsizeNetConfig fields for a fresh resizer, e.g. ``neighbourhood="bicubic"``,
            ``conv_layers=2``. A published resizer's architecture comes from its config.json, so
            these are refused together with ``pretrained``.

    Returns:
        a ``downsizenet_hub.DownsizeNet`` (in eval mode when pretrained); a published learned
        baseline (``talebi``, ``strided``) comes back as its own class, as from
        ``downsizenet_hub.registry.create_resizer``.
    """
    # Imported here so that torch.hub.list stays cheap; the registry is the one way to name one.
    from typing import cast

    from downsizenet_hub.registry import TRAINABLE, create_resizer

    if pretrained is None:
        return cast("DownsizeNet", create_resizer(TRAINABLE, **config))
    if config:
        raise ValueError(
            f"pretrained={pretrained!r} takes its configuration from its config.json; "
            f"drop {sorted(config)}."
        )
    return cast("DownsizeNet", create_resizer(pretrained))
