"""How a study speaks on a terminal: the console, tables that fit 80 columns, progress lines,
and the plan table of ``--dry-run``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from downsizenet_hub.study.cell_run import CellResult, cell_folder, read_result, unreadable_result
from downsizenet_hub.study.cells import METRIC_NAMES, PRIMARY_METRIC, Cell, StudyPlan
from downsizenet_hub.study.launch import Launch
from downsizenet_hub.study.timing import (
    estimate_seconds,
    format_duration,
    remaining_at_measured_pace,
    run_seconds,
)
from downsizenet_hub.study.workers import finished


def study_console() -> Console:
    """stdout; wide when redirected (rich would wrap the interval columns at 80 characters)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def print_fitted(console: Console, table: Table) -> None:
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


def cell_line(prefix: str, status: str, width: int) -> str:
    """``prefix  status`` on one line if it fits, else the status indented on the next line:
    the terminal never breaks a status (or a score) in the middle."""
    line = f"{prefix}  {status}"
    return line if Text.from_markup(line).cell_len <= width else f"{prefix}\n    {status}"


def run_name(cell: Cell, with_variant: bool) -> str:
    """How the engine's progress names a cell's run, e.g. ``seg x0.3 downsizenet seed 0`` (the
    data variant too when the study has several)."""
    task = "seg" if cell.task == "segmentation" else "det"
    variant = f" {cell.variant}" if with_variant else ""
    return f"{task}{variant} x{cell.scale:g} {cell.resizer.label} seed {cell.seed}"


def plan_table(plan: StudyPlan, results_dir: Path, workers: int = 1) -> Table:
    """The cells a run would train, in order, with their status and a rough time each; the
    caption gives the rough time of the whole run with ``workers`` workers."""
    table = Table(title=f"Study {plan.config.name}: {len(plan.cells)} cells")
    for column in ("#", "task", "resizer", "data", "scale", "epochs", "seed", "status", "time"):
        table.add_column(column, justify="right" if column in ("#", "epochs", "seed") else "left")
    to_run = []
    for index, cell in enumerate(plan.cells, start=1):
        cached = finished(results_dir, cell) is not None
        if not cached:
            to_run.append(cell)
        epochs = (
            f"{cell.source.epochs}+{cell.epochs}" if cell.source is not None else str(cell.epochs)
        )
        task = "seg" if cell.task == "segmentation" else "transfer"
        family = cell.family_tag.replace("-fam", " ")
        table.add_row(
            str(index), task, cell.resizer.label, f"{cell.variant}{family}", f"x{cell.scale:g}",
            epochs,
            str(cell.seed), "cached" if cached else "to run",
            format_duration(estimate_seconds(cell)),
        )  # fmt: skip
    with_workers = f" with {workers} one-thread workers" if workers > 1 else ""
    table.caption = (
        f"to run: about {format_duration(run_seconds(to_run, workers))}{with_workers} on an "
        "idle 2-core CPU, 2 to 3 times more beside other jobs (rough: "
        "downsizenet_hub/study/timing.py); transfer epochs are pretraining+head epochs"
    )
    return table


class ProgressLines:
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
        self._line(cell, f"[dim]cached[/]: {score_text(result)}")

    def started(self, cell: Cell) -> None:
        rest = [(c.task, estimate_seconds(c)) for c in self.plan.cells if c.key in self.to_run]
        left = remaining_at_measured_pace(self.timed, rest)
        pace = f"; study about {format_duration(left)} left at the pace so far" if left else ""
        self._line(cell, f"[yellow]running[/]{pace}")

    def done(self, cell: Cell, result: CellResult) -> None:
        self.to_run.discard(cell.key)
        self.timed.append((cell.task, estimate_seconds(cell), result.wall_time_s))
        took = format_duration(result.wall_time_s)
        self._line(cell, f"[green]done[/] in {took}: {score_text(result)}")

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
                self._line(cell, f"[yellow]cached, {version}[/]: {score_text(result)}")
            else:
                self.cached(cell, result)


def workers_text(launch: Launch) -> str:
    if launch.launcher == "local":
        return f"{launch.workers} local workers"
    cap = f", at most {launch.workers} at once" if launch.workers else ""
    return f"a Slurm job per cell{cap}"


def score_text(result: CellResult) -> str:
    metric = PRIMARY_METRIC[result.task]
    value = result.metrics.get(metric)
    return f"{METRIC_NAMES[metric]} {value:.2f}" if value is not None else "no score"
