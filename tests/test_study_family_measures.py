"""What a study with scene families measures on each family: movement, item maps, outputs."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from test_study_families import _families
from torch import nn

from downsizenet_hub.registry import create_resizer
from downsizenet_hub.study import preset
from downsizenet_hub.study.aggregate import estimate
from downsizenet_hub.study.families import Family, study_families
from downsizenet_hub.study.item_map_table import ItemMapRow, item_map_table
from downsizenet_hub.study.item_maps import ItemMap, PearsonSums, item_correlation, item_share
from downsizenet_hub.study.movement import WEIGHT, Movement, movement_table

pytestmark = pytest.mark.usefixtures("one_thread")

A, B_CLEAN = Family("A"), Family("B", "clean")


def test_the_families_are_the_pretrainings_then_the_transfers_and_none_without() -> None:
    assert study_families(_families()) == (A, B_CLEAN)
    assert [f.label for f in study_families(_families())] == ["family A", "family B (clean)"]
    assert study_families(preset("plateau")) == (A, Family("B"))
    assert study_families(preset("cpu")) == ()


def test_the_movement_table_has_a_column_per_family_and_none_without_families() -> None:
    row = Movement("downsizenet", "noisy", 0.3, 8, WEIGHT, (estimate([16.42]), estimate([16.47])))
    table = movement_table([row], [A, B_CLEAN])
    assert table.splitlines()[2] == (
        "| resizer | data | scale | pretraining | moved on family A | moved on family B (clean) "
        "| unit |"
    )  # after a line saying where each column was measured
    assert (
        "| downsizenet | noisy | x0.3 | 8 epochs | 16.42 (n=1) | 16.47 (n=1) | % of each" in table
    )
    alone = movement_table([Movement("downsizenet", "noisy", 0.3, 8, WEIGHT, (estimate([1.5]),))])
    assert alone.splitlines()[0] == (
        "| resizer | data | scale | pretraining | moved from its start | unit |"
    )  # as before scene families: the committed reports do not change


def test_item_share_is_the_covered_share_with_the_ignored_border_as_item() -> None:
    mask = torch.tensor([[[0, 0, 3, 255], [0, 0, 0, 1], [7, 7, 0, 0], [7, 0, 0, 0]]])
    assert item_share(mask, (2, 2)).tolist() == [[[[0.0, 0.75], [0.75, 0.0]]]]


def _scenes(count: int = 3, side: int = 12) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Images that are their item mask (1 on items, 0 elsewhere) in every channel."""
    scenes = []
    for _ in range(count):
        mask = torch.randint(0, 11, (side, side)) * (torch.rand(side, side) < 0.4)
        image = (mask != 0).float().expand(3, side, side).clone()
        scenes.append((image, {"mask": mask}))
    return scenes


class _Flipped(nn.Module):
    """Area resizing, then channel 0 kept, channel 1 turned into 5 - 30 x, channel 2 constant."""

    def forward(self, images: torch.Tensor, **resize: Any) -> torch.Tensor:
        out = create_resizer("area")(images, **resize)
        return torch.stack([out[:, 0], 5 - 30 * out[:, 1], torch.full_like(out[:, 2], 0.5)], 1)


def test_an_output_that_is_the_item_map_correlates_one_and_its_negative_minus_one() -> None:
    scenes = _scenes()
    item_map = item_correlation(_Flipped(), scenes, {"scale_factor": 0.5})
    assert item_map.correlations[0] == pytest.approx(1.0, abs=1e-12)
    assert item_map.correlations[1] == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(item_map.correlations[2])  # a constant channel says nothing
    assert (item_map.low, item_map.high, item_map.images) == (-25.0, 5.0, 3)
    assert item_map.to_json()["correlations"][2] is None


def test_pearson_sums_pool_batches_as_one_and_give_zero_for_orthogonal_pairs() -> None:
    sums = PearsonSums(1)
    sums.add(torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2), torch.tensor(
        [1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2))  # fmt: skip
    assert sums.correlations() == (0.0,)
    x, y = torch.randn(5, 2, 3, 4, dtype=torch.float64), torch.rand(5, 1, 3, 4).double()
    pooled = PearsonSums(2)
    pooled.add(x[:2], y[:2])
    pooled.add(x[2:], y[2:])
    for channel in range(2):
        pairs = torch.stack([x[:, channel].flatten(), y[:, 0].flatten()])
        expected = float(torch.corrcoef(pairs)[0, 1])
        assert pooled.correlations()[channel] == pytest.approx(expected, abs=1e-12)


def test_the_item_map_table_gives_mean_and_std_over_seeds_and_the_range() -> None:
    maps = ((0, ItemMap((0.5, 0.1, math.nan), -2.0, 3.0, 4)),
            (1, ItemMap((0.7, 0.3, math.nan), -22.0, 25.0, 4)))  # fmt: skip
    fixed = ((None, ItemMap((0.1, 0.2, 0.3), 0.0, 1.0, 4)),)
    table = item_map_table([
        ItemMapRow("bilinear", "noisy", 0.3, None, A, fixed),
        ItemMapRow("talebi", "noisy", 0.3, 8, B_CLEAN, maps),
    ])  # fmt: skip
    lines = table.splitlines()
    assert "r, channel R | r, channel G | r, channel B | output min | output max |" in lines[0]
    assert lines[2] == (
        "| bilinear | noisy | x0.3 | fixed | family A | - | +0.100 | +0.200 | +0.300 | 0.000 | "
        "1.000 |"
    )
    assert lines[3] == (
        "| talebi | noisy | x0.3 | 8 epochs | family B (clean) | 2 | +0.600 ± 0.141 | "
        "+0.200 ± 0.141 | n/a | -22.000 | 25.000 |"
    )
