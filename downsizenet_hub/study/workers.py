"""Computing a study's cells with any number of workers on one results folder.

A worker walks the plan in run order and claims the first cell that is neither finished (a
``cell.json`` of the current numerics version) nor claimed, and whose source (the segmentation
cell a transfer loads) is finished. A claim is the exclusive ``flock`` of the cell's
``claim.lock`` (:class:`~downsizenet_hub.engine.runlock.RunLock`): the operating system drops it
when its process dies, however it dies, so a killed worker's cell is claimed again by the next
worker that comes by and resumes from its last checkpoint. Nothing is decided by a clock: a slow
cell stays claimed, a dead worker's never does. Under the claim the worker looks again (another
worker may have finished the cell in between), computes the cell and writes its result, so
every cell is computed once.

On one machine this rests on ``flock``; on a shared file system (NFS, Lustre, GPFS) it rests on
that file system's locks and their leases, which this package cannot test: check that yours
supports ``flock`` across nodes before pointing workers on several machines at one folder.

A worker that finds only claimed cells, or transfers whose source is still being trained, waits
(``poll_s``) and looks again; it returns when every cell it was asked for is finished.

Under ``torchrun`` the ranks are one worker: they walk the plan together, claim nothing (every
rank trains every cell, DDP inside the engine), and meet at a barrier after each cell.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from downsizenet_hub.atomic import write_atomic
from downsizenet_hub.engine.distributed import barrier, is_distributed, is_main_process
from downsizenet_hub.engine.progress import run_name as engine_run_name
from downsizenet_hub.engine.runlock import RunInUseError, RunLock
from downsizenet_hub.jsonfile import read_json
from downsizenet_hub.study.cell_run import (
    RESIZER_DIR,
    RESULT_FILE,
    RUN_DIR,
    CellResult,
    cell_folder,
    read_result,
    remove_checkpoints,
    run_cell,
    write_result,
)
from downsizenet_hub.study.cells import Cell, StudyPlan
from downsizenet_hub.study.numerics import NUMERICS_VERSION

CLAIM_DIR = "claim"
#: Written when a cell is started: which numerics version its run folder's checkpoints hold.
STARTED_FILE = "started.json"


@dataclass
class CellHooks:
    """What a worker reports as it goes (all optional): a cell found finished, started, done.

    ``baseline_score(cell)`` gives the same-seed bilinear mIoU a learned segmentation cell's
    record carries, when known.
    """

    cached: Callable[[Cell, CellResult], None] = lambda cell, result: None
    started: Callable[[Cell], None] = lambda cell: None
    done: Callable[[Cell, CellResult], None] = lambda cell, result: None
    failed: Callable[[Cell, BaseException], None] = lambda cell, error: None
    baseline_score: Callable[[Cell], float | None] = lambda cell: None
    # How the engine's progress names the cell's run (None: the engine's default).
    run_name: Callable[[Cell], str | None] = lambda cell: None


@dataclass
class WorkerReport:
    """What one worker did: the keys it computed, in order."""

    computed: list[str] = field(default_factory=list)


def finished(results_dir: Path, cell: Cell) -> CellResult | None:
    """The cell's result if it is finished under the current numerics version, else None."""
    result = read_result(results_dir, cell)
    return result if result is not None and result.current else None


