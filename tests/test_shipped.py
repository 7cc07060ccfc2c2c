"""The resizers shipped inside the package load offline, strictly, and say how they were made."""

from __future__ import annotations

from pathlib import Path

import torch

from downsizenet_hub import DownsizeNet, hub

SHIPPED = "downsizenet/scenes-noisy-x0.3"


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
    assert "downsizenet study --preset cpu" in card and "not recorded" not in card
    # What the study measured, stated plainly, including where it loses.
    assert "## Measured differences" in card
    assert "| segmentation | mIoU | bilinear |" in card and "no detectable difference" in card
    assert "| segmentation | mIoU | area |" in card and "worse than area" in card


def test_the_antialias_card_compares_it_with_the_filter_it_starts_as() -> None:
    card = hub.show("downsizenet/scenes-noisy-antialias-x0.3")
    assert "downsizenet study --preset full" in card  # the preset that has the fixed filter
    assert "| segmentation | mIoU | antialias |" in card
    assert "| detection (frozen transfer) | mAP@0.5 | antialias |" in card


def test_every_shipped_resizer_loads_and_carries_the_study_differences() -> None:
    shipped = {e.name: e for e in hub.list_published() if e.source == "shipped"}
    assert set(shipped) >= {
        "downsizenet/scenes-noisy-x0.3", "downsizenet/scenes-noisy-antialias-x0.3",
        "downsizenet/scenes-noisy-x0.5",
    }  # fmt: skip
    for name, entry in shipped.items():
        net = DownsizeNet.from_pretrained(name)
        assert entry.record is not None and entry.record.n_seeds == 3, name
        tasks = {(d.task, d.baseline) for d in entry.record.differences}
        assert ("detection (frozen transfer)", "bilinear") in tasks, name
        scale = entry.record.scale_factor
        assert scale is not None
        out = net(torch.rand(1, 3, 100, 100), scale_factor=scale)
        assert out.shape[-1] == round(100 * scale)
