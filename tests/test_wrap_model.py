"""with_resizer in front of torchvision classification, segmentation and detection models."""

from __future__ import annotations

import doctest
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import detection, resnet18, segmentation

from downsizenet_hub import DownsizeNet, with_resizer
from downsizenet_hub.tools import wrap_model as wrap
from downsizenet_hub.tools.wrap_model import ResizedDetector, ResizeFreeTransform, detect_task

pytestmark = pytest.mark.usefixtures("one_thread")


def _textured() -> DownsizeNet:
    net = DownsizeNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
    return net


# ---------------------------------------------------------------- classification
def test_classifier_sees_the_resized_normalised_images() -> None:
    model = resnet18(weights=None, num_classes=5).eval()
    net = _textured()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    wrapped = with_resizer(model, net, size=(48, 40), normalize=(mean, std)).eval()
    images = torch.rand(2, 3, 90, 70)
    with torch.no_grad():
        resized = net(images, size=(48, 40))
        normalised = (resized - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
            1, 3, 1, 1
        )
        torch.testing.assert_close(wrapped(images), model(normalised))
    assert detect_task(model) == "classification"


# ---------------------------------------------------------------- segmentation
SEGMENTERS: dict[str, Callable[[], nn.Module]] = {
    "fcn_resnet50": lambda: segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=4, aux_loss=True
    ),
    "deeplabv3_mobilenet": lambda: segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4
    ),
    "lraspp_mobilenet": lambda: segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4
    ),
}


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_segmentation_logits_come_back_at_the_input_size(name: str) -> None:
    model = SEGMENTERS[name]().eval()
    net = _textured()
    wrapped = with_resizer(model, net, scale=0.35)
    assert detect_task(model) == "segmentation"
    images = torch.rand(1, 3, 100, 120)
    with torch.no_grad():
        out = wrapped(images)
        raw = model(net(images, scale_factor=0.35))
    assert set(out) == set(raw)
    for key in raw:
        assert raw[key].shape[-2:] == (35, 42)  # the model ran on the resized image
        assert out[key].shape == (1, 4, 100, 120)
        expected = F.interpolate(raw[key], size=(100, 120), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[key], expected)


def test_segmentation_output_size_can_be_chosen() -> None:
    model = SEGMENTERS["lraspp_mobilenet"]().eval()
    wrapped = with_resizer(model, "bilinear", size=(64, 64), output_size=(50, 60))
    with torch.no_grad():
        assert wrapped(torch.rand(1, 3, 100, 120))["out"].shape == (1, 4, 50, 60)
    same = with_resizer(model, "bilinear", size=(64, 64), output_size=(64, 64))
    with torch.no_grad():
        torch.testing.assert_close(
            same(torch.rand(1, 3, 100, 120, generator=torch.Generator().manual_seed(1)))["out"],
            model(
                F.interpolate(
                    torch.rand(1, 3, 100, 120, generator=torch.Generator().manual_seed(1)),
                    size=(64, 64),
                    mode="bilinear",
                    align_corners=False,
                )
            )["out"],
        )


# ---------------------------------------------------------------- detection
DETECTORS: dict[str, Callable[[], nn.Module]] = {
    "fasterrcnn_mobilenet": lambda: detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=3, box_score_thresh=0.0
    ),
    "ssdlite": lambda: detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3, score_thresh=0.0
    ),
    "fcos_resnet50": lambda: detection.fcos_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3, score_thresh=0.0
    ),
}
SLOW_DETECTORS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int]]] = {
    "ssd300_vgg16": (
        lambda: detection.ssd300_vgg16(
            weights=None, weights_backbone=None, num_classes=3, score_thresh=0.0
        ),
        (300, 300),
    ),
    "fasterrcnn_resnet50": (
        lambda: detection.fasterrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=3, box_score_thresh=0.0
        ),
        (64, 64),
    ),
}


