"""How ``pretrain`` measures how far a trained learned resizer moved from its classical start.

For a DownsizeNet, the share of each pixel's weight its coefficients moved (:func:`weight_moved`);
for a learned baseline, whose output is not a convex mix, the mean ``|output - start output|``
against the classical resizer it starts as (bilinear for talebi, area for strided), recorded with
its output statistics (:func:`baseline_outputs`), which its card shows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from downsizenet_hub.experiments.output_stats import mean_abs_difference, output_statistics
from downsizenet_hub.hub.record import OutputStatistics
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer

__all__ = ["MOVED_IMAGES", "baseline_outputs", "describe_outputs", "weight_moved"]


#: Validation images on which :func:`weight_moved` is measured.
MOVED_IMAGES = 16


@torch.no_grad()
def weight_moved(net: DownsizeNet, images: Any, resize: dict[str, Any]) -> float:
    """How far a trained DownsizeNet moved from its classical start, on validation images.

    The mean over output pixels of ``0.5 * sum_k |a_k - c_k|``: the share of each pixel's weight
    the learned coefficients ``a`` moved away from the classical filter ``c`` of the same
    neighbourhood (0: still classical; 1: all of it), on the first :data:`MOVED_IMAGES` images.
    """
    classical = DownsizeNet(neighbourhood=net.config.neighbourhood, conv_layers=0)
    batch = _validation_images(images, 0, min(MOVED_IMAGES, len(images)))
    was_training = net.training
    net.eval()
    try:
        learned = net.coefficient_maps(batch.to(_device_of(net)), **resize).cpu()
    finally:
        net.train(was_training)
    reference = classical.coefficient_maps(batch, **resize)
    return float(0.5 * (learned - reference).abs().sum(dim=(-2, -1)).mean())


def _validation_images(images: Any, first: int, stop: int) -> torch.Tensor:
    """Images ``first`` to ``stop - 1`` of a dataset of ``(image, target)`` items, one batch."""
    return torch.stack([images[i][0].as_subclass(torch.Tensor) for i in range(first, stop)])


def baseline_outputs(
    net: TalebiResizer | StridedResizer, images: Any, resize: dict[str, Any]
) -> OutputStatistics:
    """The output statistics of a trained learned baseline on every validation image, and the
    mean ``|output - start output|`` on the first :data:`MOVED_IMAGES`, where ``start`` is the
    classical resizer the architecture starts as (``type(net).starts_as``)."""
    device = _device_of(net)
    count = len(images)
    batches = (
        _validation_images(images, first, min(first + MOVED_IMAGES, count)).to(device)
        for first in range(0, count, MOVED_IMAGES)
    )
    statistics = output_statistics(net, batches, **resize)
    moved_images = min(MOVED_IMAGES, count)
    start = create_resizer(type(net).starts_as)
    moved = mean_abs_difference(net, start, _validation_images(images, 0, moved_images), **resize)
    return OutputStatistics.from_dict(
        {**statistics, "images": count, "start": type(net).starts_as, "moved_from_start": moved,
         "moved_images": moved_images}
    )  # fmt: skip


def describe_outputs(name: str, outputs: OutputStatistics) -> str:
    """One line for the console: how far a baseline moved and where its outputs lie."""
    return (
        f"{name} moved {outputs.moved_from_start:.4f} from {outputs.start} (mean |output - "
        f"{outputs.start} output| over {outputs.moved_images} validation images); its outputs "
        f"span [{outputs.min:.3f}, {outputs.max:.3f}], {100 * outputs.outside_unit_range:.2f}% "
        f"outside [0, 1], {100 * outputs.outside_input_range:.2f}% outside their image's range"
    )


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device
