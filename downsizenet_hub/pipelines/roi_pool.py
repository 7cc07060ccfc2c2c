"""RoIAlign with one sample per bin, as bilinear grid sampling (a faster backward on CPU).

With ``sampling_ratio=1`` and ``aligned=False``, ``torchvision.ops.roi_align`` takes, for every
bin, one bilinear sample of the feature map at the bin's centre (coordinates clamped to the map
within one cell of its border, zero beyond). That is ``F.grid_sample`` with border padding on a
grid of bin centres, times a mask for the points more than one cell outside. The results agree to
float precision (tests/test_roi_pool.py); the difference is speed: torchvision's CPU
``_roi_align_backward`` runs one thread and scatters one tap at a time, and was 58% of a cached
transfer epoch; ``grid_sample``'s backward is vectorised and about 3.5x faster at the transfer
detector's sizes (``benchmarks/pipeline_overhead.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BinCentreRoIAlign(nn.Module):
    """Drop-in for ``MultiScaleRoIAlign([name], output_size, sampling_ratio=1)`` on one level.

    Called as RoIHeads calls its pooler: ``(features: dict, boxes: list[Tensor[N_i, 4]],
    image_shapes: list[(h, w)]) -> Tensor[sum N_i, C, out, out]``. The feature stride is inferred
    as torchvision does: the power of two nearest to feature height / largest image height.
    """

    def __init__(self, featmap_name: str = "0", output_size: int = 7) -> None:
        super().__init__()
        self.featmap_name = featmap_name
        self.output_size = output_size

    def forward(
        self,
        features: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        feature = features[self.featmap_name]
        if not image_shapes:
            raise ValueError("image_shapes must not be empty.")
        scale = _infer_scale(feature.shape[-2], max(shape[0] for shape in image_shapes))
        pooled = [
            roi_align_bin_centres(feature[i : i + 1], image_boxes, self.output_size, scale)
            for i, image_boxes in enumerate(boxes)
        ]
        if not pooled:
            return feature.new_zeros(0, feature.shape[1], self.output_size, self.output_size)
        return torch.cat(pooled)

    def extra_repr(self) -> str:
        return f"featmap_name={self.featmap_name!r}, output_size={self.output_size}"


def _infer_scale(feature_size: int, image_size: int) -> float:
    """torchvision's rule (poolers._infer_scale): strides are assumed to be powers of two."""
    return float(2.0 ** round(math.log2(feature_size / image_size)))


def roi_align_bin_centres(
    feature: torch.Tensor, boxes: torch.Tensor, output_size: int, spatial_scale: float
) -> torch.Tensor:
    """``roi_align(feature, [boxes], output_size, spatial_scale, sampling_ratio=1)`` for one image.

    ``feature`` is ``(1, C, H, W)``, ``boxes`` ``(N, 4)`` x1 y1 x2 y2 in image coordinates;
    returns ``(N, C, output_size, output_size)``. No gradient flows to the boxes (as torchvision).
    """
    channels, height, width = feature.shape[1:]
    count = boxes.shape[0]
    if count == 0:
        return feature.new_zeros(0, channels, output_size, output_size)
    x1, y1, x2, y2 = (boxes.detach().to(feature.dtype) * spatial_scale).unbind(dim=1)
    steps = torch.arange(output_size, dtype=feature.dtype, device=feature.device) + 0.5
    xs = x1[:, None] + steps * ((x2 - x1).clamp_min(1.0) / output_size)[:, None]  # (N, out)
    ys = y1[:, None] + steps * ((y2 - y1).clamp_min(1.0) / output_size)[:, None]
    inside = ((ys >= -1) & (ys <= height))[:, :, None] & ((xs >= -1) & (xs <= width))[:, None, :]
    # align_corners=True: -1 and 1 are the centres of the first and last cells.
    grid_x = xs.clamp(0, width - 1) * (2.0 / max(width - 1, 1)) - 1.0
    grid_y = ys.clamp(0, height - 1) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(grid_x[:, None, :], grid_y[:, :, None]), dim=-1)
    sampled = F.grid_sample(
        feature,
        grid.reshape(1, count * output_size, output_size, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )  # (1, C, N * out, out)
    sampled = sampled.view(channels, count, output_size, output_size).transpose(0, 1)
    return sampled * inside[:, None].to(sampled.dtype)
