"""Many workers on one results folder: claims, killed workers, submitit's executors, the report.

Also the key rule that lets a study grow: a setting added later, at its default, leaves every
existing cell's key as it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_allocator import GLIBC
from test_study_run import TINY_DATA, FitSpy, tiny

from downsizenet_hub import allocator
from downsizenet_hub.engine.runlock import RunLock
from downsizenet_hub.study import Launch, plan_study, run_study
from downsizenet_hub.study.cell_run import RESULT_FILE, cell_folder
from downsizenet_hub.study.cells import KEYED_WHEN_SET, Cell
from downsizenet_hub.study.config import DataSettings
from downsizenet_hub.study.console import plan_table
from downsizenet_hub.study.launch import JOBS_DIR, submit, wait, watch_owner
from downsizenet_hub.study.timing import estimate_seconds, run_seconds
from downsizenet_hub.study.workers import CLAIM_DIR, CellHooks, finished, work

pytestmark = pytest.mark.usefixtures("one_thread")


def segmentation_only(seeds: list[int], epochs: int = 1) -> Any:
    return tiny(
        seeds=seeds,
        pretrain={"epochs": epochs, "batch_size": 4, "width": 8, "data": TINY_DATA},
        experiments=[{"kind": "segmentation", "title": "S", "scales": [0.5],
                      "resizers": ["area"]}],
    )  # fmt: skip


def test_a_setting_added_later_at_its_default_keeps_every_key() -> None:
    @dataclasses.dataclass(frozen=True)
    class GrownData(DataSettings):
        lighting: str = dataclasses.field(default="day", metadata=KEYED_WHEN_SET)

    cell = plan_study(segmentation_only([0])).cells[0]
    grown = dataclasses.replace(cell, data=GrownData(**dataclasses.asdict(cell.data)))
    assert grown.key == cell.key and grown.spec() == cell.spec()
    night = GrownData(**dataclasses.asdict(cell.data), lighting="night")
    other = dataclasses.replace(cell, data=night)
    assert other.key != cell.key and other.spec()["data"]["lighting"] == "night"


def test_a_worker_skips_a_claimed_cell_and_computes_it_once_the_claim_is_gone(
    tmp_path: Path,
) -> None:
    plan = plan_study(segmentation_only([0, 1]))
    first, *others = plan.cells
    held = RunLock(cell_folder(tmp_path, first) / CLAIM_DIR)
    held.acquire()  # another worker's claim (flock: another open file, so it conflicts)
    order: list[str] = []

    def done(cell: Cell, _: object) -> None:
        order.append(cell.key)
        if len(order) == len(others):
            held.release()  # that worker died: its claim is gone with it

    report = work(plan, tmp_path, progress=False, hooks=CellHooks(done=done), poll_s=0.01)
    assert order == [c.key for c in others] + [first.key] == report.computed
    assert all(finished(tmp_path, cell) is not None for cell in plan.cells)
    assert work(plan, tmp_path, progress=False).computed == []  # all finished: nothing to do


_KILLED_WORKER = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from downsizenet_hub.engine import fit as real_fit
from downsizenet_hub.experiments import common
from downsizenet_hub.study import study_config, plan_study
from downsizenet_hub.study.workers import work

def dying_fit(*args, **kwargs):
    def die(record):
        if record.epoch >= 1:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no handler: a worker lost
    kwargs["on_epoch_end"] = die
    return real_fit(*args, **kwargs)

common.fit = dying_fit
plan = plan_study(study_config(__import__("json").loads(sys.argv[1])))
work(plan, Path(sys.argv[2]), progress=False)
"""


def test_a_killed_worker_leaves_its_cell_to_the_next_which_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = segmentation_only([0], epochs=2)
    plan = plan_study(config)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WORKER, json.dumps(config.to_dict()), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = plan.cells[0]
    assert finished(tmp_path, first) is None
    assert list(cell_folder(tmp_path, first).glob("run/*/checkpoint.pt"))  # epoch 1 was saved
    spy = FitSpy(monkeypatch)
    report = work(plan, tmp_path, progress=False, poll_s=0.01)  # the dead worker's claim is free
    assert report.computed == [c.key for c in plan.cells]
    assert spy.calls[0]["resume"] and spy.calls[0]["resumed_from_epoch"] == 1


