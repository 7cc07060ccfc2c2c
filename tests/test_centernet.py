"""The CenterNet-style detection head: exact encode/decode geometry, losses, and learning."""

from __future__ import annotations

import math

import pytest
import torch

from downsizenet_hub.pipelines.centernet import CenterNetHead, gaussian_radius
from downsizenet_hub.pipelines.detection import DetectionMetrics


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[3.0, 5.0, 21.5, 30.0], [40.0, 8.0, 63.0, 20.0]]),
         "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[10.0, 33.0, 30.0, 47.0]]), "labels": torch.tensor([2])},
    ]  # fmt: skip


def _perfect_maps(
    head: CenterNetHead, targets: list[dict[str, torch.Tensor]], shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output maps that a perfectly trained head would produce for ``targets``."""
    heat, cells, sizes, offsets = head.encode(targets, shape, torch.device("cpu"))
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    size = torch.zeros(len(targets) * shape[0] * shape[1], 2)
    offset = torch.zeros_like(size)
    size[cells], offset[cells] = sizes, offsets

    def as_map(values: torch.Tensor) -> torch.Tensor:  # (B*h*w, 2) -> (B, 2, h, w)
        return values.reshape(len(targets), *shape, 2).permute(0, 3, 1, 2)

    return logits, as_map(size), as_map(offset)


def test_decode_inverts_encode_exactly() -> None:
    head = CenterNetHead(8, 3, stride=8)
    targets = _targets()
    shape = (6, 8)  # a 48 x 64 resized image at stride 8
    logits, size, offset = _perfect_maps(head, targets, shape)
    detections = head.decode(logits, size, offset, [(48, 64)] * 2)
    for target, detection in zip(targets, detections, strict=True):
        best = detection["scores"].argsort(descending=True)[: len(target["boxes"])]
        found = sorted(
            zip(detection["boxes"][best].tolist(), detection["labels"][best].tolist(), strict=False)
        )
        wanted = sorted(zip(target["boxes"].tolist(), target["labels"].tolist(), strict=False))
        for (box, label), (true_box, true_label) in zip(found, wanted, strict=True):
            assert label == true_label
            assert box == pytest.approx(true_box, abs=1e-4)
    metric = DetectionMetrics()
    metric.update(detections, targets)
    assert metric.compute()["map_50"] == pytest.approx(100.0)


def test_encode_puts_one_peak_per_box_at_its_centre_cell() -> None:
    head = CenterNetHead(8, 3, stride=8)
    heat, cells, sizes, offsets = head.encode(_targets(), (6, 8), torch.device("cpu"))
    assert heat.shape == (2, 2, 6, 8) and int(heat.eq(1).sum()) == 3
    # Box 0: centre (12.25, 17.5) px -> (1.53, 2.19) cells -> cell (row 2, col 1) of image 0.
    assert int(cells[0]) == 2 * 8 + 1
    torch.testing.assert_close(sizes[0], torch.tensor([18.5 / 8, 25.0 / 8]))
    torch.testing.assert_close(offsets[0], torch.tensor([12.25 / 8 - 1, 17.5 / 8 - 2]))
    assert float(heat.max()) == 1.0 and float(heat.min()) >= 0.0


def test_gaussian_radius_matches_centernets_rule() -> None:
    # Known answers of CenterNet's (and CornerNet's) published formula, the smallest of three
    # quadratic roots; for small boxes the third case decides.
    assert gaussian_radius(2.0, 2.0, 0.7) == pytest.approx(
        (-5.6 + math.sqrt(5.6**2 + 4 * 2.8 * 1.2)) / 2
    )
    assert int(gaussian_radius(2.25, 2.25)) == 0 and int(gaussian_radius(4.0, 8.0)) == 1
    assert gaussian_radius(4.0, 8.0) > gaussian_radius(2.0, 4.0) > 0


def test_losses_are_finite_and_near_zero_for_perfect_maps() -> None:
    head = CenterNetHead(8, 3, stride=8)
    targets = _targets()
    logits, size, offset = _perfect_maps(head, targets, (6, 8))
    losses = head.losses(logits, size, offset, targets)
    assert set(losses) == {"loss_heatmap", "loss_size", "loss_offset"}
    assert float(losses["loss_size"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["loss_offset"]) == pytest.approx(0.0, abs=1e-6)
    assert 0 <= float(losses["loss_heatmap"]) < 0.01
    untrained = head.losses(torch.zeros_like(logits), size * 0, offset * 0, targets)
    assert float(untrained["loss_heatmap"]) > 1.0


def test_head_learns_a_fixed_batch() -> None:
    torch.manual_seed(0)
    head = CenterNetHead(4, 3, stride=8, width=16)
    features = torch.randn(2, 4, 6, 8)
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        _, loss_dict = head(features, [(48, 64)] * 2, _targets())
        loss = sum(loss_dict.values())
        optimiser.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimiser.step()
        losses.append(float(loss.detach()))  # type: ignore[union-attr]
    assert losses[-1] < 0.3 * losses[0]
    head.eval()
    detections, none = head(features, [(48, 64)] * 2)
    assert none == {} and len(detections) == 2
    assert all(d["boxes"].shape[1] == 4 for d in detections)
