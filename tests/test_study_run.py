"""The study end to end on tiny settings: cells, caching, resume after a kill, reports, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet, hub
from downsizenet_hub.cli import app
from downsizenet_hub.engine import fit as REAL_FIT
from downsizenet_hub.experiments import common
from downsizenet_hub.study import StudyConfig, run_study, study_config
from downsizenet_hub.study.cell_run import RESULT_FILE, cell_folder
from downsizenet_hub.study.numerics import NUMERICS_VERSION
from downsizenet_hub.study.publishing import publish_study_resizer

TINY_DATA = {"train_images": 8, "val_images": 4, "image_size": [64, 64]}
# The detection heads cost the same per image at any size: fewer images for the transfers.
TINY_DETECTION = {"train_images": 4, "val_images": 2, "image_size": [64, 64]}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(weights: Path | None = None, **changes: Any) -> StudyConfig:
    data: dict[str, Any] = {
        "name": "tiny",
        "seeds": [0, 1],
        "variants": ["noisy"],
        "grid_images": 1,
        "pretrain": {"epochs": 1, "batch_size": 4, "width": 8, "data": TINY_DATA},
        "transfer": {
            "epochs": 1, "batch_size": 2, "data": TINY_DETECTION,
            "backbone_weights": str(weights) if weights else "auto",
        },
        "experiments": [
            {"kind": "transfer", "title": "T", "scale": 0.5, "pretrain_epochs": [1],
             "publish": "tests/study"},
            {"kind": "segmentation", "title": "S", "scales": [0.5], "resizers": ["area"]},
        ],
    }  # fmt: skip
    data.update(changes)
    return study_config(data)


class FitSpy:
    """Wraps the engine's fit as pretrain/transfer call it: records calls, can kill a run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kill_after_epoch: int | None = None):
        self.calls: list[dict[str, Any]] = []
        self.kill_after_epoch = kill_after_epoch
        real = REAL_FIT  # not common.fit: that may be another spy already

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append({"run_dir": Path(args[4]), "resume": kwargs["resume"]})
            if self.kill_after_epoch is not None:
                limit = self.kill_after_epoch

                def kill(record: Any) -> None:
                    if record.epoch >= limit:
                        raise RuntimeError("killed")

                kwargs["on_epoch_end"] = kill
            result = real(*args, **kwargs)
            self.calls[-1]["resumed_from_epoch"] = result.resumed_from_epoch
            return result

        monkeypatch.setattr(common, "fit", spy)


