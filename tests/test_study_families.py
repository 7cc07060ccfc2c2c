"""Scene families and the transfer to new objects: data, study files, keys, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_study_run import TINY_DATA, tiny

from downsizenet_hub.study import plan_study, preset, run_study, study_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _families(weights: Path | None = None) -> Any:
    experiment = {"kind": "transfer", "scale": 0.5, "pretrain_epochs": [1],
                  "pretrain_data": {"family": "A"}}  # fmt: skip
    return tiny(
        weights,
        seeds=[0],
        experiments=[
            {**experiment, "title": "same", "transfer_data": {"family": "A"}},
            {**experiment, "title": "new", "transfer_data": {"family": "B", "variant": "clean"}},
        ],
    )


def test_a_study_file_gives_the_transfer_its_own_family_and_variant() -> None:
    config = _families()
    again = study_config(json.loads(json.dumps(config.to_dict())))
    assert again == config
    plan = plan_study(config)
    segmentation = [c for c in plan.cells if c.task == "segmentation"]
    assert len(segmentation) == 2  # bilinear and downsizenet, shared by both experiments
    assert all(c.data.family == "A" and "-famA-" in c.key for c in segmentation)
    # The experiments' data are the study's with the family (and variant) changed.
    assert all(c.data.train_images == TINY_DATA["train_images"] for c in segmentation)
    transfers = {(c.resizer.label, c.data.family, c.variant) for c in plan.cells if c.source}
    assert transfers == {("downsizenet", "A", "noisy"), ("downsizenet", "B", "clean")}
    assert all(c.data.variant is None for c in plan.cells)  # the variant lives in the cell
    assert "noisy family B" not in " ".join(c.describe() for c in plan.cells)
    assert any("clean family B" in c.describe() for c in plan.cells)


def test_presets_keep_their_keys_and_the_plateau_preset_plans() -> None:
    cpu = plan_study(preset("cpu"))
    assert all("-fam" not in c.key for c in cpu.cells)
    plateau = plan_study(preset("plateau"))
    assert len(plateau.cells) == 54
    families = {(c.task, c.data.family) for c in plateau.cells}
    assert families == {("segmentation", "A"), ("transfer", "A"), ("transfer", "B")}


@pytest.mark.slow
def test_the_report_compares_the_same_and_the_new_objects(
    tmp_path: Path, vgg_weights: Path
) -> None:
    run = run_study(_families(vgg_weights), tmp_path, progress=False)
    assert run.totals.finished == len(run.plan.cells) == 6
    report = (tmp_path / "results.md").read_text()
    assert "## Same objects, new objects" in report
    assert "family A, noisy (the pretraining's objects)" in report
    assert "family B, clean (new objects)" in report
    assert (tmp_path / "difference_from_bilinear.png").is_file()
    assert "difference_from_bilinear.png" in report


def _scores(plan: Any, by_family: dict[str, float]) -> dict[str, Any]:
    """Every cell of ``plan`` finished: segmentation 10 (bilinear) or 12; a transfer scores
    ``by_family[its family]`` plus the seed, plus 1 on A and 3 on B when a learned resizer made
    it."""
    from downsizenet_hub.study import CellResult

    results = {}
    for cell in plan.cells:
        if cell.task == "segmentation":
            metrics = {"miou": 10.0 if cell.resizer.label == "bilinear" else 12.0}
        else:
            bonus = {"A": 1.0, "B": 3.0}[cell.data.family] if cell.source is not None else 0.0
            metrics = {"map_50": by_family[cell.data.family] + bonus + cell.seed}
        results[cell.key] = CellResult(
            key=cell.key, task=cell.task, resizer=cell.resizer.label, variant=cell.variant,
            scale=cell.scale, epochs=cell.epochs, seed=cell.seed, metrics=metrics,
            wall_time_s=1.0, images_per_s=1.0, spec=cell.spec(),
        )  # fmt: skip
    return results


def test_a_card_and_the_findings_name_the_family_each_transfer_detects_on() -> None:
    from downsizenet_hub.hub import TrainingRecord
    from downsizenet_hub.study.differences import transfer_targets_table
    from downsizenet_hub.study.findings import findings
    from downsizenet_hub.study.publishing import study_record
    from downsizenet_hub.study.summaries import summarise

    experiment = {"kind": "transfer", "scale": 0.5, "pretrain_epochs": [1],
                  "pretrain_data": {"family": "A"}}  # fmt: skip
    config = tiny(
        None,
        seeds=[0, 1],
        experiments=[
            {**experiment, "title": "same", "transfer_data": {"family": "A"}, "publish": "me/x"},
            {**experiment, "title": "new", "transfer_data": {"family": "B"}},
        ],
    )
    plan = plan_study(config)
    results = _scores(plan, {"A": 20.0, "B": 40.0})
    trained = plan.publications[0][0]
    record = TrainingRecord(
        task="segmentation", pipeline="p", dataset="scenes", generated_data=True, epochs=1,
        seed=0, metric="mIoU", score=12.0, command="c", data_variant="noisy", scale_factor=0.5,
    )  # fmt: skip
    updated = study_record(record, plan, results, trained, "study")
    # One line per task and family: a transfer is compared with bilinear on its own scenes.
    found = {(d.task, d.baseline): d.difference for d in updated.differences}
    assert found == {
        ("segmentation", "bilinear"): 2.0,
        ("detection on family A (frozen transfer)", "bilinear"): 1.0,
        ("detection on family B (new objects; frozen transfer)", "bilinear"): 3.0,
    }
    assert updated.data_variant is not None
    assert updated.data_variant.startswith("noisy, family A: t-shirt/top, pullover")
    # The findings: each comparison once (the pretraining is shared), each transfer's family named.
    sentences = findings(summarise(plan, results))
    assert sum("segmentation mIoU" in s for s in sentences) == 1
    transfers = [s for s in sentences if "downsizenet vs bilinear, transfer" in s]
    assert len(transfers) == 2
    assert any("(noisy family A, x0.5" in s for s in transfers)
    assert any("(noisy family B, x0.5" in s for s in transfers)
    # Side by side, with how the advantage changes on the new objects, paired by seed.
    table = transfer_targets_table(summarise(plan, results))
    heading = "| family A, noisy (the pretraining's objects) | family B, noisy (new objects) |"
    assert heading in table
    assert "| new − same objects |" in table
    line = next(x for x in table.splitlines() if x.startswith("| downsizenet"))
    assert line.endswith("| +1.00 ± 0.00 [+1.00, +1.00] | +3.00 ± 0.00 [+3.00, +3.00] "
                         "| +2.00 ± 0.00 [+2.00, +2.00] |")  # fmt: skip


def test_a_published_talebi_card_gets_its_output_statistics_from_the_validation_scenes(
    tmp_path: Path,
) -> None:
    from downsizenet_hub import hub
    from downsizenet_hub.hub import TrainingRecord
    from downsizenet_hub.registry import create_resizer
    from downsizenet_hub.study.publishing import measured_outputs

    experiment = {"kind": "transfer", "title": "T", "scale": 0.5, "pretrain_epochs": [1],
                  "baselines": ["talebi"], "pretrain_data": {"family": "A"}}  # fmt: skip
    plan = plan_study(tiny(None, seeds=[0], experiments=[experiment]))
    cell = next(c for c in plan.cells if c.task == "segmentation" and c.resizer.label == "talebi")
    record = TrainingRecord(
        task="segmentation", pipeline="p", dataset="scenes", generated_data=True, epochs=1,
        seed=0, metric="mIoU", score=1.0, command="c", scale_factor=0.5,
    )  # fmt: skip
    talebi = create_resizer("talebi")
    hub.save_pretrained(talebi, tmp_path / "talebi", record=record)
    outputs = measured_outputs(cell, tmp_path / "talebi")
    assert outputs is not None
    assert outputs.images == TINY_DATA["val_images"] and outputs.start == "bilinear"
    # An untrained talebi is bilinear plus a zero-initialised residual: still an image.
    assert outputs.moved_from_start < 1e-6 and 0.0 <= outputs.min <= outputs.max <= 1.0
    # A DownsizeNet's output is an image by construction: nothing to measure.
    downsizenet = next(c for c in plan.cells if c.resizer.label == "downsizenet")
    hub.save_pretrained(create_resizer("downsizenet"), tmp_path / "dn", record=record)
    assert measured_outputs(downsizenet, tmp_path / "dn") is None