def _capture_backbone_inputs(model: nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    model.backbone.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    return seen


def _check_detector(model: nn.Module, size: tuple[int, int]) -> None:
    net = _textured()
    wrapped = with_resizer(model, net, size=size).eval()
    assert isinstance(wrapped, ResizedDetector) and isinstance(model.transform, ResizeFreeTransform)
    seen = _capture_backbone_inputs(model)
    images = [torch.rand(3, 100, 120), torch.rand(3, 90, 70)]
    with torch.no_grad():
        out = wrapped(images)
        resized = [net(image[None], size=size)[0] for image in images]
        raw = model(resized)  # the same model, resize switched off, on the resizer's output
    # The backbone saw exactly the resizer's output, normalised, at the resizer's size.
    mean = torch.tensor(model.transform.image_mean).view(3, 1, 1)
    std = torch.tensor(model.transform.image_std).view(3, 1, 1)
    assert seen[0].shape == (2, 3, *size)
    for batch_index, image in enumerate(resized):
        torch.testing.assert_close(seen[0][batch_index], (image - mean) / std)
    # Predictions come back in input coordinates: x * W / w, y * H / h.
    for prediction, reference, image in zip(out, raw, images, strict=True):
        assert len(reference["boxes"]) > 0
        height, width = image.shape[-2:]
        scale = torch.tensor([width / size[1], height / size[0]] * 2)
        torch.testing.assert_close(prediction["boxes"], reference["boxes"] * scale)
        assert torch.equal(prediction["scores"], reference["scores"])
        assert torch.equal(prediction["labels"], reference["labels"])


def _check_training_targets(model: nn.Module, size: tuple[int, int]) -> None:
    wrapped = with_resizer(model, "bilinear", size=size).train()
    seen: list[Any] = []
    model.transform.register_forward_pre_hook(lambda _, args: seen.append(args[1]))
    boxes = torch.tensor([[10.0, 20.0, 60.0, 80.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([1])} for _ in range(2)]
    losses = wrapped([torch.rand(3, 100, 120), torch.rand(3, 100, 120)], targets)
    assert losses and all(torch.isfinite(value) for value in losses.values())
    expected = boxes * torch.tensor([size[1] / 120, size[0] / 100] * 2)
    torch.testing.assert_close(seen[0][0]["boxes"], expected)
    assert torch.equal(targets[0]["boxes"], boxes)  # the caller's targets are not modified


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_sees_the_resizer_output_and_boxes_come_back(name: str) -> None:
    _check_detector(DETECTORS[name](), (64, 64))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_training_targets_are_mapped_forward(name: str) -> None:
    _check_training_targets(DETECTORS[name](), (64, 64))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_DETECTORS))
def test_slow_detectors(name: str) -> None:
    build, size = SLOW_DETECTORS[name]
    _check_detector(build(), size)
    _check_training_targets(build(), size)


def test_detector_with_scale_pads_but_reports_the_resized_size() -> None:
    model = DETECTORS["fasterrcnn_mobilenet"]()
    wrapped = with_resizer(model, "area", scale=0.5).eval()
    seen_sizes: list[list[tuple[int, int]]] = []
    model.transform.register_forward_hook(lambda _, __, out: seen_sizes.append(out[0].image_sizes))
    seen = _capture_backbone_inputs(model)
    image = torch.rand(3, 100, 120)
    with torch.no_grad():
        out = wrapped([image])
    assert seen_sizes == [[(50, 60)]]
    assert seen[0].shape == (1, 3, 64, 64)  # padded to size_divisible=32 by the model
    assert torch.all(seen[0][:, :, 50:, :] == 0) and torch.all(seen[0][:, :, :, 60:] == 0)
    assert torch.all(out[0]["boxes"][:, 2] <= 120) and torch.all(out[0]["boxes"][:, 3] <= 100)


def test_mask_rcnn_masks_and_boxes_come_back_at_the_input_size() -> None:
    model = detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3, box_score_thresh=0.0
    )
    wrapped = with_resizer(model, "bilinear", size=(64, 64)).eval()
    with torch.no_grad():
        out = wrapped([torch.rand(3, 96, 128)])[0]
    assert out["masks"].shape[-2:] == (96, 128)
    assert out["masks"].shape[0] == out["boxes"].shape[0]
    assert float(out["boxes"][:, 2].max()) <= 128 and float(out["boxes"][:, 3].max()) <= 96


def test_frozen_resizer_stays_frozen_and_trainable_one_learns() -> None:
    frozen = _textured()
    wrapped = with_resizer(DETECTORS["fasterrcnn_mobilenet"](), frozen, size=(64, 64)).train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    trainable = _textured()
    wrapped = with_resizer(
        DETECTORS["fasterrcnn_mobilenet"](), trainable, size=(64, 64), trainable_resizer=True
    ).train()
    assert trainable.training
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 80.0]]), "labels": torch.tensor([1])}] * 2
    losses = wrapped([torch.rand(3, 100, 120)] * 2, targets)
    sum(losses.values()).backward()
    assert trainable.head.weight.grad is not None and trainable.head.weight.grad.abs().sum() > 0


def test_bad_arguments_are_one_sentence() -> None:
    model = resnet18(weights=None)
    with pytest.raises(ValueError, match="exactly one of size"):
        with_resizer(model, "bilinear")
    with pytest.raises(ValueError, match="exactly one of size"):
        with_resizer(model, "bilinear", size=8, scale=0.5)
    with pytest.raises(ValueError, match="output_size only applies"):
        with_resizer(model, "bilinear", size=8, output_size=(4, 4))
    with pytest.raises(ValueError, match="task must be one of"):
        with_resizer(model, "bilinear", size=8, task="depth")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no GeneralizedRCNNTransform"):
        with_resizer(model, "bilinear", size=8, task="detection")
    with pytest.raises(ValueError, match="do not pass normalize"):
        with_resizer(DETECTORS["ssdlite"](), "bilinear", size=8, normalize=((0.5,), (0.5,)))
    with pytest.raises(ValueError, match="normalize"):
        with_resizer(model, "bilinear", size=8, normalize=((0.5, 0.5), (0.5, 0.0)))
    detector = with_resizer(DETECTORS["ssdlite"](), "bilinear", size=64).eval()
    with pytest.raises(ValueError, match="float"):
        detector([torch.zeros(3, 20, 20, dtype=torch.uint8)])


def test_docstring_examples_run() -> None:
    result = doctest.testmod(wrap)
    assert result.attempted > 0 and result.failed == 0
