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

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from downsizenet_hub.backbones.sources import resolve_vgg16_weights
from downsizenet_hub.engine import init_from_env, is_main_process
from downsizenet_hub.engine.distributed import barrier, is_distributed
from downsizenet_hub.jsonfile import read_json
from downsizenet_hub.study.cell_run import (
    RESIZER_DIR,
    CellResult,
    cell_folder,
    read_result,
    unreadable_result,
)
from downsizenet_hub.study.cells import METRIC_NAMES, PRIMARY_METRIC, Cell, StudyPlan, plan_study
from downsizenet_hub.study.config import BASELINE, StudyConfig
from downsizenet_hub.study.console import cell_line, print_fitted, run_name, study_console
from downsizenet_hub.study.cost import cost_points, cost_table
from downsizenet_hub.study.differences import difference_figure, transfer_targets_table
from downsizenet_hub.study.launch import JOBS_DIR, Launch, cancel, submit, wait
from downsizenet_hub.study.movement import movement_table, movements
from downsizenet_hub.study.plots import write_figures
from downsizenet_hub.study.publishing import (
    publish_study_resizer,
    segmentation_scores,
    study_record,
)
from downsizenet_hub.study.report import (
    RowSummary,
    StudyTotals,
    head_to_head,
    markdown_report,
    results_document,
    rich_tables,
    summarise,
    write_json,
    write_text,
)
from downsizenet_hub.study.timing import (
    estimate_seconds,
    format_duration,
    remaining_at_measured_pace,
)
from downsizenet_hub.study.workers import CellHooks, finished, work
from downsizenet_hub.tools.compare import save_figure

DIFFERENCE_FIGURE = "difference_from_bilinear.png"
DIFFERENCE_CAPTION = (
    "Each resizer's score minus bilinear's under the same seed, with the paired 95% interval: "
    "what the tables' Δ columns say, drawn (an interval clear of 0 is a detectable difference)"
)
TARGETS_INTRO = (
    "Each pretrained resizer frozen into detection on the scenes it was pretrained on and on "
    "another scene family (new objects on new backgrounds), beside the fixed resizers; the "
    "paper's claim is that a learned resizer's output stays an image and so transfers."
)
#: Keeps bulky or per-machine files out of git when results are committed: the engine's run
#: folders (checkpoints, logs), the workers' claim locks and the launcher's job files.
GITIGNORE = (
    "# written by downsizenet study: run folders are bulky and reproducible; claims and job\n"
    "# files belong to the machine that ran them\n"
    "cells/*/run/\ncells/*/claim/\njobs/\n"
)


