"""The sample format's geometry: bilinear images, nearest masks, boxes that follow, batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from downsizenet_hub.data.transforms import PixelNoise, as_size, build_transforms, collate


def _boxes(data: list[list[float]], canvas: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    return tv_tensors.BoundingBoxes(
        torch.tensor(data, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=canvas
    )


def test_image_resize_is_plain_bilinear_without_antialias() -> None:
    image = tv_tensors.Image(torch.rand(3, 12, 20))
    resized, _ = build_transforms((5, 7))(image, {})
    expected = F.interpolate(
        image[None], size=(5, 7), mode="bilinear", align_corners=False, antialias=False
    )[0]
    assert isinstance(resized, tv_tensors.Image)
    torch.testing.assert_close(resized.as_subclass(torch.Tensor), expected, rtol=0, atol=1e-6)


def test_mask_is_resized_with_nearest_and_keeps_ignore() -> None:
    mask = tv_tensors.Mask(
        torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [255, 255, 3, 3], [255, 255, 3, 3]])
    )
    image = tv_tensors.Image(torch.zeros(3, 4, 4))
    _, target = build_transforms(2)(image, {"mask": mask})
    assert target["mask"].dtype == torch.int64
    assert target["mask"].tolist() == [[1, 2], [255, 3]]
    _, target = build_transforms((8, 8))(image, {"mask": mask})
    assert set(torch.unique(target["mask"]).tolist()) == {1, 2, 3, 255}  # no blended ids


def test_boxes_scale_with_the_image_on_each_axis() -> None:
    image = tv_tensors.Image(torch.zeros(3, 10, 20))
    target = {
        "boxes": _boxes([[2, 4, 10, 8]], (10, 20)),
        "labels": torch.tensor([3]),
        "iscrowd": torch.tensor([0]),
    }
    out_image, out = build_transforms((20, 10), boxes=True)(image, target)
    assert out_image.shape == (3, 20, 10)
    assert out["boxes"].tolist() == [[1.0, 8.0, 5.0, 16.0]]
    assert tuple(out["boxes"].canvas_size) == (20, 10)


def test_boxes_too_small_after_resize_drop_with_their_labels() -> None:
    image = tv_tensors.Image(torch.zeros(3, 40, 40))
    target = {
        "boxes": _boxes([[0, 0, 20, 20], [30, 30, 32, 31]], (40, 40)),
        "labels": torch.tensor([4, 7]),
        "iscrowd": torch.tensor([0, 1]),
    }
    _, out = build_transforms(10, boxes=True)(image, target)
    assert out["boxes"].tolist() == [[0.0, 0.0, 5.0, 5.0]]
    assert out["labels"].tolist() == [4] and out["iscrowd"].tolist() == [0]


def test_flip_moves_image_mask_and_boxes_together() -> None:
    width = 6
    columns = torch.arange(width, dtype=torch.float32).expand(3, 4, width) / width
    image = tv_tensors.Image(columns.clone())
    mask = tv_tensors.Mask(torch.arange(width).expand(4, width).clone())
    transform = build_transforms(None, train_augment=True, boxes=True)
    flips = 0
    for seed in range(8):
        torch.manual_seed(seed)
        target = {
            "mask": mask,
            "boxes": _boxes([[1, 0, 3, 4]], (4, width)),
            "labels": torch.tensor([1]),
        }
        out_image, out = transform(image, target)
        flipped = bool(out_image[0, 0, 0] == (width - 1) / width)
        flips += flipped
        assert torch.equal(
            out["mask"][0], torch.arange(width).flip(0) if flipped else torch.arange(width)
        )
        assert out["boxes"].tolist() == (
            [[3.0, 0.0, 5.0, 4.0]] if flipped else [[1.0, 0.0, 3.0, 4.0]]
        )
    assert 0 < flips < 8


def test_train_crop_lands_on_image_size() -> None:
    image = tv_tensors.Image(torch.rand(3, 30, 40))
    target = {
        "mask": tv_tensors.Mask(torch.randint(0, 5, (30, 40))),
        "boxes": _boxes([[0, 0, 40, 30], [5, 5, 15, 20]], (30, 40)),
        "labels": torch.tensor([1, 2]),
    }
    for seed in range(5):
        torch.manual_seed(seed)
        out_image, out = build_transforms((16, 24), train_augment=True, boxes=True)(image, target)
        assert out_image.shape == (3, 16, 24) and out["mask"].shape == (16, 24)
        assert tuple(out["boxes"].canvas_size) == (16, 24) and len(out["boxes"]) == len(
            out["labels"]
        )
        boxes = out["boxes"].as_subclass(torch.Tensor)
        assert (boxes[:, 0::2] <= 24).all() and (boxes[:, 1::2] <= 16).all() and (boxes >= 0).all()
        assert set(torch.unique(out["mask"]).tolist()) <= set(range(5))


def test_pixel_noise_is_fixed_per_image_and_clipped() -> None:
    image = tv_tensors.Image(torch.full((3, 64, 64), 0.5))
    noise = PixelNoise(sigma=0.15, seed=3, stream=0)
    first = noise(image, 5)
    assert torch.equal(first, noise(image, 5))
    assert not torch.equal(first, noise(image, 6))
    assert not torch.equal(first, PixelNoise(sigma=0.15, seed=3, stream=1)(image, 5))
    assert abs(float((first - 0.5).std()) - 0.15) < 0.005
    bright = PixelNoise(sigma=0.15)(tv_tensors.Image(torch.ones(3, 8, 8)), 0)
    assert bright.max() == 1.0 and bright.min() < 1.0


def test_collate_stacks_images_and_keeps_targets() -> None:
    batch = [(tv_tensors.Image(torch.rand(3, 4, 5)), {"mask": i}) for i in range(3)]
    images, targets = collate(batch)
    assert type(images) is torch.Tensor and images.shape == (3, 3, 4, 5)
    assert torch.equal(images[1], batch[1][0].as_subclass(torch.Tensor))
    assert targets == [{"mask": 0}, {"mask": 1}, {"mask": 2}]


def test_collate_rejects_mixed_sizes() -> None:
    batch = [
        (tv_tensors.Image(torch.rand(3, 4, 5)), {}),
        (tv_tensors.Image(torch.rand(3, 5, 5)), {}),
    ]
    with pytest.raises(ValueError, match="differ in size"):
        collate(batch)


def test_image_size_forms() -> None:
    assert (
        as_size(300) == (300, 300) and as_size((200, 100)) == (200, 100) and as_size(None) is None
    )
    with pytest.raises(TypeError, match="image_size"):
        as_size(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        as_size((0, 4))
