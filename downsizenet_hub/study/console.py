"""How a study speaks on a terminal: the console, tables that fit 80 columns, progress lines,
and the plan table of ``--dry-run``."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from downsizenet_hub.study.cells import Cell, StudyPlan
from downsizenet_hub.study.timing import estimate_seconds, format_duration, run_seconds
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