@dataclass
class StudyRun:
    """What :func:`run_study` did: the plan, every finished result, the row summaries, files."""

    plan: StudyPlan
    results: dict[str, CellResult]
    summaries: list[RowSummary]
    results_dir: Path
    totals: StudyTotals
    files: list[Path] = field(default_factory=list)


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
    if is_main_process():
        results_dir.mkdir(parents=True, exist_ok=True)
        _write_gitignore(results_dir)
    total = len(plan.cells)
    workers = "" if launch.in_process else f", {_workers_text(launch)}"
    say(
        f"[bold]Study {config.name}[/]: {total} cells ({plan.cell_count('segmentation')} "
        f"segmentation, {plan.cell_count('transfer')} transfer), seeds "
        f"{', '.join(map(str, config.seeds))}{workers} -> {results_dir}"
    )
    lines = _ProgressLines(plan, results_dir, say, console.width)
    computed: list[str] = []
    if report_only:
        lines.report_all()
    elif launch.in_process:
        hooks = CellHooks(
            cached=lines.cached, started=lines.started, done=lines.done, failed=lines.failed,
            baseline_score=lambda cell: _baseline_score(plan, results_dir, cell),
            run_name=lambda cell: run_name(cell, len(config.variants) > 1),
        )  # fmt: skip
        computed = work(
            plan,
            results_dir,
            device=device,
            progress=progress,
            command=command,
            keep_checkpoints=keep_checkpoints,
            hooks=hooks,
        ).computed
    else:
        jobs = submit(
            launch, plan, results_dir, device=device, command=command,
            keep_checkpoints=keep_checkpoints,
        )  # fmt: skip
        say(f"{len(jobs)} {launch.launcher} jobs started; their logs: {results_dir / JOBS_DIR}")
        try:
            computed = wait(jobs, plan, results_dir, on_done=lines.finished_elsewhere)
        except BaseException:
            if launch.launcher == "local":
                cancel(jobs)  # their cells keep their checkpoints: running again resumes them
            raise
    results = _finished_results(plan, results_dir)
    published = (
        [name for cell, name in plan.publications if cell.key in results]  # as it ran
        if report_only
        else _publish(plan, results_dir, results, command, say)
    )
    totals = StudyTotals(
        cells=total,
        finished=len(results),
        computed=len(computed),
        by_numerics=dict(Counter(r.numerics for r in results.values())),
        cell_seconds=sum(r.wall_time_s for r in results.values()),
        wall_time_s=0.0,
        published=published,
    )
    summaries = summarise(plan, results)
    run = StudyRun(plan, results, summaries, results_dir, totals)
    if is_main_process():
        for table in rich_tables(summaries, len(config.seeds)):
            print_fitted(console, table)
        totals.wall_time_s = time.perf_counter() - started
        if totals.finished == total or not _complete_report_exists(results_dir):
            run.files = _write_report(run, command)
            where = f"report: {results_dir / 'results.md'}"
        else:
            where = f"the complete report in {results_dir / 'results.md'} is kept"
        say(
            f"{len(results)}/{total} cells finished ({len(computed)} computed now) in "
            f"{format_duration(totals.wall_time_s)}; {where}"
        )
    barrier()
    return run


class _ProgressLines:
    """One line per cell as it is found finished, starts, finishes or fails, with the study's
    time left at the pace measured so far (per task: a priori rates are off by 2-3x between idle
    and busy machines, and by different factors for the two tasks)."""

    def __init__(
        self, plan: StudyPlan, results_dir: Path, say: Callable[..., None], width: int
    ) -> None:
        self.plan, self.results_dir, self.say, self.width = plan, results_dir, say, width
        self.index = {cell.key: i for i, cell in enumerate(plan.cells, start=1)}
        self.to_run = {c.key for c in plan.cells if finished(results_dir, c) is None}
        self.timed: list[tuple[str, float | None, float]] = []

    def _prefix(self, cell: Cell) -> str:
        total = len(self.plan.cells)
        number = f"[{self.index[cell.key]:>{len(str(total))}}/{total}]"
        return escape(f"{number} {cell.describe()}  seed {cell.seed}")

    def _line(self, cell: Cell, status: str) -> None:
        self.say(cell_line(self._prefix(cell), status, self.width))

    def cached(self, cell: Cell, result: CellResult) -> None:
        self._line(cell, f"[dim]cached[/]: {_score(result)}")

    def started(self, cell: Cell) -> None:
        rest = [(c.task, estimate_seconds(c)) for c in self.plan.cells if c.key in self.to_run]
        left = remaining_at_measured_pace(self.timed, rest)
        pace = f"; study about {format_duration(left)} left at the pace so far" if left else ""
        self._line(cell, f"[yellow]running[/]{pace}")

    def done(self, cell: Cell, result: CellResult) -> None:
        self.to_run.discard(cell.key)
        self.timed.append((cell.task, estimate_seconds(cell), result.wall_time_s))
        took = format_duration(result.wall_time_s)
        self._line(cell, f"[green]done[/] in {took}: {_score(result)}")

    def failed(self, cell: Cell, error: BaseException) -> None:
        folder = escape(str(cell_folder(self.results_dir, cell)))
        self._line(cell, f"[red]stopped[/]; running the study again resumes it ({folder})")

    def finished_elsewhere(self, cell: Cell) -> None:
        """A cell a worker job finished (read from disk)."""
        result = finished(self.results_dir, cell)
        if result is not None:
            self.done(cell, result)

    def report_all(self) -> None:
        """--report-only: every cell's status, other numerics versions named."""
        for cell in self.plan.cells:
            result = read_result(self.results_dir, cell)
            problem = unreadable_result(self.results_dir, cell) if result is None else None
            if problem is not None:
                why = escape(problem)
                self._line(cell, f"[red]unreadable result[/] ({why}); a run recomputes it")
            elif result is None:
                self._line(cell, "[dim]not run[/]")
            elif not result.current:
                version = f"numerics version {result.numerics}"
                self._line(cell, f"[yellow]cached, {version}[/]: {_score(result)}")
            else:
                self.cached(cell, result)


