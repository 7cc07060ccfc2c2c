"""The segmentation and detection pipelines, and the frozen-front feature cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.models import vgg16

from downsizenet_hub import DownsizeNet
from downsizenet_hub.backbones import FrozenVGG16
from downsizenet_hub.pipelines.detection import DetectionMetrics, DetectionPipeline, stride8_trunk
from downsizenet_hub.pipelines.feature_cache import CachedFrozenFront
from downsizenet_hub.pipelines.segmentation import SegmentationPipeline
from downsizenet_hub.resizing.fixed import FixedResizer
from downsizenet_hub.tensor_hash import module_sha256


def _seg_batch(batch: int = 4, size: int = 48) -> tuple[torch.Tensor, list[dict]]:
    images = torch.rand(batch, 3, size, size)
    masks = torch.zeros(batch, size, size, dtype=torch.int64)
    masks[:, 10:30, 12:40] = 2
    masks[:, 0:2] = 255
    return images, [{"mask": tv_tensors.Mask(m)} for m in masks]


def test_segmentation_loss_decreases_on_a_fixed_batch() -> None:
    pipeline = SegmentationPipeline(DownsizeNet(), 3, scale_factor=0.5, width=8)
    optimiser = torch.optim.AdamW(pipeline.parameters(), lr=3e-3)
    images, targets = _seg_batch()
    losses = []
    for _ in range(12):
        loss = pipeline(images, targets)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.grad is not None for p in pipeline.resizer.parameters())


def test_segmentation_predicts_at_input_resolution_and_ignores_255() -> None:
    pipeline = SegmentationPipeline(FixedResizer("bilinear"), 3, size=(20, 24), width=8).eval()
    images, targets = _seg_batch(2, 48)
    out = pipeline(images, targets)
    assert out["preds"].shape == (2, 48, 48) and out["logits"].shape == (2, 3, 48, 48)
    everything_ignored = [{"mask": tv_tensors.Mask(torch.full((48, 48), 255))} for _ in range(2)]
    assert torch.isnan(pipeline(images, everything_ignored)["loss"])  # no labelled pixel at all
    metric = pipeline.build_metric()
    metric.update(out["preds"], targets)
    scores = metric.compute()
    assert set(scores) == {"miou", "pixel_accuracy"} and 0 <= scores["miou"] <= 100


def test_segmentation_preds_only_in_eval_and_equal_the_plain_argmax() -> None:
    pipeline = SegmentationPipeline(FixedResizer("bilinear"), 5, size=(20, 24), width=8)
    images, targets = _seg_batch(2, 48)
    assert "preds" not in pipeline.train()(images, targets)  # training never reads them
    out = pipeline.eval()(images)
    assert torch.equal(out["preds"], out["logits"].argmax(dim=1))


def test_segmentation_metric_known_answer() -> None:
    metric = SegmentationPipeline(FixedResizer("bilinear"), 2, scale_factor=0.5).build_metric()
    mask = torch.tensor([[0, 0], [1, 255]])
    metric.update(mask[None].clone(), [{"mask": tv_tensors.Mask(mask)}])
    assert metric.compute() == {"miou": 100.0, "pixel_accuracy": 100.0}
    metric.reset()
    metric.update(torch.tensor([[[1, 1], [0, 0]]]), [{"mask": tv_tensors.Mask(mask)}])
    assert metric.compute()["pixel_accuracy"] == 0.0


def _random_vgg(tmp_path: Path | None = None) -> FrozenVGG16:
    torch.manual_seed(3)
    return FrozenVGG16(vgg16().features.state_dict(), source="random")


def _det_targets(batch: int, size: int) -> list[dict]:
    boxes = torch.tensor([[4.0, 6.0, 30.0, 28.0], [20.0, 20.0, 44.0, 40.0]])
    return [
        {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(size, size)),
            "labels": torch.tensor([1, 2]),
            "iscrowd": torch.zeros(2, dtype=torch.int64),
        }
        for _ in range(batch)
    ]


def test_detection_backbone_sees_exactly_the_resizer_output() -> None:
    trunk = stride8_trunk(_random_vgg())
    seen: list[tuple[int, ...]] = []
    trunk.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    resizer = DownsizeNet.as_bilinear()
    pipeline = DetectionPipeline(resizer, trunk, 3, size=(40, 36), cache_features=False)
    pipeline.train()
    out = pipeline(torch.rand(2, 3, 64, 64), _det_targets(2, 64))
    assert seen == [(2, 3, 40, 36)]
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("head", ["centernet", "fasterrcnn"])
def test_detection_only_heads_learn_and_frozen_tensors_stay_identical(head: str) -> None:
    trunk = stride8_trunk(_random_vgg())
    resizer = DownsizeNet(init="random")
    before = {k: v.clone() for k, v in {**resizer.state_dict(), **trunk.state_dict()}.items()}
    pipeline = DetectionPipeline(resizer, trunk, 3, scale_factor=0.5, head=head)
    pipeline.train()
    assert not pipeline.front.training and not pipeline.front.resizer.training
    trainable = [n for n, p in pipeline.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("heads.") for n in trainable)
    optimiser = torch.optim.SGD([p for p in pipeline.parameters() if p.requires_grad], lr=0.01)
    images = torch.rand(2, 3, 64, 64)
    for _ in range(2):
        loss = pipeline(images, _det_targets(2, 64))["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = {**resizer.state_dict(), **trunk.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_detection_predictions_come_back_in_input_coordinates() -> None:
    class Corners(nn.Module):
        """A fake RoI stage: returns each image's full resized frame as the detection."""

        def forward(self, features, proposals, sizes, targets=None):  # type: ignore[no-untyped-def]
            return [
                {"boxes": torch.tensor([[0.0, 0.0, w, h]]), "scores": torch.ones(1),
                 "labels": torch.ones(1, dtype=torch.int64)}
                for h, w in sizes
            ], {}  # fmt: skip

    pipeline = DetectionPipeline(
        FixedResizer("bilinear"), stride8_trunk(_random_vgg()), 3, size=(32, 24),
        cache_features=False, head="fasterrcnn",
    ).eval()  # fmt: skip
    pipeline.heads.roi_heads = Corners()  # type: ignore[assignment]
    with torch.no_grad():
        preds = pipeline(torch.rand(1, 3, 64, 48))["preds"]
    torch.testing.assert_close(preds[0]["boxes"], torch.tensor([[0.0, 0.0, 48.0, 64.0]]))


