"""The resizers shipped inside the package load offline, strictly, and say how they were made."""

from __future__ import annotations

from pathlib import Path

import torch

from downsizenet_hub import DownsizeNet, hub
from downsizenet_hub.registry import create_resizer

SHIPPED = "downsizenet/scenes-a-noisy-x0.3"
ANTIALIAS = "downsizenet/scenes-a-noisy-antialias-x0.3"
TALEBI = "talebi/scenes-a-noisy-x0.3"
SAME = "detection on family A (frozen transfer)"
NEW = "detection on family B (new objects; frozen transfer)"


def test_shipped_resizer_loads_offline_and_is_convex() -> None:
    net = DownsizeNet.from_pretrained(SHIPPED)
    images = torch.rand(2, 3, 300, 300)
    with torch.no_grad():
        out = net(images, scale_factor=0.3)
        coefficients = net.coefficient_maps(images, scale_factor=0.3)
    assert out.shape == (2, 3, 90, 90)
    assert (coefficients >= 0).all()
    # Trained: it no longer equals its bilinear starting point.
    assert not torch.allclose(out, DownsizeNet.as_bilinear()(images, scale_factor=0.3), atol=1e-4)


def test_shipped_resizer_record_and_torch_hub() -> None:
    _, record = hub.load(SHIPPED)
    assert record is not None and record.generated_data and record.command.startswith("downsizenet")
    listed = {entry.name: entry for entry in hub.list_published()}
    assert SHIPPED in listed
    repo = Path(__file__).resolve().parents[1]
    net = torch.hub.load(str(repo), "downsizenet", source="local", pretrained=SHIPPED)
    assert isinstance(net, DownsizeNet)


def test_shipped_card_states_what_is_known() -> None:
    card = hub.show(SHIPPED)
    assert "| Seeds | 3, from seed 0 (scores: mean ± std over the seeds) |" in card
    assert "downsizenet study --preset plateau" in card and "not recorded" not in card
    # The family it was trained on, and what the study measured in both transfers.
    assert "family A: t-shirt/top, pullover, dress, coat, shirt on 7 of the 14" in card
    assert "## Measured differences" in card
    assert "| segmentation | mIoU | bilinear |" in card and "| segmentation | mIoU | area |" in card
    assert f"| {SAME} | mAP@0.5 | bilinear |" in card and f"| {NEW} | mAP@0.5 | bilinear |" in card


def test_the_antialias_card_compares_it_with_the_filter_it_starts_as() -> None:
    card = hub.show(ANTIALIAS)
    assert "| segmentation | mIoU | antialias |" in card
    for task in (SAME, NEW):
        assert f"| {task} | mAP@0.5 | antialias |" in card


def test_the_talebi_card_says_its_output_is_not_an_image() -> None:
    resizer = create_resizer(TALEBI)
    with torch.no_grad():
        out = resizer(torch.rand(1, 3, 100, 100), scale_factor=0.3)
    assert out.shape == (1, 3, 30, 30)
    _, record = hub.load(TALEBI)
    assert record is not None and record.outputs is not None
    assert record.outputs.outside_unit_range > 0.5  # most of its values are not pixel values
    card = hub.show(TALEBI)
    assert "## Output statistics" in card and "its outputs are not images" in card


def test_every_shipped_resizer_loads_and_carries_the_study_differences() -> None:
    shipped = {e.name: e for e in hub.list_published() if e.source == "shipped"}
    # The 300-step x0.5 resizer had moved 0.4% of its weight: it no longer ships.
    assert set(shipped) == {SHIPPED, ANTIALIAS, TALEBI}
    for name, entry in shipped.items():
        net = create_resizer(name)
        assert entry.record is not None and entry.record.n_seeds == 3, name
        tasks = {(d.task, d.baseline) for d in entry.record.differences}
        assert {(SAME, "bilinear"), (NEW, "bilinear")} <= tasks, name
        assert all(d.n_seeds == 3 for d in entry.record.differences), name
        assert entry.record.scale_factor == 0.3
        out = net(torch.rand(1, 3, 100, 100), scale_factor=0.3)
        assert out.shape[-1] == 30