def _workers_text(launch: Launch) -> str:
    if launch.launcher == "local":
        return f"{launch.workers} local workers"
    cap = f", at most {launch.workers} at once" if launch.workers else ""
    return f"a Slurm job per cell{cap}"


def _finished_results(plan: StudyPlan, results_dir: Path) -> dict[str, CellResult]:
    """Every finished cell's result as it is on disk (of any numerics version)."""
    found = {cell.key: read_result(results_dir, cell) for cell in plan.cells}
    return {key: result for key, result in found.items() if result is not None}


def _complete_report_exists(results_dir: Path) -> bool:
    try:
        document = read_json(results_dir / "results.json", what="study report")
        totals = document["totals"]
        return bool(totals["finished"] == totals["cells"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_gitignore(results_dir: Path) -> None:
    gitignore = results_dir / ".gitignore"
    try:
        current = gitignore.read_text(encoding="utf-8")
    except OSError:
        current = ""
    if current != GITIGNORE:
        write_text(gitignore, GITIGNORE)


def _silent(*_: object, **__: object) -> None:
    return None


def _score(result: CellResult) -> str:
    metric = PRIMARY_METRIC[result.task]
    value = result.metrics.get(metric)
    return f"{METRIC_NAMES[metric]} {value:.2f}" if value is not None else "no score"


def _baseline_score(plan: StudyPlan, results_dir: Path, cell: Cell) -> float | None:
    """The same-seed bilinear mIoU of a segmentation cell, if already known (for its record)."""
    if cell.task != "segmentation" or not cell.resizer.learned:
        return None
    results = {k: r for k, r in _finished_results(plan, results_dir).items() if r.current}
    return segmentation_scores(plan, results, cell, BASELINE).get(cell.seed)


def _publish(
    plan: StudyPlan,
    results_dir: Path,
    results: dict[str, CellResult],
    command: str,
    say: Callable[..., None],
) -> list[str]:
    """Publish the plan's finished resizers under the names it gives them (rank 0)."""
    done = []
    for cell, name in plan.publications:
        if cell.key not in results:
            continue
        if is_main_process():
            folder = cell_folder(results_dir, cell) / RESIZER_DIR
            update = functools.partial(
                study_record, plan=plan, results=results, trained=cell, command=command
            )
            if publish_study_resizer(folder, name, command, update):
                say(f"published {name} to the local hub")
        barrier()
        done.append(name)
    return done


def _write_report(run: StudyRun, command: str) -> list[Path]:
    results_dir = run.results_dir
    figures = write_figures(run.plan, run.summaries, results_dir)
    comparisons = head_to_head(run.plan, run.results)
    document = results_document(
        run.plan, run.results, run.summaries, run.totals, command, comparisons
    )
    write_json(results_dir / "results.json", document)
    cost = cost_table(cost_points(run.plan, run.summaries), run.results)
    movement = movement_table(movements(run.summaries, results_dir))
    difference = difference_figure(run.summaries)
    if difference is not None:
        save_figure(difference, results_dir / DIFFERENCE_FIGURE)
        figures.insert(0, (DIFFERENCE_CAPTION, DIFFERENCE_FIGURE))
    text = markdown_report(
        run.plan, run.summaries, run.totals, command, figures, comparisons, cost, movement
    )
    targets = transfer_targets_table(run.summaries)
    if targets:
        section = f"## Same objects, new objects\n\n{TARGETS_INTRO}\n\n{targets}\n\n"
        anchor = text.find("## Head to head")
        text = text[:anchor] + section + text[anchor:] if anchor >= 0 else text + section
    write_text(results_dir / "results.md", text)
    return [results_dir / "results.json", results_dir / "results.md"] + [
        results_dir / name for _, name in figures
    ]