@pytest.mark.slow
def test_two_local_workers_finish_a_study_computing_every_cell_exactly_once(
    tmp_path: Path, vgg_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the `downsizenet` command, which keeps freed memory: its workers must too. (Only the
    # record is set here; the workers call mallopt in their own processes.)
    monkeypatch.setattr(allocator, "_decided", "kept")
    monkeypatch.delenv(allocator.ENV_VAR, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    config = tiny(vgg_weights, seeds=[0])  # transfers wait for the cells they load
    run = run_study(config, tmp_path / "r", progress=False, launch=Launch(workers=2))
    keys = [cell.key for cell in run.plan.cells]
    assert run.totals.computed == len(keys) == run.totals.finished == 5
    expected = "kept" if GLIBC else "unsupported"
    for cell in run.plan.cells:
        saved = json.loads((cell_folder(tmp_path / "r", cell) / RESULT_FILE).read_text())
        assert saved["provenance"]["threads"] == 1  # one-thread workers
        assert saved["provenance"]["allocator"] == expected
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    assert document["totals"]["finished"] == 5 and document["published"] == ["tests/study"]
    # A second run finds everything finished and starts no worker.
    jobs = sorted((tmp_path / "r" / JOBS_DIR).iterdir())
    again = run_study(config, tmp_path / "r", progress=False, launch=Launch(workers=2))
    assert again.totals.computed == 0
    assert sorted((tmp_path / "r" / JOBS_DIR).iterdir()) == jobs


class _SlurmThroughLocal:
    """submitit.AutoExecutor(cluster="slurm") as the study calls it, run by the local executor:
    the Slurm parameters are recorded, the jobs run here."""

    made: ClassVar[list[_SlurmThroughLocal]] = []

    def __init__(self, folder: Path, cluster: str) -> None:
        import submitit

        assert cluster == "slurm"
        self.local = submitit.LocalExecutor(folder=folder)
        self.parameters: dict[str, Any] = {}
        _SlurmThroughLocal.made.append(self)

    def update_parameters(self, **parameters: Any) -> None:
        self.parameters.update(parameters)
        self.local.update_parameters(timeout_min=parameters["timeout_min"])

    def map_array(self, function: Any, *arguments: Any) -> list[Any]:
        return self.local.map_array(function, *arguments)


@pytest.mark.slow
def test_the_slurm_launcher_submits_a_job_per_unfinished_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import submitit

    monkeypatch.setattr(submitit, "AutoExecutor", _SlurmThroughLocal)
    plan = plan_study(segmentation_only([0, 1]))
    work(plan, tmp_path, only=[plan.cells[0].key], progress=False)  # one finished already
    launch = Launch(launcher="slurm", workers=2, partition="gpu", time_min=30, gpus_per_cell=1)
    jobs = submit(launch, plan, tmp_path, device="cpu", command="test", keep_checkpoints=False,
                  poll_s=0.05)  # fmt: skip
    parameters = _SlurmThroughLocal.made[-1].parameters
    assert parameters["slurm_partition"] == "gpu" and parameters["gpus_per_node"] == 1
    assert parameters["slurm_array_parallelism"] == 2 and parameters["timeout_min"] == 30
    assert len(jobs) == len(plan.cells) - 1
    computed = wait(jobs, plan, tmp_path, on_done=lambda cell: None, poll_s=0.05)
    assert sorted(computed) == sorted(c.key for c in plan.cells[1:])


def test_a_partial_report_never_replaces_a_complete_one(tmp_path: Path) -> None:
    config = segmentation_only([0])
    run_study(config, tmp_path, progress=False)
    complete = (tmp_path / "results.md").read_text()
    grown = segmentation_only([0, 1])  # a seed more: its cells are not run yet
    partial = run_study(grown, tmp_path, progress=False, report_only=True)
    assert partial.totals.finished < partial.totals.cells and not partial.files
    assert (tmp_path / "results.md").read_text() == complete


def test_dry_run_time_accounts_for_workers_and_the_longest_chain(tmp_path: Path) -> None:
    plan = plan_study(tiny(seeds=[0, 1, 2]))
    one = run_seconds(plan.cells, 1)
    two = run_seconds(plan.cells, 2, cores=2)
    eight = run_seconds(plan.cells, 8, cores=16)
    assert one is not None and two is not None and eight is not None
    assert two == pytest.approx(one)  # the rates were measured using both cores already
    chains = [
        (estimate_seconds(c) or 0) + (estimate_seconds(c.source) or 0)
        for c in plan.cells
        if c.source is not None
    ]
    assert eight == pytest.approx(max(one / 4, max(chains)))
    caption = str(plan_table(plan, tmp_path, workers=2).caption)
    assert "with 2 one-thread workers" in caption


def test_worker_options_are_checked_where_they_enter() -> None:
    for bad, words in [
        ({"workers": 0}, "--workers must be at least 1"),
        ({"launcher": "pbs"}, "--launcher must be one of local, slurm"),
        ({"time_min": 0}, "--time-min"),
    ]:
        with pytest.raises(ValueError, match=words):
            Launch(**bad)


def test_study_help_names_the_worker_options() -> None:
    from typer.testing import CliRunner

    from downsizenet_hub.cli import app

    result = CliRunner().invoke(app, ["study", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    for option in ("--workers", "--launcher", "--partition", "--time-min", "--gpus-per-cell"):
        assert option in result.output


def test_a_local_worker_stops_when_the_study_command_that_started_it_is_gone() -> None:
    import threading

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = threading.Event()
    try:
        watch_owner(owner.pid, gone.set, interval_s=0.05)
        assert not gone.wait(0.5)  # alive: nothing happens
    finally:
        owner.kill()
        owner.wait()  # reaped, as init reaps a killed study command
    assert gone.wait(10)
