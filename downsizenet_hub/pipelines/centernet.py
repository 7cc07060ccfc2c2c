"""A CenterNet-style dense detection head: the CPU default of the transfer study.

Zhou, Wang and Krähenbühl, "Objects as Points" (2019), one of the paper's own detection pipelines.
Every cell of the trunk's stride-``s`` feature map predicts, per class, a heatmap score that a box
centre falls in it, plus the box size and the centre's sub-cell offset. There are no anchors, no
proposals and no RoI pooling, so the head is a few small convolutions: on cached frozen features
it trains in CPU minutes, where the two-stage Faster R-CNN heads need about six times longer for
a lower score (see the README).

Conventions, all in the resized image's pixel coordinates (``align_corners=False``: pixel ``i``
covers ``[i, i + 1)``): a feature cell ``(row, col)`` covers ``[s*col, s*(col+1))`` horizontally.
A box's centre ``c`` (pixels) falls in cell ``floor(c / s)`` and its offset target is
``c / s - floor(c / s)``; its size target is ``(w / s, h / s)``. Decoding inverts exactly this.

Training targets: a Gaussian peak per box on its class's heatmap (CenterNet's radius rule with
minimum overlap 0.7), focal loss (alpha 2, beta 4) normalised by the number of boxes, L1 on size
(weight 0.1) and offset (weight 1) at the centre cells only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Initial heatmap logit: sigmoid(-2.19) = 0.1, CenterNet's prior, so early losses stay small.
HEATMAP_PRIOR_LOGIT = -2.19
SIZE_LOSS_WEIGHT = 0.1
OFFSET_LOSS_WEIGHT = 1.0


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift keeping IoU >= ``min_overlap`` (3 cases)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


class CenterNetHead(nn.Module):
    """Two 3x3 conv + BN + ReLU layers, then 1x1 heatmap, size and offset outputs.

    ``forward(features, image_sizes, targets)`` returns ``(detections, losses)`` like torchvision's
    RoI heads: ``losses`` (a dict of scalar tensors) when ``targets`` are given, else
    ``detections``, a list of ``{"boxes" (N, 4) xyxy, "scores" (N,), "labels" (N,) in
    1..num_classes-1}`` in the resized image's coordinates.

    Args:
        in_channels: channels of the trunk's features.
        num_classes: classes including background (index 0 has no heatmap).
        stride: the trunk's stride in pixels.
        width: channels of the two conv layers.
        max_detections: detections kept per image (top scores over all classes and cells).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        stride: int = 8,
        width: int = 128,
        max_detections: int = 100,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts background and needs >= 2, got {num_classes}.")
        self.stride = stride
        self.num_classes = num_classes
        self.max_detections = max_detections
        self.body = nn.Sequential(_conv_bn_relu(in_channels, width), _conv_bn_relu(width, width))
        self.heatmap = nn.Conv2d(width, num_classes - 1, 1)
        self.size = nn.Conv2d(width, 2, 1)
        self.offset = nn.Conv2d(width, 2, 1)
        nn.init.constant_(self.heatmap.bias, HEATMAP_PRIOR_LOGIT)  # type: ignore[arg-type]

    def forward(
        self,
        features: torch.Tensor,
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        hidden = self.body(features)
        heatmap, size, offset = self.heatmap(hidden), self.size(hidden), self.offset(hidden)
        if targets is not None:
            return [], self.losses(heatmap, size, offset, targets)
        return self.decode(heatmap, size, offset, image_sizes), {}

    def encode(
        self, targets: list[dict[str, torch.Tensor]], shape: tuple[int, int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heatmaps ``(B, K, h, w)``; and per box: flat cell index into ``B*h*w``, size, offset."""
        height, width = shape
        heat = torch.zeros(len(targets), self.num_classes - 1, height, width, device=device)
        ys = torch.arange(height, device=device, dtype=torch.float32)[:, None]
        xs = torch.arange(width, device=device, dtype=torch.float32)[None, :]
        cells, sizes, offsets = [], [], []
        for b, target in enumerate(targets):
            boxes = target["boxes"].float().to(device) / self.stride
            for box, label in zip(boxes.tolist(), target["labels"].tolist(), strict=True):
                x1, y1, x2, y2 = box
                w, h = x2 - x1, y2 - y1
                if w <= 0 or h <= 0:
                    continue
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                col = min(max(math.floor(cx), 0), width - 1)
                row = min(max(math.floor(cy), 0), height - 1)
                radius = max(0, int(gaussian_radius(h, w)))
                sigma = (2 * radius + 1) / 6
                peak = torch.exp(-((xs - col) ** 2 + (ys - row) ** 2) / (2 * sigma**2))
                channel = heat[b, int(label) - 1]
                torch.maximum(channel, peak, out=channel)
                cells.append((b * height + row) * width + col)
                sizes.append((w, h))
                offsets.append((cx - col, cy - row))
        return (
            heat,
            torch.tensor(cells, dtype=torch.int64, device=device),
            torch.tensor(sizes, dtype=torch.float32, device=device).reshape(-1, 2),
            torch.tensor(offsets, dtype=torch.float32, device=device).reshape(-1, 2),
        )

    def losses(
        self,
        heatmap: torch.Tensor,
        size: torch.Tensor,
        offset: torch.Tensor,
        targets: list[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        heat, cells, size_t, offset_t = self.encode(
            targets, (heatmap.shape[-2], heatmap.shape[-1]), heatmap.device
        )
        logits = heatmap.float()
        positive = heat.eq(1.0)
        log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
        p = log_p.exp()
        pos_loss = (log_p * (1 - p) ** 2)[positive].sum()
        neg_loss = (log_not_p * p**2 * (1 - heat) ** 4)[~positive].sum()
        count = max(int(cells.numel()), 1)
        losses = {"loss_heatmap": -(pos_loss + neg_loss) / count}

        def at_cells(map_: torch.Tensor) -> torch.Tensor:  # (B, 2, h, w) -> (N, 2)
            return map_.float().permute(0, 2, 3, 1).reshape(-1, 2)[cells]

        losses["loss_size"] = (
            SIZE_LOSS_WEIGHT * F.l1_loss(at_cells(size), size_t, reduction="sum") / (2 * count)
        )
        losses["loss_offset"] = (
            OFFSET_LOSS_WEIGHT
            * F.l1_loss(at_cells(offset), offset_t, reduction="sum")
            / (2 * count)
        )
        return losses

    @torch.no_grad()
    def decode(
        self,
        heatmap: torch.Tensor,
        size: torch.Tensor,
        offset: torch.Tensor,
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, torch.Tensor]]:
        """Peaks (3x3 local maxima) of the heatmaps, the top ``max_detections`` per image."""
        scores = torch.sigmoid(heatmap.float())
        peaks = scores == F.max_pool2d(scores, 3, stride=1, padding=1)
        scores = scores * peaks
        batch, classes, height, width = scores.shape
        k = min(self.max_detections, classes * height * width)
        top, index = scores.reshape(batch, -1).topk(k)
        labels = index // (height * width) + 1
        cell = index % (height * width)
        rows, cols = (cell // width).float(), (cell % width).float()
        detections = []
        for b in range(batch):
            off = offset[b].float().reshape(2, -1)[:, cell[b]]
            wh = size[b].float().reshape(2, -1)[:, cell[b]].clamp(min=0) * self.stride
            cx = (cols[b] + off[0]) * self.stride
            cy = (rows[b] + off[1]) * self.stride
            img_h, img_w = image_sizes[b]
            boxes = torch.stack(
                [
                    (cx - wh[0] / 2).clamp(0, img_w),
                    (cy - wh[1] / 2).clamp(0, img_h),
                    (cx + wh[0] / 2).clamp(0, img_w),
                    (cy + wh[1] / 2).clamp(0, img_h),
                ],
                dim=1,
            )
            keep = top[b] > 0
            detections.append(
                {"boxes": boxes[keep], "scores": top[b][keep], "labels": labels[b][keep]}
            )
        return detections