def work(
    plan: StudyPlan,
    results_dir: Path,
    *,
    only: Collection[str] | None = None,
    device: str = "auto",
    progress: bool = True,
    command: str = "run_study()",
    keep_checkpoints: bool = False,
    hooks: CellHooks | None = None,
    poll_s: float = 5.0,
) -> WorkerReport:
    """Compute every unfinished cell of ``plan`` (or of ``only``, keys, with the sources they
    load) that no other worker holds; return once all of them are finished.

    A cell of another numerics version is computed again from scratch. An error in a cell is
    raised (after ``hooks.failed``); its claim is released, so another worker may try it.
    """
    hooks = hooks or CellHooks()
    wanted = _wanted(plan, only)
    reported: set[str] = set()
    report = WorkerReport()
    while True:
        waiting = False
        claimed = None
        for cell in wanted:
            if cell.key in reported:  # finished and current stays so: no need to read it again
                continue
            result = finished(results_dir, cell)
            if result is not None:
                reported.add(cell.key)
                hooks.cached(cell, result)
                continue
            source = cell.source
            if (
                source is not None
                and source.key not in reported
                and finished(results_dir, source) is None
            ):
                waiting = True  # its source is being trained by another worker, or failed there
                continue
            claimed = _claim(results_dir, cell)
            if claimed is None:
                waiting = True
                continue
            try:
                if finished(results_dir, cell) is None:  # nobody finished it since we looked
                    _compute(cell, results_dir, device, progress, command, keep_checkpoints, hooks)
                    report.computed.append(cell.key)
                    reported.add(cell.key)
            finally:
                claimed.release()
            break  # from the top: run order (seed-major) is kept
        if claimed is not None:
            continue
        if not waiting:
            return report
        time.sleep(poll_s)


def _wanted(plan: StudyPlan, only: Collection[str] | None) -> list[Cell]:
    """The plan's cells in run order, restricted to ``only`` and the sources those load."""
    if only is None:
        return list(plan.cells)
    keys = set(only)
    for cell in plan.cells:
        if cell.key in keys and cell.source is not None:
            keys.add(cell.source.key)
    return [cell for cell in plan.cells if cell.key in keys]


class _RanksTogether:
    """The claim of a cell under torchrun: none (the ranks are one worker)."""

    def release(self) -> None:
        return None


def _claim(results_dir: Path, cell: Cell) -> RunLock | _RanksTogether | None:
    if is_distributed():
        return _RanksTogether()
    lock = RunLock(cell_folder(results_dir, cell) / CLAIM_DIR)
    try:
        lock.acquire()
    except RunInUseError:
        return None
    return lock


def _compute(
    cell: Cell,
    results_dir: Path,
    device: str,
    progress: bool,
    command: str,
    keep_checkpoints: bool,
    hooks: CellHooks,
) -> None:
    if is_main_process():
        _clear_other_numerics(results_dir, cell)
    barrier()
    hooks.started(cell)
    name = hooks.run_name(cell)
    try:
        with engine_run_name(name) if name is not None else contextlib.nullcontext():
            result = run_cell(
                cell, results_dir, device=device, progress=progress, command=command,
                baseline_score=hooks.baseline_score(cell),
            )  # fmt: skip
    except BaseException as error:
        hooks.failed(cell, error)
        raise
    write_result(results_dir, result)  # rank 0 only
    if not keep_checkpoints:
        remove_checkpoints(results_dir, cell)
    barrier()
    hooks.done(cell, result)


def _clear_other_numerics(results_dir: Path, cell: Cell) -> None:
    """Remove what another numerics version left in the cell's folder (a result, a run to
    resume, a trained resizer), then mark the folder as started under this one."""
    folder = cell_folder(results_dir, cell)
    started = folder / STARTED_FILE
    try:
        data = read_json(started, what="cell start marker")
        version = data.get("numerics") if isinstance(data, dict) else None
    except (OSError, ValueError):
        version = None
    result = read_result(results_dir, cell)
    leftovers = (result is not None and not result.current) or (
        version is not None and version != NUMERICS_VERSION
    )
    if not started.is_file() and result is None and (folder / RUN_DIR).exists():
        leftovers = True  # a run from before start markers existed: of unknown numerics
    if leftovers:
        (folder / RESULT_FILE).unlink(missing_ok=True)
        for sub in (RUN_DIR, RESIZER_DIR):
            shutil.rmtree(folder / sub, ignore_errors=True)
    if version != NUMERICS_VERSION or leftovers:
        text = json.dumps({"numerics": NUMERICS_VERSION}) + "\n"
        write_atomic(started, lambda handle: handle.write(text.encode()))
