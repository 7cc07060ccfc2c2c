"""Workers as jobs of an existing launcher: submitit, the launcher of DETR and DINO.

``study --workers N`` (``launcher="local"``) starts N one-thread workers on this machine with
submitit's local executor; ``--launcher slurm`` submits one Slurm job per unfinished cell with
submitit's Slurm executor (partition, time and GPUs per cell as options). Both run
:func:`worker_job`, which runs :func:`.workers.work`: the claims on the results folder decide who
computes what, so any mix of jobs, and of ``study`` commands started by hand, computes each cell
once. The Slurm path is written against submitit's documented API and tested through its local
executor only; it has not run on a real cluster here.

Signals: submitit's job wrapper makes SIGTERM a no-op (on Slurm it expects USR2 before a
timeout). A worker job restores SIGTERM's default, so that inside a cell the engine's own handler
stops at the next step with a checkpoint (:mod:`downsizenet_hub.engine.stopping`) and outside one
the job ends as a plain process would, within Slurm's KillWait. A job that ends so leaves its
cell unclaimed, to be resumed by the next worker or the next run of the study.

A worker keeps freed memory in its process when the command that started it does
(:func:`downsizenet_hub.allocator.decided`): a ``downsizenet study`` worker runs its cells as fast
as the command itself would (without it, the cpu preset's 2x2 DownsizeNet segmentation cells ran
1.2-1.4x slower under glibc's default malloc; the other cells within a run's spread).

A local worker also watches the ``study`` command that started it (:func:`watch_owner`): if that
command ends without cancelling its workers (killed, or SIGTERM's default), the worker sends
itself SIGTERM, so no worker goes on computing a study nobody waits for.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from downsizenet_hub import allocator
from downsizenet_hub.study.cells import Cell, StudyPlan
from downsizenet_hub.study.workers import CellHooks, finished, work

#: Where submitit keeps its job files (pickles, logs), inside the results folder.
JOBS_DIR = "jobs"
LauncherKind = Literal["local", "slurm"]
LAUNCHERS: tuple[str, ...] = ("local", "slurm")


@dataclass(frozen=True)
class Launch:
    """How a study's workers run.

    ``workers``: one-thread workers on this machine (``local``); for ``slurm`` every unfinished
    cell is a job and ``workers`` caps how many run at once (0: no cap). ``partition``,
    ``time_min`` (per job) and ``gpus_per_cell`` go to Slurm.
    """

    launcher: LauncherKind = "local"
    workers: int = 1
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_cell: int = 0

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(
                f"--launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}."
            )
        if not isinstance(self.workers, int) or not 0 <= self.workers <= 1024:
            raise ValueError(f"--workers must be an integer from 1 to 1024, got {self.workers!r}.")
        if self.launcher == "local" and self.workers < 1:
            raise ValueError("--workers must be at least 1 on this machine.")
        if not 1 <= self.time_min <= 60 * 24 * 365:
            raise ValueError(f"--time-min must be from 1 to 525600 minutes, got {self.time_min}.")
        if not 0 <= self.gpus_per_cell <= 64:
            raise ValueError(f"--gpus-per-cell must be from 0 to 64, got {self.gpus_per_cell}.")

    @property
    def in_process(self) -> bool:
        """One local worker: this process computes the cells itself, as before workers existed."""
        return self.launcher == "local" and self.workers == 1


def worker_job(
    plan: StudyPlan,
    results_dir: Path,
    only: list[str] | None,
    device: str,
    command: str,
    keep_checkpoints: bool,
    poll_s: float = 5.0,
    owner_pid: int | None = None,
    keep_freed_memory: bool = False,
) -> dict[str, Any]:
    """One job: a one-thread worker over ``plan`` (or the cells ``only`` names). Returns what it
    computed, or the cell it failed on and why (a job's failure is reported, not re-raised).
    ``owner_pid``: the local ``study`` command; the worker stops when it is gone.
    ``keep_freed_memory``: the command keeps freed memory (:mod:`downsizenet_hub.allocator`), so
    the worker does too."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if keep_freed_memory:
        allocator.keep_freed_memory()
    torch.set_num_threads(1)
    if owner_pid is not None:
        watch_owner(owner_pid, lambda: os.kill(os.getpid(), signal.SIGTERM))
    failed: dict[str, str] = {}

    def note_failure(cell: Cell, error: BaseException) -> None:
        failed.update(cell=cell.key, error=f"{type(error).__name__}: {error}")

    try:
        report = work(
            plan, results_dir, only=only, device=device, progress=False, command=command,
            keep_checkpoints=keep_checkpoints, hooks=CellHooks(failed=note_failure),
            poll_s=poll_s,
        )  # fmt: skip
    except Exception as error:  # reported to the coordinator in one line
        return {"computed": [], **(failed or {"cell": None, "error": f"{error}"})}
    return {"computed": report.computed}


def submit(
    launch: Launch,
    plan: StudyPlan,
    results_dir: Path,
    *,
    device: str,
    command: str,
    keep_checkpoints: bool,
    poll_s: float = 5.0,
) -> list[Any]:
    """Start the workers (local: at most one per unfinished cell) or submit the cells' jobs
    (slurm); returns submitit jobs, none when every cell is finished."""
    import submitit

    keys = [[cell.key] for cell in plan.cells if finished(results_dir, cell) is None]
    if not keys:
        return []
    keep = allocator.decided() is not None  # the command asked: its workers ask the same
    folder = results_dir / JOBS_DIR / "%j"
    if launch.launcher == "local":
        local = submitit.LocalExecutor(folder=folder)
        local.update_parameters(timeout_min=launch.time_min, gpus_per_node=launch.gpus_per_cell)
        args = (plan, results_dir, None, device, command, keep_checkpoints, poll_s, os.getpid(),
                keep)  # fmt: skip
        with local.batch():
            jobs = [local.submit(worker_job, *args) for _ in range(min(launch.workers, len(keys)))]
        return jobs
    cluster = submitit.AutoExecutor(folder=folder, cluster="slurm")
    cluster.update_parameters(
        timeout_min=launch.time_min, gpus_per_node=launch.gpus_per_cell, cpus_per_task=1,
        slurm_partition=launch.partition, slurm_array_parallelism=launch.workers or 10_000,
        name=f"downsizenet-{plan.config.name}",
    )  # fmt: skip
    n = len(keys)
    return list(
        cluster.map_array(
            worker_job, [plan] * n, [results_dir] * n, keys, [device] * n, [command] * n,
            [keep_checkpoints] * n, [poll_s] * n, [None] * n, [keep] * n,
        )
    )  # fmt: skip


def watch_owner(pid: int, on_gone: Callable[[], None], interval_s: float = 2.0) -> threading.Thread:
    """Call ``on_gone`` once process ``pid`` no longer exists (checked every ``interval_s``, from a
    daemon thread, which it returns)."""

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                on_gone()
                return
            except PermissionError:  # exists, owned by another user
                continue

    thread = threading.Thread(target=watch, name=f"watch-owner-{pid}", daemon=True)
    thread.start()
    return thread


class WorkerFailed(RuntimeError):
    """A worker job failed on a cell (or could not start)."""


def wait(
    jobs: list[Any],
    plan: StudyPlan,
    results_dir: Path,
    on_done: Callable[[Cell], None],
    poll_s: float = 2.0,
) -> list[str]:
    """Wait for ``jobs``, calling ``on_done(cell)`` as each cell of ``plan`` finishes (read
    from disk, whoever computed it); returns the keys the jobs computed. The first failed job
    cancels the others and raises :class:`WorkerFailed` naming the cell and the job's log."""
    seen = {cell.key for cell in plan.cells if finished(results_dir, cell) is not None}
    computed: list[str] = []
    pending = list(jobs)
    while True:
        for cell in plan.cells:
            if cell.key not in seen and finished(results_dir, cell) is not None:
                seen.add(cell.key)
                on_done(cell)
        for job in [j for j in pending if j.done()]:
            pending.remove(job)
            outcome = _outcome(job)
            computed += outcome.get("computed", [])
            if outcome.get("error") is not None:
                for other in pending:
                    other.cancel(check=False)
                where = f" on cell {outcome['cell']}" if outcome.get("cell") else ""
                raise WorkerFailed(
                    f"worker job {job.job_id} failed{where}: {outcome['error']} "
                    f"(log: {job.paths.stderr})"
                )
        if not pending:
            return computed
        time.sleep(poll_s)


def cancel(jobs: list[Any]) -> None:
    for job in jobs:
        if not job.done():
            job.cancel(check=False)


def _outcome(job: Any) -> dict[str, Any]:
    try:
        result = job.result()
    except Exception as error:  # submitit's own failure (killed, not started)
        last = str(error).strip().splitlines()[-1:] or ["no output"]
        return {"computed": [], "cell": None, "error": last[0]}
    return result if isinstance(result, dict) else {"computed": []}