def test_map_known_answers() -> None:
    targets = _det_targets(2, 64)
    perfect = [
        {
            "boxes": t["boxes"].as_subclass(torch.Tensor),
            "scores": torch.ones(2),
            "labels": t["labels"],
        }
        for t in targets
    ]
    metric = DetectionMetrics()
    metric.update(perfect, targets)
    assert metric.compute()["map_50"] == pytest.approx(100.0)
    metric.reset()
    empty = [
        {
            "boxes": torch.zeros(0, 4),
            "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.int64),
        }
    ] * 2
    metric.update(empty, targets)
    assert metric.compute()["map_50"] == pytest.approx(0.0)


def test_feature_cache_hits_misses_and_invalidates(tmp_path: Path) -> None:
    front = nn.Sequential(nn.Conv2d(3, 4, 3)).requires_grad_(False)
    cache = CachedFrozenFront(front, salt="size=8", directory=tmp_path)
    images = torch.rand(3, 3, 10, 10)
    first = cache(images)
    assert (cache.hits, cache.misses) == (0, 3)
    again = cache(images[[2, 0]])
    assert (cache.hits, cache.misses) == (2, 3)
    torch.testing.assert_close(again, first[[2, 0]])
    # On disk: a fresh cache over the same front finds every image.
    fresh = CachedFrozenFront(front, salt="size=8", directory=tmp_path)
    fresh(images)
    assert (fresh.hits, fresh.misses) == (3, 0)
    # Changing a frozen weight (or the salt) changes every key.
    with torch.no_grad():
        front[0].weight.add_(1.0)
    changed = CachedFrozenFront(front, salt="size=8", directory=tmp_path)
    out = changed(images)
    assert (changed.hits, changed.misses) == (0, 3)
    assert not torch.allclose(out, first)
    assert CachedFrozenFront(front, salt="size=9").key_salt != changed.key_salt


def test_feature_cache_refuses_trainable_front() -> None:
    with pytest.raises(ValueError, match="frozen"):
        CachedFrozenFront(nn.Conv2d(3, 4, 3))


def test_module_hash_sees_every_tensor() -> None:
    net = DownsizeNet()
    before = module_sha256(net)
    with torch.no_grad():
        net.texture[0].bias[0] += 1e-6
    assert module_sha256(net) != before
