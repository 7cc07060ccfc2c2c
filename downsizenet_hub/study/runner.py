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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from downsizenet_hub.backbones.sources import resolve_vgg16_weights
from downsizenet_hub.engine import init_from_env, is_main_process
from downsizenet_hub.engine.distributed import barrier
from downsizenet_hub.engine.progress import run_name
from downsizenet_hub.study.cell_run import (
    RESIZER_DIR,
    CellResult,
    cell_folder,
    read_result,
    remove_checkpoints,
    run_cell,
    write_result,
)
from downsizenet_hub.study.cells import (
    METRIC_NAMES,
    PRIMARY_METRIC,
    Cell,
    StudyPlan,
    plan_study,
)
from downsizenet_hub.study.config import BASELINE, StudyConfig
from downsizenet_hub.study.cost import cost_points, cost_table
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

#: Keeps the engine's bulky run folders (checkpoints, logs) out of git when results are committed.
GITIGNORE = "# written by downsizenet study: run folders are bulky and reproducible\ncells/*/run/\n"


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
    console: Console | None = None,
) -> StudyRun:
    """Run (or, with ``report_only``, only report) the study into ``results_dir``.

    Args:
        command: the command line that reproduces the study; recorded in the report and in the
            trained resizers, and what decides whether a published name may be replaced.
        device: the engine's device ("auto", "cpu", "cuda", "cuda:1"); not part of cell keys.
        progress: the engine's progress bars / epoch lines (on stderr).
        keep_checkpoints: keep each finished cell's checkpoints (about 16 MB per segmentation
            cell, 9 MB per transfer cell).
        report_only: run nothing; summarise the cells that have finished.
    """
    started = time.perf_counter()
    init_from_env()  # under torchrun: join now, so that only rank 0 prints from the start
    console = console or study_console()
    say: Callable[..., None] = console.print if is_main_process() else _silent
    plan = resolved_plan(config, strict=not report_only)
    results_dir = Path(results_dir)
    if is_main_process():
        results_dir.mkdir(parents=True, exist_ok=True)
        gitignore = results_dir / ".gitignore"
        if not gitignore.exists():
            write_text(gitignore, GITIGNORE)
    results: dict[str, CellResult] = {}
    computed = 0
    total = len(plan.cells)
    published: list[str] = []
    say(
        f"[bold]Study {config.name}[/]: {total} cells ({plan.cell_count('segmentation')} "
        f"segmentation, {plan.cell_count('transfer')} transfer), seeds "
        f"{', '.join(map(str, config.seeds))} -> {results_dir}"
    )
    # Time left is the rough cost of the cells still to run, scaled by the pace measured on the
    # cells computed so far, per task: a priori rates are off by 2-3x between idle and busy
    # machines, and by different factors for the two tasks.
    to_run = {c.key for c in plan.cells if not report_only and read_result(results_dir, c) is None}
    timed: list[tuple[str, float | None, float]] = []
    for index, cell in enumerate(plan.cells, start=1):
        prefix = escape(f"[{index:>{len(str(total))}}/{total}] {cell.describe()}  seed {cell.seed}")
        found = read_result(results_dir, cell)
        if found is None and not report_only:
            waiting = [c for c in plan.cells[index - 1 :] if c.key in to_run]
            rest = [(c.task, estimate_seconds(c)) for c in waiting]
            left = remaining_at_measured_pace(timed, rest)
            pace = f"; study about {format_duration(left)} left at the pace so far" if left else ""
            say(_cell_line(prefix, f"[yellow]running[/]{pace}", console.width))
            baseline = _baseline_score(plan, results, cell)
            try:
                with run_name(_run_name(cell, len(config.variants) > 1)):
                    found = run_cell(
                        cell, results_dir, device=device, progress=progress, command=command,
                        baseline_score=baseline,
                    )  # fmt: skip
            except BaseException:
                folder = escape(str(cell_folder(results_dir, cell)))
                stopped = f"[red]stopped[/]; running the study again resumes it ({folder})"
                say(_cell_line(prefix, stopped, console.width))
                raise
            write_result(results_dir, found)
            timed.append((cell.task, estimate_seconds(cell), found.wall_time_s))
            if not keep_checkpoints:
                remove_checkpoints(results_dir, cell)
            barrier()
            computed += 1
            took = format_duration(found.wall_time_s)
            say(_cell_line(prefix, f"[green]done[/] in {took}: {_score(found)}", console.width))
        elif found is not None and found.stale:
            stale = f"[yellow]cached, computed by other code ({found.code})[/]: {_score(found)}"
            say(_cell_line(prefix, stale, console.width))
        elif found is not None:
            say(_cell_line(prefix, f"[dim]cached[/]: {_score(found)}", console.width))
        else:
            say(_cell_line(prefix, "[dim]not run[/]", console.width))
        if found is not None:
            results[cell.key] = found
    if not report_only:  # after every cell, so that the records carry the study's differences
        published = _publish(plan, results_dir, results, command, say)
    summaries = summarise(plan, results)
    totals = StudyTotals(
        cells=total,
        finished=len(results),
        computed=computed,
        stale=sum(1 for r in results.values() if r.stale),
        cell_seconds=sum(r.wall_time_s for r in results.values()),
        wall_time_s=0.0,
        published=published,
    )
    run = StudyRun(plan, results, summaries, results_dir, totals)
    if is_main_process():
        for table in rich_tables(summaries, len(config.seeds)):
            _print_fitted(console, table)
        totals.wall_time_s = time.perf_counter() - started
        run.files = _write_report(run, command)
        say(
            f"{len(results)}/{total} cells finished ({computed} computed now) in "
            f"{format_duration(totals.wall_time_s)}; report: {results_dir / 'results.md'}"
        )
    barrier()
    return run


