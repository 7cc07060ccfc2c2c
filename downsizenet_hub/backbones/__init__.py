"""Frozen backbones for the task pipelines: VGG16's conv trunk and its weight sources.

``frozen_vgg16("auto" | "imagenet" | "hed" | PATH)`` returns a :class:`FrozenVGG16` taking
``[0, 1]`` RGB; ``available_vgg16_weights()`` says which named sources work offline.
"""

from downsizenet_hub.backbones.sources import (
    AUTO_PREFERENCE,
    VGG16_WEIGHT_SOURCES,
    VGG16WeightSource,
    available_vgg16_weights,
    frozen_vgg16,
    path_source,
    resolve_vgg16_weights,
)
from downsizenet_hub.backbones.vgg16 import (
    IMAGENET_NORMALIZATION,
    FrozenVGG16,
    Normalization,
    features_sha256,
    vgg16_features_shapes,
)

__all__ = [
    "AUTO_PREFERENCE",
    "IMAGENET_NORMALIZATION",
    "VGG16_WEIGHT_SOURCES",
    "FrozenVGG16",
    "Normalization",
    "VGG16WeightSource",
    "available_vgg16_weights",
    "features_sha256",
    "frozen_vgg16",
    "path_source",
    "resolve_vgg16_weights",
    "vgg16_features_shapes",
]
