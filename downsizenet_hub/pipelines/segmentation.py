"""The segmentation pipeline that pretrains a resizer: resize, then DeepLabv3+-style segmentation.

Data flow for a batch at the pipeline's input size ``H x W`` (about 300 px on the built-in data):

1. ``resizer(images, size=... | scale_factor=...)`` shrinks the batch (this is the resizer under
   test: DownsizeNet learns here, from the task loss only);
2. a backbone and torchvision's ASPP head, with a DeepLabv3+ decoder that fuses the stride-4
   features, predict logits at a fraction of the *resized* resolution;
3. **labels meet predictions at the input resolution**: the logits are upsampled bilinearly to
   ``H x W`` and scored against the full-resolution masks (255 ignored). Detail the resizer
   loses therefore costs loss and mIoU, which is what makes the comparison between resizers fair.

Backbones: ``"tiny"`` (the CPU default: a small 4-stage CNN trained from scratch) or torchvision's
``resnet18/34/50/101`` with dilation (output stride 8 or 16). ResNets start from ImageNet weights
only if they sit in the local torch hub cache (``imagenet_backbone=True``); nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchvision import models
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

from downsizenet_hub.pipelines.target import pipeline_target, resizer_kwargs
from downsizenet_hub.resizing.target import ResizeTarget

BACKBONES = ("tiny", "resnet18", "resnet34", "resnet50", "resnet101")
IGNORE_INDEX = 255


def _conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """Four small stages (strides 2, 4, 8, 8 with dilation): ``{"low": s4, "out": s8}`` features."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv_bn(3, w, 2), _conv_bn(w, w))
        self.stage2 = nn.Sequential(_conv_bn(w, 2 * w, 2), _conv_bn(2 * w, 2 * w))
        self.stage3 = nn.Sequential(_conv_bn(2 * w, 4 * w, 2), _conv_bn(4 * w, 4 * w))
        self.stage4 = nn.Sequential(_conv_bn(4 * w, 4 * w, dilation=2), _conv_bn(4 * w, 4 * w))
        self.low_channels, self.out_channels = 2 * w, 4 * w

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.stage2(self.stem(x))
        return {"low": low, "out": self.stage4(self.stage3(low))}


class ResNetBackbone(nn.Module):
    """A torchvision ResNet with dilated last stages: ``{"low": layer1, "out": layer4}``."""

    def __init__(self, name: str, output_stride: int = 16, imagenet: bool = False) -> None:
        super().__init__()
        dilation = [False, False, True] if output_stride == 16 else [False, True, True]
        builder = getattr(models, name)
        kwargs: dict[str, Any] = {}
        if name in ("resnet50", "resnet101"):
            kwargs["replace_stride_with_dilation"] = dilation
        weights = _cached_imagenet_weights(name) if imagenet else None
        net = builder(weights=weights, **kwargs)
        self.body = IntermediateLayerGetter(net, {"layer1": "low", "layer4": "out"})
        expansion = 4 if name in ("resnet50", "resnet101") else 1
        self.low_channels, self.out_channels = 64 * expansion, 512 * expansion

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self.body(x))