def test_study_runs_every_cell_reports_publishes_and_then_reuses_everything(
    tmp_path: Path, vgg_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny(vgg_weights, seeds=[0])
    spy = FitSpy(monkeypatch)
    run = run_study(config, tmp_path / "r", progress=False)
    # Bilinear, downsizenet and area segmentation; downsizenet and bilinear transfers.
    assert len(run.plan.cells) == 5 and run.totals.computed == 5 and len(spy.calls) == 5
    for cell in run.plan.cells:
        saved = json.loads((cell_folder(tmp_path / "r", cell) / RESULT_FILE).read_text())
        assert saved["spec"] == cell.spec() and saved["metrics"]
        assert not list(cell_folder(tmp_path / "r", cell).glob("run/*/checkpoint.pt"))
    transfers = [run.results[c.key] for c in run.plan.cells if c.task == "transfer"]
    assert all(r.extra["frozen_unchanged"] is True for r in transfers)
    for name in ("results.json", "results.md", "score_vs_epochs.png", "resizers_val0.png"):
        assert (tmp_path / "r" / name).is_file(), name
    assert not (tmp_path / "r" / "score_vs_scale.png").exists()  # one scale only: no such plot
    report = (tmp_path / "r" / "results.md").read_text()
    for section in ("## Cost", "## How far the learned resizers moved"):
        assert section in report, section
    assert "| downsizenet | noisy | x0.5 | 1 epoch | " in report  # its movement, one seed
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    assert document["totals"]["finished"] == 5 and document["published"] == ["tests/study"]
    transfer_row = document["rows"][0]
    assert transfer_row["resizer"] == "downsizenet" and transfer_row["pretrain_epochs"] == 1
    ours = [r.metrics["map_50"] for r in transfers if r.resizer == "downsizenet"]
    assert transfer_row["scores"]["transfer"]["map_50"]["values"] == ours
    published, record = hub.load("tests/study")
    exported = cell_folder(tmp_path / "r", run.plan.publications[0][0]) / "resizer"
    assert record is not None and record.seed == 0 and record.command == "run_study()"
    # Published after every cell ran: the record carries what the study measured (one seed here).
    assert [(d.task, d.baseline, d.n_seeds) for d in record.differences] == [
        ("segmentation", "bilinear", 1), ("segmentation", "area", 1),
        ("detection (frozen transfer)", "bilinear", 1),
    ]  # fmt: skip
    miou = {c.resizer.label: run.results[c.key].metrics["miou"]
            for c in run.plan.cells if c.task == "segmentation"}  # fmt: skip
    assert record.differences[1].difference == pytest.approx(miou["downsizenet"] - miou["area"])
    torch.testing.assert_close(
        published.state_dict(), DownsizeNet.from_pretrained(exported).state_dict()
    )
    # Second run: nothing trains, nothing in the cell folders changes, the same numbers.
    files = [p for p in (tmp_path / "r" / "cells").rglob("*") if p.is_file()]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = run_study(config, tmp_path / "r", progress=False)
    assert len(spy.calls) == 5 and again.totals.computed == 0
    assert all(r.cached for r in again.results.values())
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert {k: r.metrics for k, r in again.results.items()} == {
        k: r.metrics for k, r in run.results.items()
    }


def test_a_killed_cell_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny(
        seeds=[0],
        pretrain={"epochs": 2, "batch_size": 4, "width": 8, "data": TINY_DATA},
        experiments=[{"kind": "segmentation", "title": "S", "scales": [0.5],
                      "resizers": ["downsizenet-conv1"]}],
    )  # fmt: skip
    killer = FitSpy(monkeypatch, kill_after_epoch=1)
    with pytest.raises(RuntimeError, match="killed"):
        run_study(config, tmp_path / "r", progress=False)
    first = cell_folder(tmp_path / "r", run_study_plan_cell(config, 0))
    assert not (first / RESULT_FILE).exists()
    assert (first / "run" / "bilinear" / "checkpoint.pt").is_file()
    resumer = FitSpy(monkeypatch)
    resumed = run_study(config, tmp_path / "r", progress=False)
    assert [c["resume"] for c in resumer.calls] == [True, False]
    assert resumer.calls[0]["resumed_from_epoch"] == 1
    assert len(killer.calls) == 1
    clean = run_study(config, tmp_path / "clean", progress=False)
    assert {k: r.metrics for k, r in resumed.results.items()} == {
        k: r.metrics for k, r in clean.results.items()
    }


def run_study_plan_cell(config: StudyConfig, index: int) -> Any:
    from downsizenet_hub.study import plan_study

    return plan_study(config).cells[index]


def test_report_only_trains_nothing_and_reports_missing_cells(tmp_path: Path) -> None:
    config = tiny(experiments=[{"kind": "segmentation", "title": "S", "resizers": ["area"]}])
    run = run_study(config, tmp_path / "r", progress=False, report_only=True)
    assert run.totals.finished == 0 and run.totals.computed == 0
    text = (tmp_path / "r" / "results.md").read_text()
    assert "0 of 4 finished" in text and "no paired result yet" in text
    assert not (tmp_path / "r" / "cells").exists()


def test_publishing_never_replaces_a_resizer_the_study_did_not_make(tmp_path: Path) -> None:
    record = hub.TrainingRecord(
        task="segmentation", pipeline="p", dataset="scenes", generated_data=True, epochs=1,
        seed=0, metric="mIoU", score=1.0, command="downsizenet quickstart", scale_factor=0.3,
    )  # fmt: skip
    folder = hub.save_pretrained(DownsizeNet(), tmp_path / "ours", record=record)
    assert publish_study_resizer(folder, "tests/q", "downsizenet quickstart") is True
    assert publish_study_resizer(folder, "tests/q", "downsizenet quickstart") is False
    hub.publish(DownsizeNet(conv_layers=1), "tests/other")
    with pytest.raises(FileExistsError, match="downsizenet hub remove tests/other"):
        publish_study_resizer(folder, "tests/other", "downsizenet quickstart")
    assert DownsizeNet.from_pretrained("tests/other").config.conv_layers == 1


# -- the commands -------------------------------------------------------------------------------


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_dry_run_lists_cells_and_writes_nothing(tmp_path: Path) -> None:
    result = _invoke("study", "--preset", "cpu", "--dry-run", "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "Study cpu" in result.output and "to run" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "exactly one of --preset"),
        (["--preset", "cpu", "--config", "x.json"], "exactly one of --preset"),
        (["--preset", "fast"], "unknown preset 'fast'"),
        (["--config", "missing.json"], "missing.json does not exist"),
        (["--preset", "cpu", "--dry-run", "--report-only"], "not both"),
    ],
)
def test_bad_study_options_are_one_line(args: list[str], words: str) -> None:
    result = _invoke("study", *args)
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output


