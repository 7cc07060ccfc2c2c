"""What a study with scene families measures on each family: movement, item maps, outputs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_study_families import _families
from test_study_run import tiny
from torch import nn

from downsizenet_hub import DownsizeNet, hub
from downsizenet_hub.experiments.output_stats import mean_abs_difference
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.study import plan_study, preset, run_study
from downsizenet_hub.study.aggregate import estimate
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder
from downsizenet_hub.study.families import Family, family_scenes, first_images, study_families
from downsizenet_hub.study.family_outputs import FIGURE, is_image, output_figure
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


class _TwoSigns(nn.Module):
    """Area resizing, then +1 on items of even classes' rows and -1 on the others: a map of the
    objects whose sign depends on the object (as talebi's colours do)."""

    def forward(self, images: torch.Tensor, **resize: Any) -> torch.Tensor:
        out = create_resizer("area")(images, **resize)[:, :1]
        sign = torch.ones_like(out)
        sign[..., 1::2, :] = -1.0
        return out * sign


def _sparse_scenes() -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Two 16 px scenes whose items are 2x2 blocks on a background that covers most pixels (as
    in the built-in scenes), on output rows of both parities at x0.5."""
    scenes = []
    for blocks in (((0, 0), (2, 6), (8, 4), (10, 10), (4, 12)), ((6, 0), (12, 8), (2, 2))):
        mask = torch.zeros(16, 16, dtype=torch.int64)
        for label, (row, col) in enumerate(blocks, start=1):
            mask[row : row + 2, col : col + 2] = label
        scenes.append(((mask != 0).float().expand(3, 16, 16).clone(), {"mask": mask}))
    return scenes


def test_an_object_map_of_both_signs_is_found_by_its_magnitude() -> None:
    item_map = item_correlation(_TwoSigns(), _sparse_scenes(), {"scale_factor": 0.5})
    assert abs(item_map.correlations[0]) < 0.3  # the signs cancel in r
    assert item_map.magnitudes[0] == pytest.approx(1.0, abs=1e-12)


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
    maps = ((0, ItemMap((0.5, 0.1, math.nan), -2.0, 3.0, 4, (0.9, 0.8, math.nan))),
            (1, ItemMap((0.7, 0.3, math.nan), -22.0, 25.0, 4, (0.7, 0.6, math.nan))))  # fmt: skip
    fixed = ((None, ItemMap((0.1, 0.2, 0.3), 0.0, 1.0, 4, (0.4, 0.5, 0.6))),)
    table = item_map_table([
        ItemMapRow("bilinear", "noisy", 0.3, None, A, fixed),
        ItemMapRow("talebi", "noisy", 0.3, 8, B_CLEAN, maps),
    ])  # fmt: skip
    lines = table.splitlines()
    assert (
        "r, channel R | r, channel G | r, channel B | r of magnitude, R | r of magnitude, G | "
        "r of magnitude, B | output min | output max |"
    ) in lines[0]
    assert lines[2] == (
        "| bilinear | noisy | x0.3 | fixed | family A | - | +0.100 | +0.200 | +0.300 | +0.400 | "
        "+0.500 | +0.600 | 0.000 | 1.000 |"
    )
    assert lines[3] == (
        "| talebi | noisy | x0.3 | 8 epochs | family B (clean) | 2 | +0.600 ± 0.141 | "
        "+0.200 ± 0.141 | n/a | +0.800 ± 0.141 | +0.700 ± 0.141 | n/a | -22.000 | 25.000 |"
    )


def test_an_output_outside_the_image_range_is_drawn_per_channel_with_its_range() -> None:
    image = torch.rand(3, 8, 8)
    wild = torch.linspace(-22.0, 25.0, 3 * 4 * 4).view(3, 4, 4)
    assert is_image(image) and is_image(image * 1.1 - 0.05) and not is_image(wild)
    figure = output_figure(
        ["family A", "family B"],
        [image, image],
        [("bilinear", [image[:, ::2, ::2], image[:, ::2, ::2]]), ("talebi", [wild, wild / 2])],
    )
    titles = [axes.get_title() for axes in figure.axes]
    # Two inputs, two bilinear images, 2 x 3 channel panels and their 6 colourbars.
    assert len(figure.axes) == 16
    assert "R: min -22.00, max -7.00" in titles and "B: min 10.00, max 25.00" in titles
    assert "B: min 5.00, max 12.50" in titles  # family B's output in its own range
    assert sum(t.startswith("image, values") for t in titles) == 2


def _plant(results_dir: Path, cell: Any, model: nn.Module) -> None:
    hub.save_pretrained(model, cell_folder(results_dir, cell) / RESIZER_DIR)


def test_the_report_measures_each_learned_resizer_on_each_family(
    tmp_path: Path, trained_baseline: Callable[..., nn.Module]
) -> None:
    experiments = _families().to_dict()["experiments"]
    for experiment in experiments:
        experiment["baselines"] = ["bilinear", "talebi"]
    config = tiny(seeds=[0], experiments=experiments)
    plan = plan_study(config)
    learned = {c.resizer.label: c for c in plan.cells if c.task == "segmentation"}
    resize = {"scale_factor": 0.5}
    talebi = trained_baseline("talebi", {}, resize)
    with torch.no_grad():  # an output far outside [0, 1]
        talebi.output.weight.mul_(400.0)
    _plant(tmp_path, learned["downsizenet"], DownsizeNet())
    _plant(tmp_path, learned["talebi"], talebi)
    run_study(config, tmp_path, progress=False, report_only=True)
    report = (tmp_path / "results.md").read_text()
    assert "| moved on family A | moved on family B (clean) | unit |" in report
    cell = learned["talebi"]
    expected = []
    for family in (A, B_CLEAN):  # measured on each family's scenes, not read from a record
        images, _ = family_scenes(cell.data, cell.variant, cell.scale, family)
        batch = first_images(images, 16)
        expected.append(mean_abs_difference(talebi, create_resizer("bilinear"), batch, **resize))
    assert expected[0] != expected[1]
    talebi_row = next(line for line in report.splitlines() if line.startswith("| talebi | noisy"))
    assert f"| {expected[0]:.4f} (n=1) | {expected[1]:.4f} (n=1) |" in talebi_row
    assert "| downsizenet | noisy | x0.5 | 1 epoch | 0.00 (n=1) | 0.00 (n=1) |" in report
    assert "## How much of a non-image output is a map of the objects" in report
    rows = json.loads((tmp_path / "results.json").read_text())["item_maps"]
    assert [(r["resizer"], r["family"], r["family_variant"]) for r in rows] == [
        ("bilinear", "A", None), ("talebi", "A", None),
        ("bilinear", "B", "clean"), ("talebi", "B", "clean"),
    ]  # fmt: skip
    talebi_a = rows[1]["seeds"][0]
    assert talebi_a["seed"] == 0 and talebi_a["min"] < -1.0 and talebi_a["images"] == 4
    assert (tmp_path / FIGURE).is_file() and f"]({FIGURE})" in report
