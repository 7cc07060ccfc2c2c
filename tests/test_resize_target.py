"""The resize target: one check of a size or scale factor, and one coordinate map that images,
points, boxes and masks all follow (``resizing/target.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision import tv_tensors

from downsizenet_hub import DownsizeNet, with_resizer
from downsizenet_hub.pipelines.detection import DetectionPipeline
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.target import resize_target
from downsizenet_hub.tools import LearnedResize


def sampled_centres(in_size: tuple[int, int], **target: object) -> torch.Tensor:
    """Where the bilinear DownsizeNet samples each output pixel, ``(h * w, 2)`` as ``(x, y)`` in
    continuous input coordinates: the weighted mean of the centres of the input pixels it mixes,
    read off the outputs of one delta spike per input pixel."""
    height, width = in_size
    spikes = torch.eye(height * width, dtype=torch.float64).view(-1, 1, height, width)
    with torch.no_grad():
        weights = DownsizeNet.as_bilinear().double()(spikes, **target)  # (H*W, 1, h, w)
    weights = weights[:, 0].flatten(1)  # (H*W, h*w): weight of input pixel k in output pixel j
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    return torch.stack([weights.T @ cols.reshape(-1), weights.T @ rows.reshape(-1)], dim=-1)


@pytest.mark.parametrize("seed", range(12))
def test_points_and_boxes_land_where_the_resizer_samples(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=generator))

    in_size = (draw(6, 23), draw(6, 23))
    if seed % 2:
        factor = (0.25 + 2.0 * float(torch.rand(1, generator=generator)),) * 2
        if seed % 4 == 1:  # a different factor per axis
            factor = (factor[0], 0.3 + float(torch.rand(1, generator=generator)))
        target_kwargs: dict[str, object] = {"scale_factor": factor}
    else:
        target_kwargs = {"size": (draw(3, 30), draw(3, 30))}
    target = resize_target(**target_kwargs)  # type: ignore[arg-type]
    out_h, out_w = target.output_size(in_size)
    assert (out_h, out_w) == tuple(
        DownsizeNet.as_bilinear()(torch.rand(1, 1, *in_size), **target_kwargs).shape[-2:]
    )
    sampled = sampled_centres(in_size, **target_kwargs).view(out_h, out_w, 2)
    # Output pixels whose two taps are distinct on both axes (at the borders, clamping moves the
    # sampled position; the map itself is still exact there).
    step_y, step_x = target.steps(in_size)
    src_y = (torch.arange(out_h, dtype=torch.float64) + 0.5) * step_y - 0.5
    src_x = (torch.arange(out_w, dtype=torch.float64) + 0.5) * step_x - 0.5
    inner_y = (src_y >= 0) & (src_y <= in_size[0] - 1)
    inner_x = (src_x >= 0) & (src_x <= in_size[1] - 1)
    inner = inner_y[:, None] & inner_x[None, :]
    if not inner.any():
        pytest.skip("no output pixel samples away from the borders at this size")
    centres = torch.stack(
        torch.meshgrid(
            torch.arange(out_w, dtype=torch.float64) + 0.5,
            torch.arange(out_h, dtype=torch.float64) + 0.5,
            indexing="xy",
        ),
        dim=-1,
    )  # (h, w, 2): x, y of each output pixel centre
    # Points: the sampled input position maps onto the output pixel's centre, and back.
    mapped = target.map_points(sampled[inner], in_size)
    assert torch.allclose(mapped, centres[inner], atol=1e-4, rtol=0)
    assert torch.allclose(target.unmap_points(centres[inner], in_size), sampled[inner], atol=1e-4)
    # Boxes: a box spanned by two sampled positions maps onto the box of the two centres.
    first, last = sampled[inner][0], sampled[inner][-1]
    box = torch.cat([first, last]).view(1, 4)
    expected = torch.cat([centres[inner][0], centres[inner][-1]]).view(1, 4)
    assert torch.allclose(target.map_boxes(box, in_size), expected, atol=1e-4, rtol=0)


def test_a_scale_factor_steps_one_over_s_not_out_over_in() -> None:
    """The drift of issue 17: 513 px at x0.35 is 179 px, but PyTorch steps 1/0.35 input pixels."""
    target = resize_target(scale_factor=0.35)
    assert target.output_size((513, 513)) == (179, 179)
    edge = target.map_points(torch.tensor([[513.0, 513.0]]), (513, 513))
    assert edge[0].tolist() == pytest.approx([513 * 0.35, 513 * 0.35])
    assert abs(513 * 0.35 - 179) > 0.5  # out/in would put the edge 0.55 px elsewhere
    # An axis whose length does not change is copied as is, whatever the factor.
    assert resize_target(scale_factor=1.05).steps((10, 10)) == (1.0, 1.0)


def test_the_check_names_the_options_it_was_given() -> None:
    with pytest.raises(ValueError, match=r"give exactly one of size=\(h, w\) or scale_factor=s"):
        resize_target()
    with pytest.raises(ValueError, match="give exactly one of --size HxW or --scale S"):
        resize_target((4, 4), 0.5, names=("--size", "--scale"))
    with pytest.raises(ValueError, match="--scale must be a finite, positive number"):
        resize_target(scale_factor=math.inf, names=("--size", "--scale"))
    with pytest.raises(ValueError, match="size must be positive integers"):
        resize_target(size=(0, 4))
    with pytest.raises(ValueError, match="shrinks a 3x3 image to 0x0"):
        resize_target(scale_factor=0.2).output_size((3, 3))


def _edge_box(in_size: tuple[int, int]) -> torch.Tensor:
    height, width = in_size
    return torch.tensor([[1.0, 2.0, width - 0.5, height - 1.0]])


def test_detection_pipeline_maps_boxes_with_the_target() -> None:
    class Front(torch.nn.Module):
        out_channels, stride = 4, 8

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images.new_zeros(images.shape[0], 4, 23, 23)

    in_size = (513, 513)
    pipeline = DetectionPipeline(
        create_resizer("bilinear"), Front(), 3, scale_factor=0.35, cache_features=False
    )
    seen: list[torch.Tensor] = []

    class Heads(torch.nn.Module):
        def forward(self, features: torch.Tensor, sizes: list, targets: list) -> tuple:
            assert sizes == [(179, 179)]
            seen.append(targets[0]["boxes"])
            return [], {"loss": features.sum()}

    pipeline.heads = Heads()
    pipeline.train()
    box = _edge_box(in_size)
    pipeline(torch.rand(1, 3, *in_size), [{"boxes": box, "labels": torch.tensor([1])}])
    expected = resize_target(scale_factor=0.35).map_boxes(box, in_size)
    assert torch.allclose(seen[0], expected)
    assert abs(float(seen[0][0, 2]) - (513 - 0.5) * 179 / 513) > 0.5  # not out/in


def test_learned_resize_maps_boxes_and_points_with_the_target() -> None:
    in_size = (513, 400)
    transform = LearnedResize("bilinear", scale_factor=0.35)
    box = _edge_box(in_size)
    boxes = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=in_size)
    points = tv_tensors.KeyPoints(box.view(2, 2), canvas_size=in_size)
    image = tv_tensors.Image(torch.rand(3, *in_size))
    out_image, out_boxes, out_points = transform(image, boxes, points)
    target = resize_target(scale_factor=0.35)
    assert tuple(out_image.shape[-2:]) == target.output_size(in_size) == out_boxes.canvas_size
    assert torch.allclose(out_boxes.as_subclass(torch.Tensor), target.map_boxes(box, in_size))
    assert torch.allclose(
        out_points.as_subclass(torch.Tensor), target.map_points(box.view(2, 2), in_size)
    )


def test_with_resizer_maps_detection_targets_with_the_target() -> None:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    detector = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=3)
    wrapped = with_resizer(detector, "bilinear", scale=0.35)
    seen: list[dict[str, torch.Tensor]] = []
    model = wrapped.model
    inner_forward = model.forward

    def spy(images: list, targets: list | None = None) -> object:
        seen.extend(targets or [])
        return inner_forward(images, targets)

    model.forward = spy  # type: ignore[method-assign]
    in_size = (513, 300)
    box = _edge_box(in_size)
    wrapped.train()
    wrapped([torch.rand(3, *in_size)], [{"boxes": box, "labels": torch.tensor([1])}])
    expected = resize_target(scale_factor=0.35).map_boxes(box, in_size)
    assert torch.allclose(seen[0]["boxes"], expected)