def test_study_command_runs_a_config_file(tmp_path: Path) -> None:
    config = tiny(
        seeds=[0], experiments=[{"kind": "segmentation", "title": "S", "resizers": ["area"]}]
    )
    path = tmp_path / "study.json"
    path.write_text(json.dumps(config.to_dict()))
    out = tmp_path / "r"
    args = ["study", "--config", str(path), "--results-dir", str(out), "--no-progress"]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "[2/2]" in result.output and "report:" in result.output
    assert (out / "results.md").is_file() and (out / ".gitignore").is_file()
    assert f"downsizenet study --config {path}" in (out / "results.md").read_text()
    again = _invoke(*args)
    assert again.output.count("cached") == 2 and "numerics version" not in again.output
    # A result computed under another numerics version is named in a report, never reused.
    saved = next(out.glob("cells/*/cell.json"))
    version = NUMERICS_VERSION
    saved.write_text(saved.read_text().replace(f'"numerics": {version}', '"numerics": 0'))
    flagged = _invoke(*args, "--report-only")
    assert flagged.output.count("cached, numerics version 0") == 1, flagged.output
    report = (out / "results.md").read_text()
    assert f"finished cells by version: v0: 1, v{version}: 1" in report
    assert "**1 of the 2 finished cells were computed under another numerics version**" in report
    recomputed = _invoke(*args)
    assert recomputed.output.count("cached") == 1 and recomputed.output.count("done in") == 1
    assert f'"numerics": {version}' in saved.read_text()
    assert f"finished cells by version: v{version}: 2." in (out / "results.md").read_text()


def test_quickstart_help_names_what_it_does() -> None:
    result = _invoke("quickstart", "--help")
    assert result.exit_code == 0
    assert "quickstart/downsizenet-x0.3" in result.output


@pytest.mark.slow
def test_study_under_torchrun_two_gloo_processes_reports_once(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    config = tiny(
        seeds=[0],
        pretrain={"epochs": 1, "batch_size": 2, "width": 8, "data": TINY_DATA},
        experiments=[{"kind": "segmentation", "title": "S", "resizers": ["downsizenet"]}],
    )
    path = tmp_path / "study.json"
    path.write_text(json.dumps(config.to_dict()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "downsizenet_hub",
        "study", "--config", str(path), "--results-dir", str(tmp_path / "r"), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for expected in ("done", "cached"):  # the second run reuses both cells on both ranks
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("Study tiny") == 1 and done.stdout.count(expected) == 2
    for metrics in (tmp_path / "r" / "cells").glob("*/run/*/metrics.json"):
        assert json.loads(metrics.read_text())["world_size"] == 2
    assert (tmp_path / "r" / "results.md").is_file()
