"""The study's maths and planning, without training: estimates against hand computations,
config checks, presets, and how cells are keyed and shared."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from downsizenet_hub.study import (
    PRESETS,
    estimate,
    load_config,
    paired_difference,
    plan_study,
    preset,
    study_config,
)
from downsizenet_hub.study.aggregate import Estimate, format_estimate, t_quantile
from downsizenet_hub.study.timing import estimate_seconds

# Student's t, 0.975 quantile, from printed tables (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262}


@pytest.mark.parametrize("dof", sorted(T975))
def test_t_quantile_matches_the_printed_table(dof: int) -> None:
    assert t_quantile(0.975, dof) == pytest.approx(T975[dof], abs=5e-4)


def test_estimate_matches_a_hand_computation() -> None:
    result = estimate([1.0, 2.0, 3.0, 4.0])
    # mean 10/4; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5 over n - 1 = 3.
    std = math.sqrt(5.0 / 3.0)
    half = t_quantile(0.975, 3) * std / math.sqrt(4.0)
    assert result.n == 4 and result.values == (1.0, 2.0, 3.0, 4.0)
    assert result.mean == 2.5
    assert result.std == pytest.approx(std, rel=1e-12)
    assert result.ci_low == pytest.approx(2.5 - half, rel=1e-12)
    assert result.ci_high == pytest.approx(2.5 + half, rel=1e-12)
    assert half == pytest.approx(3.182 * 1.29099 / 2, abs=2e-3)  # the same, from the table


def test_one_seed_gives_no_spread_and_no_interval() -> None:
    result = estimate([42.0])
    assert (result.mean, result.std, result.ci_low, result.ci_high) == (42.0, None, None, None)
    assert format_estimate(result) == "42.00 (n=1)"
    assert not result.excludes_zero()


def test_paired_difference_uses_the_seeds_both_have() -> None:
    values = {0: 10.0, 1: 12.0, 2: 14.0}
    baseline = {0: 9.0, 1: 11.5, 2: 13.0, 3: 99.0}  # seed 3 has no partner: ignored
    result = paired_difference(values, baseline)
    assert result is not None and result.values == (1.0, 0.5, 1.0)
    # differences 1, 0.5, 1: mean 5/6, squared deviations 1/36 + 4/36 + 1/36 over 2 = 1/12.
    assert result.mean == pytest.approx(5 / 6, rel=1e-12)
    assert result.std == pytest.approx(math.sqrt(1 / 12), rel=1e-12)
    half = 4.302652729911275 * math.sqrt(1 / 12) / math.sqrt(3)
    assert result.ci_low == pytest.approx(5 / 6 - half, rel=1e-9)
    assert (round(result.ci_low, 3), round(result.ci_high, 3)) == (0.116, 1.550)
    assert result.excludes_zero()
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_paired_interval_is_narrower_than_comparing_means_when_seeds_move_together() -> None:
    ours = {0: 50.0, 1: 60.0, 2: 70.0}
    bilinear = {0: 49.0, 1: 59.2, 2: 69.1}
    paired = paired_difference(ours, bilinear)
    assert paired is not None and paired.excludes_zero()
    assert estimate(list(ours.values())).ci_low < estimate(list(bilinear.values())).ci_high


def test_estimate_rejects_nothing_and_non_finite() -> None:
    with pytest.raises(ValueError, match="no values"):
        estimate([])
    with pytest.raises(ValueError, match="finite"):
        estimate([1.0, math.nan])


def test_format_estimate() -> None:
    text = format_estimate(estimate([1.0, 2.0, 3.0]), signed=True)
    assert text == "+2.00 ± 1.00 [-0.48, +4.48]"
    assert format_estimate(None) == "-"


# -- configs ------------------------------------------------------------------------------------


def _config(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "seeds": [0, 1, 2],
        "experiments": [
            {"kind": "segmentation", "title": "S", "resizers": ["downsizenet", "area"]},
            {"kind": "transfer", "title": "T", "pretrain_epochs": [2, 1]},
        ],
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"colour": "red"}, "unknown key(s) ['colour']"),
        ({"seeds": [0, -1]}, "seeds[1] must be an integer from 0 to 4294967295"),
        ({"seeds": [0, 0]}, "seeds lists a value twice"),
        ({"seeds": []}, "seeds must not be empty"),
        ({"variants": ["foggy"]}, "variants must list ['clean', 'noisy']"),
        ({"pretrain": {"epochs": 0}}, "pretrain.epochs must be an integer from 1 to"),
        ({"pretrain": {"lr": "fast"}}, "pretrain.lr must be a number"),
        ({"pretrain": {"backbone": "vit"}}, "pretrain.backbone must be one of"),
        ({"pretrain": {"data": {"image_size": [64]}}}, "pretrain.data.image_size must be"),
        ({"transfer": {"data": {"name": "cityscapes"}}}, "no detection labels"),
        ({"experiments": []}, "experiments must not be empty"),
        ({"experiments": [{"kind": "table"}]}, "experiments[0].kind must be one of"),
        (
            {"experiments": [{"kind": "segmentation", "resizers": ["bilinear"]}]},
            "experiments[0].title is required",
        ),
        (
            {"experiments": [{"kind": "segmentation", "title": "S", "resizers": ["lanczos"]}]},
            "experiments[0].resizers[0]: unknown resizer 'lanczos'",
        ),
        (
            {
                "experiments": [
                    {
                        "kind": "segmentation",
                        "title": "S",
                        "resizers": [{"label": "deep", "conv_layers": 9}],
                    }
                ]
            },
            "experiments[0].resizers[0] (deep): conv_layers",
        ),
        (
            {
                "experiments": [
                    {
                        "kind": "segmentation",
                        "title": "S",
                        "resizers": [{"label": "x", "colour": 1}],
                    }
                ]
            },
            "unknown DownsizeNet config key(s) ['colour']",
        ),
        (
            {
                "experiments": [
                    {"kind": "segmentation", "title": "S", "resizers": ["area"], "scales": [1.5]}
                ]
            },
            "experiments[0].scales[0] must be in (0, 1]",
        ),
        (
            {"experiments": [{"kind": "transfer", "title": "T", "resizer": "bilinear"}]},
            "must be a learned resizer to pretrain",
        ),
        (
            {"experiments": [{"kind": "transfer", "title": "T", "baselines": ["nearest"]}]},
            "experiments[0].baselines[0]: unknown resizer 'nearest'",
        ),
        (
            {"experiments": [{"kind": "transfer", "title": "T", "publish": "../up"}]},
            "experiments[0].publish",
        ),
        ({"name": "../elsewhere"}, "name must be a plain folder name"),
    ],
)
def test_bad_configs_name_the_field(changes: dict[str, Any], words: str) -> None:
    with pytest.raises((TypeError, ValueError)) as error:
        study_config(_config(**changes))
    assert words in str(error.value)


def test_a_config_round_trips_through_json(tmp_path: Path) -> None:
    config = study_config(_config())
    path = tmp_path / "study.json"
    path.write_text(json.dumps(config.to_dict()))
    again = load_config(path)
    assert again == config
    assert [c.key for c in plan_study(again).cells] == [c.key for c in plan_study(config).cells]


def test_toml_config_and_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "study.toml"
    good.write_text(
        'name = "t"\nseeds = [0]\n[[experiments]]\nkind = "segmentation"\ntitle = "S"\n'
        'resizers = ["downsizenet-texture", {label = "wide", channels = 32}]\n'
    )
    config = load_config(good)
    labels = [r.label for r in config.experiments[0].resizers]  # type: ignore[union-attr]
    assert labels == ["downsizenet-texture", "wide"]
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "t"\nseeds = [0, "one"]\n')
    with pytest.raises(ValueError, match=r"bad\.toml: seeds\[1\]"):
        load_config(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match=r"cannot parse .*broken\.json"):
        load_config(broken)
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"\.json or \.toml"):
        load_config(good.rename(tmp_path / "study.yaml"))


# -- plans --------------------------------------------------------------------------------------


def test_plan_shares_cells_and_orders_transfers_after_their_resizer() -> None:
    plan = plan_study(study_config(_config()))
    keys = [c.key for c in plan.cells]
    assert len(keys) == len(set(keys))
    # Per seed: S (bilinear, downsizenet, area at x0.3, 3 epochs) and T at 1 and 2 epochs
    # (bilinear + downsizenet segmentation, the transfer) + the bilinear transfer.
    assert plan.cell_count("segmentation") == 3 * (3 + 4)
    assert plan.cell_count("transfer") == 3 * 3
    position = {c.key: i for i, c in enumerate(plan.cells)}
    for cell in plan.cells:
        if cell.source is not None:
            assert position[cell.source.key] < position[cell.key]
    assert [c.seed for c in plan.cells] == sorted(c.seed for c in plan.cells)  # seed-major
    for row in plan.rows:
        for cells in (*row.cells.values(), *row.baseline.values()):
            assert [c.seed for c in cells] == [0, 1, 2]
            assert all(c.key in position for c in cells)


def test_learned_baselines_in_a_transfer_study_are_pretrained_then_transferred() -> None:
    experiments = [
        {
            "kind": "transfer", "title": "T", "pretrain_epochs": [1, 2],
            "baselines": ["area", "talebi", {"label": "t2", "architecture": "talebi",
                                             "residual_blocks": 2}],
        },
    ]  # fmt: skip
    config = study_config(_config(seeds=[0], experiments=experiments))
    assert [b.to_json() for b in config.experiments[0].baselines] == [  # type: ignore[union-attr]
        "area", "talebi", {"label": "t2", "architecture": "talebi", "residual_blocks": 2},
    ]  # fmt: skip
    assert study_config(config.to_dict()) == config
    plan = plan_study(config)
    talebi = [c for c in plan.cells if c.resizer.ref == "talebi"]
    assert sorted((c.task, c.resizer.label, c.epochs) for c in talebi) == [
        ("segmentation", "t2", 2), ("segmentation", "talebi", 2),
        ("transfer", "t2", 10), ("transfer", "talebi", 10),
    ]  # fmt: skip
    seg = {c.resizer.label: c for c in talebi if c.task == "segmentation"}
    assert seg["t2"].spec()["resizer_config"]["residual_blocks"] == 2
    assert seg["talebi"].spec()["resizer_config"]["architecture"] == "talebi"
    assert seg["t2"].key != seg["talebi"].key
    rows = {(r.resizer.label, r.pretrain_epochs) for r in plan.rows}
    assert {("downsizenet", 1), ("downsizenet", 2), ("talebi", 2), ("t2", 2),
            ("area", None), ("bilinear", None)} == rows  # fmt: skip
    bad = [
        ({"label": "t3", "architecture": "talebi", "width": 3}, r"baselines\[0\] \(t3\): .*width"),
        ({"label": "talebi", "architecture": "talebi", "filters": 8}, "'talebi' is taken"),
        ({"label": "x", "architecture": "vit"}, "architecture must be one of"),
    ]
    for table, words in bad:
        with pytest.raises(ValueError, match=words):
            study_config(_config(experiments=[{**experiments[0], "baselines": [table]}]))


def test_cell_keys_are_stable_and_follow_every_setting() -> None:
    first = plan_study(study_config(_config()))
    again = plan_study(study_config(_config()))
    assert [c.key for c in first.cells] == [c.key for c in again.cells]
    changed = plan_study(study_config(_config(pretrain={"lr": 1e-3})))
    assert not {c.key for c in first.cells} & {c.key for c in changed.cells if c.task != "transfer"}
    # A transfer from a retrained resizer is a new cell; a fixed-resizer transfer is not.
    fixed = {c.key for c in first.cells if c.task == "transfer" and c.source is None}
    assert fixed <= {c.key for c in changed.cells}
    resolved = plan_study(study_config(_config()), backbone_weights="hed")
    assert all(
        c.key not in {d.key for d in first.cells} for c in resolved.cells if c.task == "transfer"
    )


def test_presets_are_valid_and_say_what_they_run() -> None:
    quick = plan_study(preset("quick"))
    assert [(c.task, c.resizer.label) for c in quick.cells] == [
        ("segmentation", "bilinear"),
        ("segmentation", "downsizenet"),
        ("transfer", "downsizenet"),
        ("transfer", "bilinear"),
    ]
    assert [(c.key, name) for c, name in quick.publications] == [
        (quick.cells[1].key, "quickstart/downsizenet-x0.3")
    ]
    assert all(c.variant == "noisy" and c.scale == 0.3 for c in quick.cells)
    cpu = plan_study(preset("cpu"))
    assert all(len(cells) == 3 for row in cpu.rows for cells in row.cells.values())
    assert {c.variant for c in cpu.cells} == {"noisy"}
    # The learned baselines pretrain as long as the longest DownsizeNet and then transfer, at
    # the scales they are compared at (talebi x0.3, strided x0.5 = 1/2).
    learned = {(c.task, c.resizer.ref, c.scale, c.epochs) for c in cpu.cells if c.resizer.learned}
    assert {("segmentation", "talebi", 0.3, 3), ("segmentation", "strided", 0.5, 3)} <= learned
    sources = {c.resizer.ref: c.source for c in cpu.cells if c.task == "transfer"}
    assert sources["talebi"] is not None and sources["talebi"].resizer.ref == "talebi"
    seg = [c for c in cpu.cells if c.task == "segmentation"]
    assert {c.epochs for c in seg if c.resizer.ref == "downsizenet"} == {1, 2, 3}
    assert [(c.resizer.label, c.scale, c.epochs, c.seed, name) for c, name in cpu.publications] == [
        ("downsizenet", 0.3, 3, 0, "downsizenet/scenes-noisy-x0.3"),
        ("downsizenet", 0.5, 3, 0, "downsizenet/scenes-noisy-x0.5"),
    ]
    assert study_config(preset("cpu").to_dict()) == preset("cpu")
    budget = sum(estimate_seconds(c) or 0.0 for c in cpu.cells)
    assert 75 * 60 < budget < 110 * 60  # idle rates calibrated on this preset (timing.py)
    paper = plan_study(preset("paper"))
    assert {c.data.name for c in paper.cells} == {"voc", "cityscapes"}
    assert {c.epochs for c in paper.cells if c.task == "transfer"} == {10}
    assert preset("paper").transfer.head == "fasterrcnn"  # the paper's two-stage family, on GPUs
    assert preset("quick").transfer.head == "centernet"  # learns in CPU minutes
    assert all(estimate_seconds(c) is None for c in paper.cells if c.task == "segmentation")
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset("fast")
    assert set(PRESETS) == {"quick", "cpu", "full", "plateau", "paper"}
    full = plan_study(preset("full"))
    assert {c.key for c in cpu.cells} <= {c.key for c in full.cells}  # resumes from cpu's cells
    assert {c.variant for c in full.cells} == {"noisy", "clean"}
    # full publishes the antialias resizer: it has the fixed antialias filter to compare it with.
    assert [
        (c.resizer.label, c.scale, c.epochs, c.seed, name) for c, name in full.publications
    ] == [
        ("downsizenet-antialias", 0.3, 3, 0, "downsizenet/scenes-noisy-antialias-x0.3"),
    ]
    assert {c.resizer.label for c in full.cells} >= {
        "downsizenet-conv1", "downsizenet-conv5", "downsizenet-texture", "bicubic", "talebi",
        "downsizenet-bicubic", "antialias", "strided",
    }  # fmt: skip


# -- summaries and tables -----------------------------------------------------------------------


def _fabricated(plan: Any, values: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """A CellResult per cell of ``plan`` with ``values[task][resizer][seed]`` as its score."""
    from downsizenet_hub.study import CellResult

    results = {}
    for cell in plan.cells:
        metric = "miou" if cell.task == "segmentation" else "map_50"
        results[cell.key] = CellResult(
            key=cell.key, task=cell.task, resizer=cell.resizer.label, variant=cell.variant,
            scale=cell.scale, epochs=cell.epochs, seed=cell.seed,
            metrics={metric: values[cell.task][cell.resizer.label][cell.seed]},
            wall_time_s=1.0, images_per_s=1.0, spec=cell.spec(),
        )  # fmt: skip
    return results


def test_rows_tables_and_findings_from_known_scores() -> None:
    from downsizenet_hub.study.report import findings, markdown_tables, summarise

    config = study_config(
        {"name": "t", "seeds": [0, 1, 2], "experiments": [
            {"kind": "segmentation", "title": "S", "resizers": ["downsizenet"]},
            {"kind": "transfer", "title": "T", "pretrain_epochs": [3]},
        ]}
    )  # fmt: skip
    plan = plan_study(config)
    # S at x0.3 for 3 epochs and T's pretraining are the same cells: planned once.
    assert plan.cell_count("segmentation") == 2 * 3 and plan.cell_count("transfer") == 2 * 3
    values = {
        "segmentation": {"bilinear": [10.0, 11.0, 12.0], "downsizenet": [11.0, 11.5, 13.5]},
        "transfer": {"bilinear": [1.0, 2.0, 3.0], "downsizenet": [1.5, 2.0, 3.5]},
    }
    summaries = summarise(plan, _fabricated(plan, values))
    by_row = {(s.row.experiment, s.row.resizer.label): s for s in summaries}
    ours = by_row[("S", "downsizenet")]
    # mIoU 11, 11.5, 13.5: mean 12, squared deviations 1 + 0.25 + 2.25 = 3.5 over 2.
    assert ours.scores["segmentation"]["miou"].mean == 12.0
    assert ours.scores["segmentation"]["miou"].std == pytest.approx(math.sqrt(1.75))
    # Paired differences 1, 0.5, 1.5: mean 1, std 0.5, half-width t(2) * 0.5 / sqrt(3).
    difference = ours.difference["segmentation"]
    assert difference is not None and difference.values == (1.0, 0.5, 1.5)
    assert difference.std == pytest.approx(0.5)
    assert difference.ci_high == pytest.approx(1.0 + 4.302652729911275 * 0.5 / math.sqrt(3))
    transfer = by_row[("T", "downsizenet")]
    assert transfer.row.pretrain_epochs == 3
    assert transfer.baseline["segmentation"].mean == 11.0
    assert transfer.difference["transfer"].mean == pytest.approx(1 / 3)  # type: ignore[union-attr]
    assert by_row[("T", "bilinear")].difference == {"transfer": None}
    table = markdown_tables(summaries, 3)
    expected = "| downsizenet | 12.00 ± 1.32 [8.71, 15.29] | +1.00 ± 0.50 [-0.24, +2.24] | 3 |"
    assert f"| noisy | x0.3 {expected}" in table
    assert "| noisy | x0.3 | bilinear | 11.00 ± 1.00 [8.52, 13.48] | reference | 3 |" in table
    sentences = findings(summaries)
    assert any("+1.00, 95% CI [-0.24, +2.24] includes 0" in s for s in sentences)
    # A missing cell: the row says 2 of 3 seeds and pairs only what both arms have.
    partial = _fabricated(plan, values)
    dropped = next(c for c in plan.cells if c.task == "segmentation" and c.seed == 2
                   and c.resizer.label == "downsizenet")  # fmt: skip
    del partial[dropped.key]
    row = next(
        s for s in summarise(plan, partial) if s.row.experiment == "S" and s.row.resizer.learned
    )
    assert row.seeds["segmentation"] == [0, 1]
    assert row.difference["segmentation"].values == (1.0, 0.5)  # type: ignore[union-attr]
    assert "| 2/3 |" in markdown_tables(summarise(plan, partial), 3)


def test_a_card_compares_a_downsizenet_with_the_classical_filter_it_starts_as() -> None:
    from downsizenet_hub.study.config import resizer_spec
    from downsizenet_hub.study.publishing import compared_with

    def compared(name: str) -> tuple[str, ...]:
        return compared_with(resizer_spec(name, "resizer"))

    assert compared("downsizenet") == ("bilinear", "area")  # its start is bilinear already
    assert compared("downsizenet-antialias") == ("bilinear", "area", "antialias")
    assert compared("downsizenet-bicubic") == ("bilinear", "area", "bicubic")
    assert compared("talebi") == ("bilinear", "area")  # no classical start to compare with


def test_time_left_follows_the_measured_pace_not_the_rough_rates() -> None:
    from downsizenet_hub.study.timing import remaining_at_measured_pace

    seg = "segmentation"
    assert remaining_at_measured_pace([], [(seg, 10.0), (seg, 20.0)]) is None  # nothing timed
    # Cells took 3x their rough estimate here: the remaining ones are expected to as well.
    timed = [(seg, 10.0, 30.0), (seg, 20.0, 60.0)]
    assert remaining_at_measured_pace(timed, [(seg, 5.0), (seg, 5.0)]) == 30.0
    assert remaining_at_measured_pace(timed, [(seg, 5.0), (seg, None)]) is None  # one unknown
    assert remaining_at_measured_pace([(seg, None, 30.0)], [(seg, 5.0)]) is None  # no estimate


def test_time_left_scales_each_task_by_its_own_pace_once_it_has_one() -> None:
    from downsizenet_hub.study.timing import remaining_at_measured_pace

    seg, det = "segmentation", "transfer"
    # No transfer cell timed yet: transfer cells go at the segmentation cells' pace (x2).
    assert remaining_at_measured_pace([(seg, 10.0, 20.0)], [(seg, 10.0), (det, 5.0)]) == 30.0
    # Then each task at its own: segmentation x2, transfer x4.
    timed = [(seg, 10.0, 20.0), (det, 5.0, 20.0)]
    assert remaining_at_measured_pace(timed, [(seg, 10.0), (det, 5.0)]) == 40.0


def _estimate(mean: float, n: int, half: float = 1.0) -> Estimate:
    if n < 2:
        return Estimate(1, mean, None, None, None, (mean,))
    return Estimate(n, mean, half, mean - half, mean + half, (mean,) * n)


def test_a_single_configuration_is_a_dot_chart_from_zero_marked_one_seed() -> None:
    from matplotlib.figure import Figure

    from downsizenet_hub.study.plots import _draw

    axes = Figure().subplots()
    series = [
        ("downsizenet", "downsizenet", [4.0], [_estimate(10.18, 1)]),
        ("bilinear", "bilinear", [4.0], [_estimate(10.0, 1)]),
    ]
    _draw(axes, series, "pretraining epochs", "mIoU (%)", "one configuration")
    assert axes.get_ylim()[0] == 0.0  # a 0.2-point gap is drawn at its true size
    assert [t.get_text() for t in axes.get_xticklabels()] == ["downsizenet", "bilinear"]
    assert "a single configuration" in axes.get_xlabel()
    assert all("1 seed" in t.get_text() for t in axes.texts) and len(axes.texts) == 2
    assert all(len(line.get_xdata()) == 1 for line in axes.get_lines())  # no line through a dot
    assert not axes.containers  # no error bars: there is no interval to draw


def test_several_configurations_are_lines_with_intervals_cut_at_zero() -> None:
    from matplotlib.container import ErrorbarContainer
    from matplotlib.figure import Figure

    from downsizenet_hub.study.plots import _draw

    axes = Figure().subplots()
    series = [
        ("downsizenet", "downsizenet", [2.0, 4.0], [_estimate(0.3, 3, 0.5)] * 2),
        ("bilinear", "bilinear", [2.0, 4.0], [_estimate(0.2, 1)] * 2),
    ]
    _draw(axes, series, "pretraining epochs", "mAP@0.5 (%)", "two configurations")
    assert axes.get_ylim()[0] == 0.0 and axes.get_ylim()[1] >= 0.8
    legend = axes.get_legend()
    assert sorted(t.get_text() for t in legend.get_texts()) == ["bilinear", "downsizenet"]
    bars = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1  # only the 3-seed series has intervals
    low_ends = bars[0].lines[2][0].get_segments()[0][:, 1]
    assert low_ends.min() == pytest.approx(0.0)  # the interval reaching -0.2 is cut at 0


def test_a_panel_with_no_score_yet_keeps_its_limits() -> None:
    from matplotlib.figure import Figure

    from downsizenet_hub.study.chart import from_zero

    axes = Figure().subplots()
    from_zero(axes, [("downsizenet", "downsizenet", [], [])])  # used to fail on max() of nothing
    assert axes.get_ylim() == (0.0, 1.0)


def test_the_cost_figure_has_a_panel_per_task_and_scenes_and_marks_lone_scales() -> None:
    from downsizenet_hub.study.cost_plot import cost_figure

    def line(*points: tuple[float, float, float]) -> list:
        return [(macs * 1e9, _estimate(score, 3), scale, []) for macs, score, scale in points]

    points = {
        "segmentation": {
            ("bilinear", "noisy"): line((0.3, 35.0, 0.3), (0.8, 40.0, 0.5)),
            ("downsizenet-conv1", "noisy"): line((0.31, 35.5, 0.3)),
            ("bilinear", "clean"): line((0.3, 37.0, 0.3), (0.8, 42.0, 0.5)),
        },
        "transfer": {("bilinear", "noisy"): line((2.2, 25.0, 0.3), (6.0, 51.0, 0.5))},
    }
    figure = cost_figure(points)
    shown = [a for a in figure.axes if a.get_visible()]
    assert [a.get_title() for a in shown] == [
        "Segmentation, noisy scenes",  # noisy and clean scenes are not drawn on one panel
        "Segmentation, clean scenes",
        "Detection after frozen transfer",  # one kind of scene: the title needs no name
    ]
    assert len(figure.axes) == 4 and not figure.axes[3].get_visible()  # the spare of 2x2
    noisy = shown[0]
    labels = [t.get_text() for t in noisy.get_legend().get_texts()]
    assert labels == ["bilinear", "downsizenet-conv1 (x0.3 only)"]
    lone = next(c for c in noisy.containers if c.get_label() == labels[1])
    assert lone.lines[0].get_linestyle() == "None" and lone.lines[0].get_marker() != "o"
    assert sorted(t.get_text() for t in noisy.texts) == ["x0.3", "x0.5"]  # scales on the line
    assert noisy.get_ylim()[0] == 0.0


def test_a_cell_status_moves_to_its_own_line_rather_than_break() -> None:
    from downsizenet_hub.study.console import cell_line

    prefix = "[1/4] segmentation  bilinear noisy x0.3, 4 epochs  seed 0"
    status = "[green]done[/] in 5.2 min: mIoU 12.73"
    assert cell_line(prefix, status, 200) == f"{prefix}  {status}"
    assert cell_line(prefix, status, 80) == f"{prefix}\n    {status}"  # 85 visible characters


def test_a_summary_table_too_wide_for_the_terminal_becomes_one_block_per_row() -> None:
    import io

    from rich.console import Console
    from rich.table import Table

    from downsizenet_hub.study.console import print_fitted

    table = Table(title="Transfer (x0.3)", caption="mean ± std [95% CI]")
    columns = ["resizer", "seg mIoU", "bilinear seg mIoU", "det mAP@0.5", "Δ mAP@0.5 vs bilinear"]
    for column in columns:
        table.add_column(column)
    table.add_row("downsizenet", "12.90 (n=1)", "12.73 (n=1)", "14.81 (n=1)", "+0.43 (n=1)")
    narrow = Console(width=40, file=io.StringIO(), record=True)
    print_fitted(narrow, table)
    text = narrow.export_text()
    assert "…" not in text and "Δ mAP@0.5 vs bilinear  +0.43 (n=1)" in text
    wide = Console(width=200, file=io.StringIO(), record=True)
    print_fitted(wide, table)
    assert "┃ resizer" in wide.export_text()  # it fits: the table as it is


def test_head_to_head_pairs_the_learned_resizers_and_wide_intervals_say_what_they_need() -> None:
    from downsizenet_hub.study.aggregate import estimate
    from downsizenet_hub.study.report import (
        head_to_head,
        head_to_head_table,
        seeds_needed,
        width_note,
    )

    config = study_config(
        {"name": "t", "seeds": [0, 1, 2], "experiments": [
            {"kind": "transfer", "title": "T", "pretrain_epochs": [1, 3],
             "baselines": ["area", "talebi"]},
        ]}
    )  # fmt: skip
    plan = plan_study(config)
    values = {
        "segmentation": {
            "bilinear": [10.0, 11.0, 12.0], "downsizenet": [11.0, 11.5, 13.5],
            "talebi": [10.0, 12.0, 12.0],
        },
        "transfer": {
            "bilinear": [1.0, 2.0, 3.0], "area": [2.0, 2.0, 2.0],
            "downsizenet": [3.0, 4.0, 5.0], "talebi": [1.0, 1.0, 2.0],
        },
    }  # fmt: skip
    comparisons = head_to_head(plan, _fabricated(plan, values))
    found = {(c.task, c.first, c.second): c.difference for c in comparisons}
    # The resizer pretrained longest against each other row, in every task both have.
    assert set(found) == {
        ("segmentation", "downsizenet (3 epochs)", "talebi (3 epochs)"),
        ("transfer", "downsizenet (3 epochs)", "talebi (3 epochs)"),
        ("transfer", "downsizenet (3 epochs)", "area"),
        ("transfer", "talebi (3 epochs)", "area"),  # each learned baseline against fixed ones
    }
    assert found[("transfer", "talebi (3 epochs)", "area")].values == (-1, -1, 0)
    assert found[("transfer", "downsizenet (3 epochs)", "talebi (3 epochs)")].values == (2, 3, 3)
    assert found[("transfer", "downsizenet (3 epochs)", "area")].values == (1, 2, 3)
    table = head_to_head_table(comparisons)
    assert "| downsizenet (3 epochs) − talebi (3 epochs) | +2.67 ± 0.58 [+1.23, +4.10] |" in table
    assert "downsizenet (3 epochs) better |" in table
    # std 0.5: t(2) * 0.5 / sqrt(3) = 1.24 > 1, t(3) * 0.5 / 2 = 0.80 <= 1: four seeds.
    spread = estimate([0.5, 1.0, 1.5])
    assert seeds_needed(spread) == 4
    assert "±1.24 wide" in width_note(spread) and "about 4 seeds" in width_note(spread)
    assert width_note(estimate([1.0, 1.1, 1.2])) == ""
    assert seeds_needed(estimate([1.0])) is None


def test_pipeline_cost_is_the_closed_form_count() -> None:
    from downsizenet_hub.study.config import BASELINE
    from downsizenet_hub.study.cost import cell_macs

    plan = plan_study(preset("cpu"))
    cell = {(c.task, c.resizer.label, c.scale): c for c in plan.cells}
    # Bilinear has no multiply-adds of its own; VGG16 to conv4_3 on the 90x90 output: 3x3 convs
    # at 90, 45, 22 and 11 px (floor pooling), (in, out) channels as torchvision's vgg16.
    stages = [
        (90, [(3, 64), (64, 64)]),
        (45, [(64, 128), (128, 128)]),
        (22, [(128, 256), (256, 256), (256, 256)]),
        (11, [(256, 512), (512, 512), (512, 512)]),
    ]
    trunk = sum(side * side * 9 * c_in * c_out for side, convs in stages for c_in, c_out in convs)
    assert cell_macs(cell[("transfer", "bilinear", 0.3)]) == trunk
    assert cell_macs(cell[("transfer", "area", 0.3)]) == trunk
    # DownsizeNet adds at least its full-resolution texture convs (3 -> 16 -> 16 ... at 300x300,
    # all but the last; the last runs at the anchors only), the same in both tasks.
    bilinear, ours = (cell_macs(cell[("segmentation", n, 0.3)]) for n in (BASELINE, "downsizenet"))
    added = ours - bilinear
    assert added >= 300 * 300 * 9 * (3 * 16 + 16 * 16)
    assert cell_macs(cell[("transfer", "downsizenet", 0.3)]) - trunk == added


def test_a_published_study_resizer_records_what_the_study_measured_over_its_seeds() -> None:
    from downsizenet_hub.hub import TrainingRecord
    from downsizenet_hub.study.publishing import study_record

    config = study_config(
        {"name": "t", "seeds": [0, 1, 2], "experiments": [
            {"kind": "transfer", "title": "T", "pretrain_epochs": [3], "baselines": ["area"],
             "publish": "me/x"},
            {"kind": "segmentation", "title": "S", "resizers": ["area"]},
        ]}
    )  # fmt: skip
    plan = plan_study(config)
    values = {
        "segmentation": {"bilinear": [10.0, 11.0, 12.0], "downsizenet": [11.0, 11.5, 13.5],
                         "area": [12.0, 12.0, 12.0]},
        "transfer": {"bilinear": [1.0, 2.0, 3.0], "downsizenet": [1.5, 2.0, 3.5],
                     "area": [2.0, 2.0, 2.0]},
    }  # fmt: skip
    trained = plan.publications[0][0]
    record = TrainingRecord(
        task="segmentation", pipeline="p", dataset="scenes", generated_data=True, epochs=3,
        seed=0, metric="mIoU", score=11.0, command="c", baseline_score=10.0, scale_factor=0.3,
    )  # fmt: skip
    updated = study_record(record, plan, _fabricated(plan, values), trained, "study --preset x")
    assert updated.command == "study --preset x"
    assert (updated.score, updated.baseline_score, updated.n_seeds) == (12.0, 11.0, 3)
    assert updated.score_std == pytest.approx(math.sqrt(1.75)) and updated.seed == 0
    found = {(d.task, d.baseline): d for d in updated.differences}
    assert list(found) == [
        ("segmentation", "bilinear"), ("segmentation", "area"),
        ("detection (frozen transfer)", "bilinear"), ("detection (frozen transfer)", "area"),
    ]  # fmt: skip
    assert found[("segmentation", "bilinear")].difference == pytest.approx(1.0)
    assert found[("segmentation", "area")].difference == pytest.approx(0.0)
    assert found[("detection (frozen transfer)", "area")].difference == pytest.approx(1 / 3)
    assert all(d.n_seeds == 3 and d.ci_low is not None for d in updated.differences)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"pretrain": {"lr": 10**400}}, "pretrain.lr must be in (0, 10], got a number too large"),
        ({"seeds": list(range(1001))}, "seeds lists 1001 seeds; at most 1000"),
        ({"seeds": [2**40]}, "seeds[0] must be an integer from 0 to 4294967295"),
        (
            {"pretrain": {"data": {"image_size": [100000, 100000]}}},
            "pretrain at batch 8 of 100000x100000 images needs about",
        ),
    ],
)
def test_a_study_file_asking_too_much_is_one_line_before_anything_runs(
    changes: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError) as error:
        study_config(_config(**changes))
    assert words in str(error.value) and "\n" not in str(error.value)


def test_a_study_file_that_is_not_utf8_or_not_a_regular_file_is_named(tmp_path: Path) -> None:
    import os

    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(ValueError, match=r"latin.json is not UTF-8 text"):
        load_config(latin)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # would block a plain read forever
    with pytest.raises((ValueError, FileNotFoundError), match=r"fifo\.json"):
        load_config(fifo)


def test_report_only_names_a_cell_json_it_cannot_use(tmp_path: Path) -> None:
    from downsizenet_hub.study.cell_run import RESULT_FILE, cell_folder, unreadable_result

    plan = plan_study(study_config(_config()))
    cell = plan.cells[0]
    path = cell_folder(tmp_path, cell) / RESULT_FILE
    path.parent.mkdir(parents=True)
    assert unreadable_result(tmp_path, cell) is None  # missing: simply not run
    path.write_text('{"format": "downsizenet-study-cell/1", "spec": ')  # truncated
    assert "cell result" in (unreadable_result(tmp_path, cell) or "")
    path.write_text("[]")
    assert "is not a downsizenet-study-cell/1 result" in (unreadable_result(tmp_path, cell) or "")
