"""BinCentreRoIAlign equals torchvision's RoIAlign with one sample per bin, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from downsizenet_hub.pipelines.roi_pool import BinCentreRoIAlign, roi_align_bin_centres


def _boxes(count: int, extent: float, generator: torch.Generator) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * extent
    size = torch.rand(count, 2, generator=generator) * extent / 2
    size[: count // 4] *= 0.01  # boxes under one feature cell (RoIAlign widens them to one)
    boxes = torch.cat([corner, corner + size], dim=1)
    if count < 3:
        return boxes
    boxes[-3:] = torch.tensor([[0.0, 0.0, extent, extent],  # the whole image
                               [-9.0, -9.0, 4.0, 4.0],  # starting outside: zero samples there
                               [extent - 2, extent - 2, extent + 20, extent + 20]])  # fmt: skip
    return boxes


@pytest.mark.parametrize(("height", "width", "scale"), [(12, 12, 1 / 8), (9, 15, 1 / 4), (1, 5, 1)])
def test_equals_torchvision_roi_align_with_one_sample_per_bin(
    height: int, width: int, scale: float
) -> None:
    generator = torch.Generator().manual_seed(height * width)
    feature = torch.randn(1, 6, height, width, generator=generator, dtype=torch.float64)
    boxes = _boxes(40, max(height, width) / scale, generator).double()
    mine = roi_align_bin_centres(feature, boxes, 7, scale)
    reference = roi_align(feature, [boxes], 7, spatial_scale=scale, sampling_ratio=1)
    torch.testing.assert_close(mine, reference, atol=1e-12, rtol=1e-12)


def test_pooler_matches_multiscale_roi_align_forward_and_backward() -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = [(90, 90), (90, 90), (90, 90)]  # the default transfer size: 90 px, stride 8
    boxes = [_boxes(count, 90.0, generator) for count in (17, 0, 30)]
    grads = []
    outputs = []
    for pooler in (BinCentreRoIAlign("0", 7), MultiScaleRoIAlign(["0"], 7, sampling_ratio=1)):
        feature = torch.randn(3, 8, 12, 12, generator=torch.Generator().manual_seed(1))
        feature.requires_grad_(True)
        out = pooler({"0": feature}, boxes, shapes)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out.detach())
        grads.append(feature.grad)
    assert outputs[0].shape == (47, 8, 7, 7)
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)
