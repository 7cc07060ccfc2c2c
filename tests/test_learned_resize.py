"""LearnedResize: images through the resizer, masks/boxes/key points by the same geometry."""

from __future__ import annotations

import doctest
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from downsizenet_hub import DownsizeNet
from downsizenet_hub.resizing.sampling import axis_sampling
from downsizenet_hub.tools import learned_resize as transforms
from downsizenet_hub.tools.learned_resize import LearnedResize

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _textured() -> DownsizeNet:
    net = DownsizeNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
    return net


@pytest.mark.parametrize("device", DEVICES)
def test_float_images_equal_the_resizer_output(device: str) -> None:
    net = _textured().to(device)
    resize = LearnedResize(net, size=(9, 11))
    single = torch.rand(3, 30, 40, device=device)
    batched = torch.rand(2, 3, 30, 40, device=device)
    with torch.no_grad():
        torch.testing.assert_close(
            resize(tv_tensors.Image(single)), net(single[None], size=(9, 11))[0]
        )
        out = resize(tv_tensors.Image(batched))
        torch.testing.assert_close(out, net(batched, size=(9, 11)))
    assert isinstance(out, tv_tensors.Image) and out.device.type == device


def test_uint8_images_are_resized_in_0_1_and_rounded_back() -> None:
    net = _textured()
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    out = LearnedResize(net, scale_factor=0.5)(tv_tensors.Image(image))
    with torch.no_grad():
        expected = net(image[None].float() / 255, scale_factor=0.5)[0]
    expected = (expected * 255).round().clamp(0, 255).to(torch.uint8)
    assert out.dtype == torch.uint8 and out.shape == (3, 12, 12)
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected, atol=1, rtol=0)


def test_extra_leading_dimensions_and_plain_tensors() -> None:
    resize = LearnedResize("bilinear", size=(5, 6))
    video = tv_tensors.Video(torch.rand(2, 4, 3, 20, 24))
    assert resize(video).shape == (2, 4, 3, 5, 6)
    plain = torch.rand(3, 20, 24)
    out = resize(plain)
    assert type(out) is torch.Tensor and out.shape == (3, 5, 6)


@pytest.mark.parametrize("box_format", ["XYXY", "XYWH", "CXCYWH"])
def test_boxes_match_torchvision_resize(box_format: str) -> None:
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[3.0, 5.0, 20.0, 17.0], [0.0, 0.0, 40.0, 30.0]]),
        format=box_format,
        canvas_size=(30, 40),
    )
    image = tv_tensors.Image(torch.rand(3, 30, 40))
    _, ours = LearnedResize("bilinear", size=(13, 17))(image, boxes)
    _, theirs = v2.Resize((13, 17))(image, boxes)
    assert ours.canvas_size == theirs.canvas_size == (13, 17)
    assert ours.format == theirs.format
    torch.testing.assert_close(ours.as_subclass(torch.Tensor), theirs.as_subclass(torch.Tensor))


def test_key_points_match_torchvision_resize() -> None:
    points = tv_tensors.KeyPoints(torch.tensor([[3.0, 5.0], [39.5, 29.5]]), canvas_size=(30, 40))
    image = tv_tensors.Image(torch.rand(3, 30, 40))
    _, ours = LearnedResize("bilinear", size=(13, 17))(image, points)
    _, theirs = v2.Resize((13, 17))(image, points)
    assert ours.canvas_size == theirs.canvas_size
    torch.testing.assert_close(ours.as_subclass(torch.Tensor), theirs.as_subclass(torch.Tensor))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("nearest", v2.InterpolationMode.NEAREST),
        ("nearest-exact", v2.InterpolationMode.NEAREST_EXACT),
    ],
)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_masks_match_torchvision_resize(
    ours: str, theirs: v2.InterpolationMode, dtype: torch.dtype
) -> None:
    labels = torch.randint(0, 2 if dtype == torch.bool else 21, (2, 31, 37)).to(dtype)
    mask = tv_tensors.Mask(labels)
    image = tv_tensors.Image(torch.rand(3, 31, 37))
    _, resized = LearnedResize("bilinear", size=(12, 15), mask_interpolation=ours)(image, mask)
    _, expected = v2.Resize((12, 15), interpolation=theirs)(image, mask)
    assert isinstance(resized, tv_tensors.Mask) and resized.dtype == dtype
    assert torch.equal(resized.as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor))


def test_scale_factor_geometry_follows_the_resizer_sampling() -> None:
    """With a scale factor, output pixel i samples input coordinate (i + 0.5) / s: boxes and masks
    must use that step, not w_out / w_in."""
    s, height, width = 0.37, 31, 43  # no output centre falls exactly on an input pixel edge
    resize = LearnedResize(_textured(), scale_factor=s)
    out_h, out_w = int(height * s), int(width * s)
    # The centre of each output pixel, seen from the input (anchor + offset, in pixel centres).
    rows = axis_sampling("bilinear", height, out_h, s)
    cols = axis_sampling("bilinear", width, out_w, s)
    centre_y = (rows.anchor.double() + rows.offset + 0.5)[1:]  # row 0 is clamped at the border
    centre_x = (cols.anchor.double() + cols.offset + 0.5)[1:]
    n = min(len(centre_y), len(centre_x))
    points = torch.stack([centre_x[:n], centre_y[:n]], dim=1).float()
    boxes = tv_tensors.BoundingBoxes(
        torch.cat([points, points], dim=1), format="XYXY", canvas_size=(height, width)
    )
    image = tv_tensors.Image(torch.rand(3, height, width))
    out_image, out_boxes = resize(image, boxes)
    assert out_image.shape[-2:] == (out_h, out_w) and out_boxes.canvas_size == (out_h, out_w)
    expected = torch.arange(1, n + 1, dtype=torch.float32) + 0.5
    torch.testing.assert_close(out_boxes[:, 0], expected)
    torch.testing.assert_close(out_boxes[:, 1], expected)
    # The mask follows the same step: nearest-exact picks the input pixel under each centre.
    labels = torch.arange(height * width).view(height, width)
    out_mask = resize(image, tv_tensors.Mask(labels))[1]
    picked_rows = (torch.arange(out_h) + 0.5).div(s).floor().long()
    picked_cols = (torch.arange(out_w) + 0.5).div(s).floor().long()
    assert torch.equal(out_mask.as_subclass(torch.Tensor), labels[picked_rows][:, picked_cols])


