"""How much of a resizer's output is a map of the objects: per output channel, the Pearson
correlation between the output and the scene's item mask (:func:`item_correlation`).

A learned baseline whose output is not an image (talebi's runs from about -22 to +25) may pass
the task network a map of where the objects are rather than a picture of them; this measures
how much. The item mask is 1 on an item (its class, and the partly transparent border the
segmentation ignores, 255) and 0 on the background, brought to the output's size by area
averaging (``adaptive_avg_pool2d``: each output pixel holds the share of its footprint covered by
items). The correlation pools every pixel of every image given, per channel, from float64 sums:
1 is an output channel that is an increasing affine function of the item share, 0 one that
says nothing linear about it. An image (bilinear) correlates only as far as items differ in
brightness from their backgrounds: the comparison that says what is left to the learned one.

That r is signed, and a learned output may mark objects of different colours with opposite
signs in one channel, which cancels in r. So each channel is also correlated by its magnitude:
``|x - median|``, the distance of each pixel from the median of its image's channel (mostly
background, since items cover less than half of a scene), which is large on every object
whatever its sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Images per forward pass while measuring (memory only; the result does not depend on it).
BATCH = 16


@dataclass(frozen=True)
class ItemMap:
    """One resizer on one set of images: the Pearson r of each output channel with the item
    share, and of its magnitude ``|x - image median|`` (NaN for a channel or mask that is
    constant), and the output's range."""

    correlations: tuple[float, ...]
    low: float
    high: float
    images: int
    magnitudes: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON has no NaN: a constant channel's r is ``None``."""
        return {
            "correlations": [None if math.isnan(r) else r for r in self.correlations],
            "magnitude_correlations": [None if math.isnan(r) else r for r in self.magnitudes],
            "min": self.low,
            "max": self.high,
            "images": self.images,
        }


def magnitude(out: torch.Tensor) -> torch.Tensor:
    """``|x - median|`` of ``(B, C, h, w)``, the median taken per image and channel."""
    median = out.flatten(2).median(dim=2).values
    return (out - median[..., None, None]).abs()


def item_share(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, h, w)`` float64: the share of each output pixel covered by items, from ``(B, H,
    W)`` segmentation masks (0 background, anything else an item or its ignored border)."""
    items = (masks != 0).to(torch.float64).unsqueeze(1)
    return F.adaptive_avg_pool2d(items, size)


class PearsonSums:
    """Running float64 sums for the Pearson r of each channel of ``x`` with one ``y``."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        zeros = torch.zeros(channels, dtype=torch.float64)
        self.sx, self.sxx, self.sxy = zeros.clone(), zeros.clone(), zeros.clone()
        self.sy = self.syy = 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """``x`` ``(B, C, h, w)``, ``y`` ``(B, 1, h, w)``: every pixel is one pair per channel."""
        x, y = x.to(torch.float64), y.to(torch.float64)
        self.n += y.numel()
        self.sx += x.sum(dim=(0, 2, 3))
        self.sxx += (x * x).sum(dim=(0, 2, 3))
        self.sxy += (x * y).sum(dim=(0, 2, 3))
        self.sy += float(y.sum())
        self.syy += float((y * y).sum())

    def correlations(self) -> tuple[float, ...]:
        n = self.n
        covariance = n * self.sxy - self.sx * self.sy
        spread_x = (n * self.sxx - self.sx * self.sx).clamp_min(0.0)
        spread_y = max(n * self.syy - self.sy * self.sy, 0.0)
        return tuple(
            float(c / math.sqrt(float(v) * spread_y)) if float(v) * spread_y > 0 else math.nan
            for c, v in zip(covariance, spread_x, strict=True)
        )


@torch.no_grad()
def item_correlation(resizer: nn.Module, images: Any, resize: dict[str, Any]) -> ItemMap:
    """:class:`ItemMap` of ``resizer`` over every item of ``images``, a segmentation dataset of
    ``(image, {"mask": (H, W)})`` items; ``resize``: the resizer's ``size``/``scale_factor``.
    The resizer runs in eval mode (its training flag is restored)."""
    if len(images) == 0:
        raise ValueError("item_correlation needs at least one image.")
    was_training = resizer.training
    resizer.eval()
    device = next(resizer.parameters(), torch.empty(0)).device
    sums: PearsonSums | None = None
    magnitudes: PearsonSums | None = None
    low, high = math.inf, -math.inf
    try:
        for first in range(0, len(images), BATCH):
            items = [images[i] for i in range(first, min(first + BATCH, len(images)))]
            batch = torch.stack([image.as_subclass(torch.Tensor).float() for image, _ in items])
            masks = torch.stack([target["mask"].as_subclass(torch.Tensor) for _, target in items])
            out = resizer(batch.to(device), **resize).cpu()
            sums = sums or PearsonSums(out.shape[1])
            magnitudes = magnitudes or PearsonSums(out.shape[1])
            share = item_share(masks, (out.shape[-2], out.shape[-1]))
            sums.add(out, share)
            magnitudes.add(magnitude(out), share)
            low, high = min(low, float(out.min())), max(high, float(out.max()))
    finally:
        resizer.train(was_training)
    assert sums is not None and magnitudes is not None
    return ItemMap(sums.correlations(), low, high, len(images), magnitudes.correlations())
