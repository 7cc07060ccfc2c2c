"""The transfer pipeline: frozen resizer, frozen VGG16 trunk, trainable detection heads.

This is the paper's section 5.3 setting (detection heads on a frozen VGG16, with a DownsizeNet
pretrained on segmentation in front); the resizer and the trunk never train. Two head families:

- ``centernet`` (default): a dense single-stage head (:mod:`.centernet`; CenterNet is one of the
  paper's own detection pipelines). On cached frozen features it learns in CPU minutes.
- ``fasterrcnn``: torchvision's region proposal network and RoI heads on a thin 1x1 neck, as in
  LightHead R-CNN (the paper's pipeline); about six times slower per epoch on a CPU.

torchvision's ``FasterRCNN`` normalises and resizes its input again in ``GeneralizedRCNNTransform``.
This pipeline does not use that transform at all: the heads run directly on the trunk's features
of the resizer's output, so the image the backbone sees is exactly the resizer's output (a test
checks it). Targets are mapped into the resized frame and predictions back to the input image's
coordinates by the resize target's coordinate map
(:class:`~downsizenet_hub.resizing.target.ResizeTarget`, ``align_corners=False``: step ``1 / s``
with a scale factor, ``in / out`` with a size), the very step the resizer samples the image with.

The trunk is cut after ``conv4_3`` (stride 8, 512 channels, as SSD uses VGG16): at the small
resolutions of the study (90 to 165 px) a stride-16 map has too few cells for the objects.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead

from downsizenet_hub.backbones import FrozenVGG16
from downsizenet_hub.pipelines.centernet import CenterNetHead
from downsizenet_hub.pipelines.feature_cache import CachedFrozenFront
from downsizenet_hub.pipelines.roi_pool import BinCentreRoIAlign
from downsizenet_hub.pipelines.target import pipeline_target, resizer_kwargs
from downsizenet_hub.resizing.target import ResizeTarget

#: VGG16 ``features`` index just after conv4_3's ReLU: the stride-8 trunk.
CONV4_3_END = 23


class FrozenFront(nn.Module):
    """``trunk(resizer(images))`` with both frozen: no gradients, always in eval mode."""

    def __init__(self, resizer: nn.Module, trunk: nn.Module, resize_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.resizer = resizer
        self.trunk = trunk
        self.resize_kwargs = resize_kwargs
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenFront:
        return super().train(False)

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        return self.resizer(images, **self.resize_kwargs)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # oneDNN runs VGG16 7-12% faster on channels-last input (2-core CPU, 90-179 px); the
        # features go back to NCHW so that cached and computed features are the same tensors.
        small = self.resize(images).contiguous(memory_format=torch.channels_last)
        return self.trunk(small).contiguous()


def stride8_trunk(trunk: FrozenVGG16) -> FrozenVGG16:
    """Cut a :class:`~downsizenet_hub.backbones.FrozenVGG16` after conv4_3 (stride 8)."""
    trunk.features = trunk.features[:CONV4_3_END]
    trunk.stride = 8
    return trunk


class DetectionMetrics:
    """VOC-style mAP at IoU 0.5 (and COCO mAP@[.5:.95]) from torchmetrics' pycocotools backend.

    torchmetrics interpolates precision at 101 recall points (COCO's rule); VOC07's official
    metric uses 11 points and VOC2010+ all points, so numbers differ slightly from those tables.
    """

    def __init__(self) -> None:
        self.metric = MeanAveragePrecision(
            box_format="xyxy", iou_type="bbox", backend="pycocotools"
        )

    def to(self, device: torch.device) -> DetectionMetrics:
        self.metric = self.metric.to(device)
        return self

    def update(self, preds: list[dict[str, torch.Tensor]], targets: list[dict[str, Any]]) -> None:
        truth = [
            {
                "boxes": t["boxes"].as_subclass(torch.Tensor).float().to(p["boxes"].device),
                "labels": t["labels"].to(p["boxes"].device),
            }
            for t, p in zip(targets, preds, strict=True)
        ]
        self.metric.update(preds, truth)

    def compute(self) -> dict[str, float]:
        result = self.metric.compute()
        return {"map_50": 100.0 * float(result["map_50"]), "map": 100.0 * float(result["map"])}

    def reset(self) -> None:
        self.metric.reset()


HEADS = ("centernet", "fasterrcnn")


class FasterRCNNHeads(nn.Module):
    """A 1x1 neck, torchvision's region proposal network and RoI heads (LightHead R-CNN-style).

    The neck reduces the trunk's channels to ``neck_channels`` first, which makes the RPN and RoI
    heads several times cheaper than on the full trunk output. Same call as
    :class:`~.centernet.CenterNetHead`: ``(features, image_sizes, targets) -> (detections,
    losses)``, in the resized image's coordinates.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        anchor_sizes: tuple[int, ...] = (8, 16, 32, 64),
        neck_channels: int = 128,
        representation_size: int = 256,
    ) -> None:
        super().__init__()
        self.neck = nn.Sequential(nn.Conv2d(in_channels, neck_channels, 1), nn.ReLU(inplace=True))
        channels = neck_channels
        anchors = AnchorGenerator((anchor_sizes,), ((0.5, 1.0, 2.0),))
        self.rpn = RegionProposalNetwork(
            anchors,
            RPNHead(channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=0.7,
            bg_iou_thresh=0.3,
            batch_size_per_image=128,
            positive_fraction=0.5,
            pre_nms_top_n={"training": 600, "testing": 300},
            post_nms_top_n={"training": 300, "testing": 100},
            nms_thresh=0.7,
        )
        self.roi_heads = RoIHeads(
            # = MultiScaleRoIAlign(["0"], 7, sampling_ratio=1), with a ~3.5x faster CPU backward.
            BinCentreRoIAlign("0", output_size=7),
            TwoMLPHead(channels * 7 * 7, representation_size),
            FastRCNNPredictor(representation_size, num_classes),
            fg_iou_thresh=0.5,
            bg_iou_thresh=0.5,
            # The maps are small (about 11x11 cells at 90 px): one sample per bin and 64 sampled
            # RoIs per image keep RoI pooling's backward, the heads' main cost, affordable.
            batch_size_per_image=64,
            positive_fraction=0.25,
            bbox_reg_weights=None,
            score_thresh=0.01,
            nms_thresh=0.5,
            detections_per_img=100,
        )

    def forward(
        self,
        features: torch.Tensor,
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        out_h, out_w = image_sizes[0]
        # Only shapes are read from ImageList.tensors (anchor strides): a zero-stride view will do.
        shape_only = features.new_zeros(()).expand(len(image_sizes), 3, out_h, out_w)
        image_list = ImageList(shape_only, list(image_sizes))
        feature_map = {"0": self.neck(features)}
        proposals, rpn_losses = self.rpn(image_list, feature_map, targets)
        detections, head_losses = self.roi_heads(
            feature_map, proposals, image_list.image_sizes, targets
        )
        return detections, {**rpn_losses, **head_losses}


class DetectionPipeline(nn.Module):
    """Frozen resizer + frozen VGG16 trunk + trainable detection heads.

    ``forward(images, targets)`` returns ``{"loss", "losses", "preds"}`` in train mode (``preds``
    empty) and ``{"preds"}`` in eval mode: a list of ``{"boxes", "scores", "labels"}`` in input
    coordinates.

    Args:
        resizer: the frozen resizer (any module with the resizer call signature).
        trunk: a frozen trunk with ``out_channels`` (e.g. ``stride8_trunk(frozen_vgg16(...))``).
        num_classes: classes including background.
        size / scale_factor: the resized resolution; or ``target``: the resize as a
            :class:`ResizeTarget` already checked by the caller.
        head: ``"centernet"`` (the default: a dense single-stage head that learns on cached
            features in CPU minutes, :mod:`.centernet`) or ``"fasterrcnn"`` (RPN + RoI heads on a
            1x1 neck, the paper's two-stage family, for GPU budgets).
        cache_features: memoise the frozen front per image (see :mod:`.feature_cache`).
    """

    def __init__(
        self,
        resizer: nn.Module,
        trunk: nn.Module,
        num_classes: int,
        *,
        size: tuple[int, int] | None = None,
        scale_factor: float | None = None,
        head: str = "centernet",
        cache_features: bool = True,
        cache_dir: Any = None,
        target: ResizeTarget | None = None,
    ) -> None:
        super().__init__()
        self.target: ResizeTarget = pipeline_target(target, size, scale_factor)
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}.")
        resize_kwargs = resizer_kwargs(self.target)
        self.front = FrozenFront(resizer, trunk, resize_kwargs)
        self.cached_front = (
            CachedFrozenFront(self.front, salt=repr(resize_kwargs), directory=cache_dir)
            if cache_features
            else None
        )
        in_channels = int(getattr(trunk, "out_channels", 512))
        self.heads: nn.Module
        if head == "centernet":
            stride = int(getattr(trunk, "stride", 8))
            self.heads = CenterNetHead(in_channels, num_classes, stride=stride)
        else:
            self.heads = FasterRCNNHeads(in_channels, num_classes)
        self.head = head
        self.num_classes = num_classes

    def train(self, mode: bool = True) -> DetectionPipeline:
        super().train(mode)
        self.front.eval()  # frozen means frozen: no BN/dropout statistics change either
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.cached_front is not None:
            return self.cached_front(images)
        return self.front(images)

    def forward(self, images: torch.Tensor, targets: list[dict[str, Any]] | None = None) -> dict:
        batch, _, in_h, in_w = images.shape
        features = self.features(images)
        in_size = (int(in_h), int(in_w))
        out_size = self.target.output_size(in_size)
        scaled = None
        if self.training:
            if targets is None:
                raise ValueError("training the detection heads needs targets.")
            scaled = [_map_target(t, self.target, in_size, features.device) for t in targets]
        detections, losses = self.heads(features, [out_size] * batch, scaled)
        out: dict[str, Any] = {}
        if self.training:
            out["loss"] = sum(losses.values())
            out["losses"] = {k: float(v.detach()) for k, v in losses.items()}
            out["preds"] = []
        else:
            out["preds"] = [
                {**d, "boxes": self.target.unmap_boxes(d["boxes"], in_size)} for d in detections
            ]
        return out

    def build_metric(self) -> DetectionMetrics:
        return DetectionMetrics()


def _map_target(
    target: dict[str, Any], resize: ResizeTarget, in_size: tuple[int, int], device: torch.device
) -> dict:
    """A training target's boxes moved onto the resized image (XYXY, float32, on ``device``)."""
    boxes = target["boxes"].as_subclass(torch.Tensor).float().to(device)
    return {"boxes": resize.map_boxes(boxes, in_size), "labels": target["labels"].to(device)}