def study_console() -> Console:
    """stdout; wide when redirected (rich would wrap the interval columns at 80 characters)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_fitted(console: Console, table: Table) -> None:
    """``table`` as it is when it fits the console; else one small two-column block per row
    (column name, value), so that no header or value is cut at 80 columns."""
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    if natural <= console.width:
        console.print(table)
        return
    headers = [str(column.header) for column in table.columns]
    rows = list(zip(*(list(column.cells) for column in table.columns), strict=True))
    if table.title:
        console.print(Text(str(table.title), style="bold"))
    for cells in rows:
        block = Table.grid(padding=(0, 2))
        block.add_column(style="dim", no_wrap=True)
        block.add_column()
        for header, cell in zip(headers, cells, strict=True):
            block.add_row(header, cell)
        console.print(block)
        console.print()
    if table.caption:
        console.print(Text(str(table.caption), style="dim"))


def _cell_line(prefix: str, status: str, width: int) -> str:
    """``prefix  status`` on one line if it fits, else the status indented on the next line:
    the terminal never breaks a status (or a score) in the middle."""
    line = f"{prefix}  {status}"
    return line if Text.from_markup(line).cell_len <= width else f"{prefix}\n    {status}"


def _silent(*_: object, **__: object) -> None:
    return None


def _score(result: CellResult) -> str:
    metric = PRIMARY_METRIC[result.task]
    value = result.metrics.get(metric)
    return f"{METRIC_NAMES[metric]} {value:.2f}" if value is not None else "no score"


def _baseline_score(plan: StudyPlan, results: dict[str, CellResult], cell: Cell) -> float | None:
    """The same-seed bilinear mIoU of a segmentation cell, if already known (for its record)."""
    if cell.task != "segmentation" or not cell.resizer.learned:
        return None
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
    text = markdown_report(
        run.plan, run.summaries, run.totals, command, figures, comparisons, cost, movement
    )
    write_text(results_dir / "results.md", text)
    return [results_dir / "results.json", results_dir / "results.md"] + [
        results_dir / name for _, name in figures
    ]


def _run_name(cell: Cell, with_variant: bool) -> str:
    """How the engine's progress names a cell's run, e.g. ``seg x0.3 downsizenet seed 0`` (the
    data variant too when the study has several)."""
    task = "seg" if cell.task == "segmentation" else "det"
    variant = f" {cell.variant}" if with_variant else ""
    return f"{task}{variant} x{cell.scale:g} {cell.resizer.label} seed {cell.seed}"


def plan_table(plan: StudyPlan, results_dir: Path) -> Table:
    """The cells a run would train, in order, with their status and a rough time each."""
    table = Table(title=f"Study {plan.config.name}: {len(plan.cells)} cells")
    for column in ("#", "task", "resizer", "data", "scale", "epochs", "seed", "status", "time"):
        table.add_column(column, justify="right" if column in ("#", "epochs", "seed") else "left")
    remaining: float | None = 0.0
    for index, cell in enumerate(plan.cells, start=1):
        cached = read_result(results_dir, cell) is not None
        seconds = estimate_seconds(cell)
        if not cached:
            remaining = None if remaining is None or seconds is None else remaining + seconds
        epochs = (
            f"{cell.source.epochs}+{cell.epochs}" if cell.source is not None else str(cell.epochs)
        )
        task = "seg" if cell.task == "segmentation" else "transfer"
        table.add_row(
            str(index), task, cell.resizer.label, cell.variant, f"x{cell.scale:g}", epochs,
            str(cell.seed), "cached" if cached else "to run", format_duration(seconds),
        )  # fmt: skip
    table.caption = (
        f"to run: about {format_duration(remaining)} on an idle 2-core CPU, 2 to 3 times more "
        "beside other jobs (rough: downsizenet_hub/study/timing.py); transfer epochs are "
        "pretraining+head epochs"
    )
    return table
