"""Run a study: every cell in order, each in its own folder, finished cells never recomputed.

Layout of ``results_dir``::

    results.json  results.md  score_vs_*.png  resizers_val*.png     the report (rank 0)
    cells/<key>/cell.json                                         one finished run (small)
    cells/<key>/resizer/                                          a trained DownsizeNet
    cells/<key>/run/                                              the engine's files (git-ignored)

A cell whose ``cell.json`` exists (and matches its spec) is read back, not trained; any other
cell is trained, resuming its run from a checkpoint left by a killed attempt. Under ``torchrun``
every rank trains every cell together (DDP inside the engine); only rank 0 writes results,
publishes and reports, and the ranks meet at a barrier after each cell.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from downsizenet_hub.backbones.sources import resolve_vgg16_weights
from downsizenet_hub.engine import init_from_env, is_main_process
from downsizenet_hub.engine.distributed import barrier, is_distributed
from downsizenet_hub.study.cells import Cell, StudyPlan, plan_study
from downsizenet_hub.study.config import BASELINE, StudyConfig
from downsizenet_hub.study.console import (
    ProgressLines,
    print_fitted,
    run_name,
    study_console,
    workers_text,
)
from downsizenet_hub.study.launch import JOBS_DIR, Launch, cancel, submit, wait
from downsizenet_hub.study.publishing import segmentation_scores
from downsizenet_hub.study.report import StudyTotals, rich_tables, summarise
from downsizenet_hub.study.report_files import (
    GITIGNORE,
    StudyRun,
    complete_report_exists,
    finished_results,
    publish_finished,
    write_gitignore,
    write_report,
)
from downsizenet_hub.study.timing import format_duration
from downsizenet_hub.study.workers import CellHooks, work

__all__ = ["GITIGNORE", "StudyRun", "resolved_plan", "run_study"]


def resolved_plan(config: StudyConfig, *, strict: bool = True) -> StudyPlan:
    """The study's plan with ``backbone_weights="auto"`` resolved to the source found here.

    With ``strict``, missing VGG16 weights fail now (FileNotFoundError) rather than after the
    segmentation cells; without, "auto" stays as it is (for listing a plan).
    """
    weights = config.transfer.backbone_weights
    plan = plan_study(config)
    if not plan.cell_count("transfer"):
        return plan
    try:
        source, _ = resolve_vgg16_weights(weights)
    except FileNotFoundError:
        if strict:
            raise
        return plan
    return plan_study(config, backbone_weights=source.name)


def run_study(
    config: StudyConfig,
    results_dir: Path,
    *,
    command: str = "run_study()",
    device: str = "auto",
    progress: bool = True,
    keep_checkpoints: bool = False,
    report_only: bool = False,
    launch: Launch | None = None,
    console: Console | None = None,
) -> StudyRun:
    """Run (or, with ``report_only``, only report) the study into ``results_dir``.

    Args:
        command: the command line that reproduces the study; recorded in the report and in the
            trained resizers, and what decides whether a published name may be replaced.
        device: the engine's device ("auto", "cpu", "cuda", "cuda:1"); not part of cell keys.
        progress: the engine's progress bars / epoch lines (on stderr; one worker only).
        keep_checkpoints: keep each finished cell's checkpoints (about 16 MB per segmentation
            cell, 9 MB per transfer cell).
        report_only: run nothing; summarise the cells that have finished.
        launch: the workers (:class:`.launch.Launch`); default one, in this process. Other
            ``study`` commands on the same folder share the cells (each computed once).

    The report is written once every cell is finished; a run that stops early (or
    ``report_only`` on an unfinished study) writes a partial one unless a complete report is
    already there.
    """
    started = time.perf_counter()
    init_from_env()  # under torchrun: join now, so that only rank 0 prints from the start
    launch = launch or Launch()
    if not launch.in_process and is_distributed():
        raise ValueError("under torchrun the ranks are one worker: leave --workers at 1.")
    console = console or study_console()
    say: Callable[..., None] = console.print if is_main_process() else _silent
    plan = resolved_plan(config, strict=not report_only)
    results_dir = Path(results_dir)
    _start(plan, results_dir, launch, say)
    lines = ProgressLines(plan, results_dir, say, console.width)
    computed: list[str] = []
    if report_only:
        lines.report_all()
    else:
        computed = _compute(plan, results_dir, launch, lines, say, command=command,
                            device=device, progress=progress,
                            keep_checkpoints=keep_checkpoints)  # fmt: skip
    run = _gather(plan, results_dir, computed, command, say, report_only=report_only)
    if is_main_process():
        _report(run, command, console, say, started)
    barrier()
    return run


def _start(plan: StudyPlan, results_dir: Path, launch: Launch, say: Callable[..., None]) -> None:
    """Make the results folder (rank 0) and say what the study will do."""
    if is_main_process():
        results_dir.mkdir(parents=True, exist_ok=True)
        write_gitignore(results_dir)
    workers = "" if launch.in_process else f", {workers_text(launch)}"
    say(
        f"[bold]Study {plan.config.name}[/]: {len(plan.cells)} cells "
        f"({plan.cell_count('segmentation')} segmentation, {plan.cell_count('transfer')} "
        f"transfer), seeds {', '.join(map(str, plan.config.seeds))}{workers} -> {results_dir}"
    )


def _gather(
    plan: StudyPlan,
    results_dir: Path,
    computed: list[str],
    command: str,
    say: Callable[..., None],
    *,
    report_only: bool,
) -> StudyRun:
    """Every finished cell read back, the finished resizers published (unless
    ``report_only``), and the rows summarised."""
    results = finished_results(plan, results_dir)
    published = (
        [name for cell, name in plan.publications if cell.key in results]  # as it ran
        if report_only
        else publish_finished(plan, results_dir, results, command, say)
    )
    totals = StudyTotals(
        cells=len(plan.cells),
        finished=len(results),
        computed=len(computed),
        by_numerics=dict(Counter(r.numerics for r in results.values())),
        cell_seconds=sum(r.wall_time_s for r in results.values()),
        wall_time_s=0.0,
        published=published,
    )
    return StudyRun(plan, results, summarise(plan, results), results_dir, totals)


def _report(
    run: StudyRun, command: str, console: Console, say: Callable[..., None], started: float
) -> None:
    """Print the tables and write the report (rank 0): a complete report is never replaced by
    a partial one."""
    totals, results_dir = run.totals, run.results_dir
    for table in rich_tables(run.summaries, len(run.plan.config.seeds)):
        print_fitted(console, table)
    totals.wall_time_s = time.perf_counter() - started
    if totals.finished == totals.cells or not complete_report_exists(results_dir):
        run.files = write_report(run, command)
        where = f"report: {results_dir / 'results.md'}"
    else:
        where = f"the complete report in {results_dir / 'results.md'} is kept"
    say(
        f"{totals.finished}/{totals.cells} cells finished ({totals.computed} computed now) in "
        f"{format_duration(totals.wall_time_s)}; {where}"
    )


def _compute(
    plan: StudyPlan,
    results_dir: Path,
    launch: Launch,
    lines: ProgressLines,
    say: Callable[..., None],
    *,
    command: str,
    device: str,
    progress: bool,
    keep_checkpoints: bool,
) -> list[str]:
    """Compute the unfinished cells, in this process (one worker) or through the launcher's
    jobs; returns the keys computed now."""
    if launch.in_process:
        hooks = CellHooks(
            cached=lines.cached, started=lines.started, done=lines.done, failed=lines.failed,
            baseline_score=lambda cell: _baseline_score(plan, results_dir, cell),
            run_name=lambda cell: run_name(cell, len(plan.config.variants) > 1),
        )  # fmt: skip
        return work(
            plan,
            results_dir,
            device=device,
            progress=progress,
            command=command,
            keep_checkpoints=keep_checkpoints,
            hooks=hooks,
        ).computed
    jobs = submit(
        launch, plan, results_dir, device=device, command=command,
        keep_checkpoints=keep_checkpoints,
    )  # fmt: skip
    if not jobs:
        return []
    say(f"{len(jobs)} {launch.launcher} jobs started; their logs: {results_dir / JOBS_DIR}")
    try:
        return wait(jobs, plan, results_dir, on_done=lines.finished_elsewhere)
    except BaseException:
        if launch.launcher == "local":
            cancel(jobs)  # their cells keep their checkpoints: running again resumes them
        raise


def _silent(*_: object, **__: object) -> None:
    return None


def _baseline_score(plan: StudyPlan, results_dir: Path, cell: Cell) -> float | None:
    """The same-seed bilinear mIoU of a segmentation cell, if already known (for its record)."""
    if cell.task != "segmentation" or not cell.resizer.learned:
        return None
    results = {k: r for k, r in finished_results(plan, results_dir).items() if r.current}
    return segmentation_scores(plan, results, cell, BASELINE).get(cell.seed)