def _cached_imagenet_weights(name: str) -> Any:
    """The ImageNet weights enum for ``name`` if its file is in the torch hub cache, else error."""
    import os

    enum = models.get_model_weights(name).IMAGENET1K_V1
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(enum.url))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"ImageNet weights for {name} are not in the torch hub cache ({path}); put the file "
            "there or train the backbone from scratch (omit --imagenet-backbone)."
        )
    return enum


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the deep features, upsampled and fused with projected stride-4 features."""

    def __init__(
        self,
        in_channels: int,
        low_channels: int,
        num_classes: int,
        aspp_channels: int = 256,
        atrous_rates: tuple[int, int, int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        self.aspp = ASPP(in_channels, atrous_rates, aspp_channels)
        low_out = max(aspp_channels // 4, 16)
        self.project_low = nn.Sequential(
            nn.Conv2d(low_channels, low_out, 1, bias=False),
            nn.BatchNorm2d(low_out),
            nn.ReLU(inplace=True),
        )
        self.fuse = _conv_bn(aspp_channels + low_out, aspp_channels)
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = self.project_low(features["low"])
        deep = self.aspp(features["out"])
        deep = F.interpolate(deep, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([deep, low], dim=1)))


class SegmentationMetrics:
    """mIoU (macro Jaccard over classes present) and pixel accuracy from torchmetrics.

    ``update(preds, targets)`` takes the pipeline's predictions ``(B, H, W)`` and its target dicts.
    Under DDP, torchmetrics reduces the states across ranks in ``compute``.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.metrics = MetricCollection(
            {
                "miou": MulticlassJaccardIndex(num_classes, ignore_index=ignore_index),
                "pixel_accuracy": MulticlassAccuracy(
                    num_classes, average="micro", ignore_index=ignore_index
                ),
            }
        )

    def to(self, device: torch.device) -> SegmentationMetrics:
        self.metrics = self.metrics.to(device)
        return self

    def update(self, preds: torch.Tensor, targets: list[dict[str, Any]]) -> None:
        masks = torch.stack([t["mask"].as_subclass(torch.Tensor) for t in targets])
        self.metrics.update(preds, masks.to(preds.device).long())

    def compute(self) -> dict[str, float]:
        return {k: 100.0 * float(v) for k, v in self.metrics.compute().items()}

    def reset(self) -> None:
        self.metrics.reset()


class SegmentationPipeline(nn.Module):
    """Resizer -> backbone -> DeepLabv3+ head, returning ``{"loss", "preds", "logits"}``.

    ``preds`` (per-pixel class indices) is only computed in eval mode; ``loss`` only with targets.

    Args:
        resizer: any module with the resizer call signature (DownsizeNet or a fixed resizer).
        num_classes: classes including background.
        size: the resized resolution ``(h, w)``; or ``scale_factor``: the resize factor; or
            ``target``: the resize as a :class:`ResizeTarget` already checked by the caller.
        backbone: one of :data:`BACKBONES`.
        class_weights: optional per-class loss weights (the built-in data down-weights background).
    """

    def __init__(
        self,
        resizer: nn.Module,
        num_classes: int,
        *,
        size: tuple[int, int] | None = None,
        scale_factor: float | None = None,
        backbone: str = "tiny",
        width: int = 32,
        imagenet_backbone: bool = False,
        class_weights: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
        target: ResizeTarget | None = None,
    ) -> None:
        super().__init__()
        self.target = pipeline_target(target, size, scale_factor)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {list(BACKBONES)}, got {backbone!r}.")
        self.resizer = resizer
        self.resize_kwargs: dict[str, Any] = resizer_kwargs(self.target)
        self.backbone: nn.Module
        if backbone == "tiny":
            self.backbone = TinyBackbone(width)
            aspp = 4 * width
        else:
            self.backbone = ResNetBackbone(backbone, imagenet=imagenet_backbone)
            aspp = 256
        self.head = DeepLabV3PlusHead(
            self.backbone.out_channels, self.backbone.low_channels, num_classes, aspp
        )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_weights: torch.Tensor | None
        self.register_buffer(
            "class_weights", class_weights.float() if class_weights is not None else None
        )

    def forward(self, images: torch.Tensor, targets: list[dict[str, Any]] | None = None) -> dict:
        small = self.resizer(images, **self.resize_kwargs)
        # Channels-last: DownsizeNet's output already is; oneDNN's convolutions prefer it.
        small = small.contiguous(memory_format=torch.channels_last)
        logits = self.head(self.backbone(small))
        # Labels meet predictions at the input resolution (see the module docstring).
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        out: dict[str, Any] = {"logits": logits}
        if not self.training:
            # Training never reads predictions, and an arg-max over channels is ~4x faster on a
            # channels-last copy than across the planes of NCHW logits (CPU, 11 classes).
            out["preds"] = logits.contiguous(memory_format=torch.channels_last).argmax(dim=1)
        if targets is not None:
            masks = torch.stack([t["mask"].as_subclass(torch.Tensor) for t in targets])
            out["loss"] = F.cross_entropy(
                logits.float(),
                masks.to(logits.device).long(),
                weight=self.class_weights,
                ignore_index=self.ignore_index,
            )
        return out

    def build_metric(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.num_classes, self.ignore_index)
