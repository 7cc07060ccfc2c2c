"""Range and statistics of a resizer's outputs: :func:`output_statistics`.

The DownsizeNet paper's generalisation argument (Ma et al., "Task Generalizable Spatial and
Texture Aware Image Downsizing Network") is that its output is still an image, because each
output pixel is a convex mix of input pixels, while a learned resizer with a free residual
(Talebi and Milanfar, "Learning to Resize Images for Computer Vision Tasks") or a strided
convolution is not so constrained. These numbers, recorded in each resizer's card, measure that
mechanism: a convex resizer never leaves its input image's range.

Torch only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def output_statistics(
    resizer: nn.Module,
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    size: int | tuple[int, int] | None = None,
    scale_factor: float | tuple[float, float] | None = None,
) -> dict[str, float | int]:
    """Statistics of ``resizer(batch, size=..., scale_factor=...)`` over every batch of ``images``.

    Args:
        resizer: any module with the resizer call signature; run in eval mode under
            ``torch.no_grad`` (its training flag is restored afterwards).
        images: one ``(B, C, H, W)`` float tensor, or an iterable of them (batches may differ in
            size).
        size, scale_factor: passed to the resizer as given (exactly one of them).

    Returns:
        ``values``: number of output values; ``min``, ``max``, ``mean``, ``std`` (population
        standard deviation, over all output values); ``outside_input_range``: fraction of output
        values outside ``[min, max]`` of the input image they come from (each image of a batch
        against its own pixels, all channels together); ``outside_unit_range``: fraction outside
        ``[0, 1]``. Accumulated in float64. A convex resizer (DownsizeNet, bilinear, area) has
        ``outside_input_range == 0``.
    """
    batches = [images] if isinstance(images, torch.Tensor) else images
    was_training = resizer.training
    resizer.eval()
    running = _Running()
    try:
        with torch.no_grad():
            for batch in batches:
                if batch.dim() != 4:
                    raise ValueError(
                        f"each batch must be B x C x H x W, got shape {tuple(batch.shape)}."
                    )
                out = resizer(batch, size=size, scale_factor=scale_factor).double()
                running.add(batch.double().flatten(1), out.flatten(1))
    finally:
        resizer.train(was_training)
    return running.statistics()


class _Running:
    """The statistics of :func:`output_statistics`, merged batch by batch in float64."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.low, self.high = float("inf"), float("-inf")
        self.outside_input = self.outside_unit = 0

    def add(self, flat_in: torch.Tensor, flat_out: torch.Tensor) -> None:
        """One batch: its inputs and outputs, one row per image."""
        below = flat_out < flat_in.amin(dim=1, keepdim=True)
        above = flat_out > flat_in.amax(dim=1, keepdim=True)
        self.outside_input += int((below | above).sum())
        self.outside_unit += int(((flat_out < 0) | (flat_out > 1)).sum())
        n = flat_out.numel()
        if n == 0:
            return
        batch_mean = float(flat_out.mean())
        batch_m2 = float(((flat_out - batch_mean) ** 2).sum())
        # Chan et al.'s pairwise update: exact merging of means and squared deviations.
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total
        self.low = min(self.low, float(flat_out.min()))
        self.high = max(self.high, float(flat_out.max()))

    def statistics(self) -> dict[str, float | int]:
        count = self.count
        if count == 0:
            raise ValueError("output_statistics needs at least one output value.")
        return {
            "values": count,
            "min": self.low,
            "max": self.high,
            "mean": self.mean,
            "std": (self.m2 / count) ** 0.5,
            "outside_input_range": self.outside_input / count,
            "outside_unit_range": self.outside_unit / count,
        }


def mean_abs_difference(
    resizer: nn.Module,
    reference: nn.Module,
    images: torch.Tensor,
    *,
    size: int | tuple[int, int] | None = None,
    scale_factor: float | tuple[float, float] | None = None,
) -> float:
    """Mean of ``|resizer(images) - reference(images)|`` over all output values (same resize
    arguments; both in eval mode under ``torch.no_grad``, training flags restored; ``reference``
    runs on the CPU, ``resizer`` where its parameters are). In pixel values: 0 for a resizer
    that still computes ``reference``; ``pretrain`` reports it as how far a learned baseline
    moved from the classical resizer it starts as."""
    modules = (resizer, reference)
    flags = [module.training for module in modules]
    device = next(resizer.parameters(), torch.empty(0)).device
    try:
        with torch.no_grad():
            learned = resizer.eval()(images.to(device), size=size, scale_factor=scale_factor)
            start = reference.eval()(images, size=size, scale_factor=scale_factor)
            return float((learned.cpu().double() - start.double()).abs().mean())
    finally:
        for module, flag in zip(modules, flags, strict=True):
            module.train(flag)