def test_sample_dicts_pass_other_entries_through() -> None:
    sample = {
        "image": tv_tensors.Image(torch.rand(3, 20, 20)),
        "boxes": tv_tensors.BoundingBoxes(
            [[2.0, 2.0, 10.0, 10.0]], format="XYXY", canvas_size=(20, 20)
        ),
        "labels": torch.tensor([7]),
        "name": "x.jpg",
    }
    out = LearnedResize("bilinear", size=10)(sample)
    assert out["image"].shape == (3, 10, 10)
    assert out["boxes"].tolist() == [[1.0, 1.0, 5.0, 5.0]]
    assert torch.equal(out["labels"], torch.tensor([7])) and out["name"] == "x.jpg"


def test_pil_images_keep_their_mode() -> None:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    rgba = rgb.convert("RGBA")
    resize = LearnedResize(_textured(), size=(10, 15))
    out = resize(rgb)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (15, 10)
    out_rgba = resize(rgba)
    assert out_rgba.mode == "RGBA"
    # Opaque alpha: colour is what the RGB image gives, alpha stays 255.
    np.testing.assert_array_equal(np.asarray(out_rgba)[:, :, :3], np.asarray(out))
    assert (np.asarray(out_rgba)[:, :, 3] == 255).all()
    with pytest.raises(ValueError, match="convert it first"):
        resize(rgb.convert("P"))


def test_gray_images_through_a_colour_resizer() -> None:
    net = _textured()
    gray = torch.rand(1, 20, 20)
    out = LearnedResize(net, size=(8, 8))(tv_tensors.Image(gray))
    with torch.no_grad():
        expected = net(gray.expand(3, -1, -1)[None], size=(8, 8))[0, :1]
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected, atol=1e-6, rtol=0)


def test_the_resizer_is_frozen() -> None:
    net = _textured().train()
    resize = LearnedResize(net, size=8)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    resize.train()
    assert not net.training
    image = torch.rand(3, 16, 16, requires_grad=True)
    assert not resize(tv_tensors.Image(image)).requires_grad


def test_device_mismatch_is_one_sentence() -> None:
    resize = LearnedResize(DownsizeNet().to("meta"), size=8)
    with pytest.raises(ValueError, match="images are on cpu but the resizer is on meta"):
        resize(tv_tensors.Image(torch.rand(3, 16, 16)))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one of size"):
        LearnedResize("bilinear")
    with pytest.raises(ValueError, match="exactly one of size"):
        LearnedResize("bilinear", size=8, scale_factor=0.5)
    with pytest.raises(ValueError, match="size must be positive"):
        LearnedResize("bilinear", size=(0, 8))
    with pytest.raises(ValueError, match="mask_interpolation"):
        LearnedResize("bilinear", size=8, mask_interpolation="bilinear")  # type: ignore[arg-type]
    rotated = tv_tensors.BoundingBoxes(
        [[5.0, 5.0, 4.0, 2.0, 30.0]], format="XYWHR", canvas_size=(20, 20)
    )
    with pytest.raises(ValueError, match="rotated bounding boxes"):
        LearnedResize("bilinear", size=8)(tv_tensors.Image(torch.rand(3, 20, 20)), rotated)
    with pytest.raises(TypeError, match="uint8 or floating"):
        LearnedResize("bilinear", size=8)(
            tv_tensors.Image(torch.zeros(3, 20, 20, dtype=torch.bool))
        )


class _Squares(Dataset):
    def __init__(self, transform: LearnedResize) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        image = tv_tensors.Image(torch.rand(3, 24, 24, generator=generator))
        mask = tv_tensors.Mask(torch.full((24, 24), index, dtype=torch.int64))
        return self.transform(image, mask)


def test_pickles_and_runs_in_dataloader_workers() -> None:
    transform = LearnedResize(_textured(), size=(12, 12))
    copy = pickle.loads(pickle.dumps(transform))
    image = tv_tensors.Image(torch.rand(3, 24, 24))
    torch.testing.assert_close(copy(image), transform(image))
    in_process = [batch for batch in DataLoader(_Squares(transform), batch_size=2)]
    workers = [batch for batch in DataLoader(_Squares(transform), batch_size=2, num_workers=2)]
    for (image_a, mask_a), (image_b, mask_b) in zip(in_process, workers, strict=True):
        torch.testing.assert_close(image_a, image_b)
        assert torch.equal(mask_a, mask_b) and image_a.shape == (2, 3, 12, 12)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(transforms)
    assert result.attempted > 0 and result.failed == 0
