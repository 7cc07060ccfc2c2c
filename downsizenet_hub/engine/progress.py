"""What a run shows and records: one named progress display, epoch lines, and ``train.log``.

Only rank 0 reports (other ranks get a silent reporter). On an interactive terminal a run shows
one rich progress line, named after the run (``seg x0.3 downsizenet seed 0, epoch 3/4``), with
the epoch's steps, the loss and the time left; redirected output and CI logs get one plain line
per epoch instead, whose seconds are that epoch's (``s/epoch``, evaluation included) and whose
time left is this run's (the named run: one arm of ``pretrain``, one cell of a study; a study
prints its own time left between cells). Epoch lines break between metrics, never inside one.
The time left is the remaining steps at the pace measured so far in this run (evaluation
included), never an a priori guess. ``progress=False`` silences the console; ``train.log`` is
written either way.

A run's name comes from the ``name`` argument, else from an enclosing :func:`run_name` block (how
the study names its cells without changing the engine's API), else from its folder
(``pretrain/downsizenet`` for ``runs/pretrain/downsizenet/train.log``), after the prefix of an
enclosing :func:`run_prefix` block if there is one (how ``pretrain`` and ``transfer`` say which
data a run trains on: ``pretrain scenes-noisy-large-x0.3 downsizenet``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from downsizenet_hub.atomic import refuse_non_regular
from downsizenet_hub.engine.config import EpochRecord

_RUN_NAME: ContextVar[str | None] = ContextVar("downsizenet_run_name", default=None)
_RUN_PREFIX: ContextVar[str | None] = ContextVar("downsizenet_run_prefix", default=None)


@contextlib.contextmanager
def run_name(name: str) -> Iterator[None]:
    """Name every run trained inside the block, e.g. ``with run_name("seg x0.3 seed 0"):``."""
    token = _RUN_NAME.set(name)
    try:
        yield
    finally:
        _RUN_NAME.reset(token)


@contextlib.contextmanager
def run_prefix(prefix: str) -> Iterator[None]:
    """Name every run trained inside the block ``<prefix> <its folder's name>``, e.g. with
    ``run_prefix("pretrain scenes-noisy-large-x0.3")`` the arm trained in ``.../downsizenet``
    is ``pretrain scenes-noisy-large-x0.3 downsizenet``."""
    token = _RUN_PREFIX.set(prefix)
    try:
        yield
    finally:
        _RUN_PREFIX.reset(token)


def format_epoch(record: EpochRecord, epochs: int) -> str:
    """One line: ``epoch 2/5  loss 0.4213  lr 8.1e-04  312 img/s  12.3 s/epoch  miou 0.4120``."""
    return "  ".join(epoch_parts(record, epochs))


def epoch_parts(record: EpochRecord, epochs: int) -> list[str]:
    """The items of an epoch line, each to be kept whole when the line wraps."""
    parts = [
        f"epoch {record.epoch}/{epochs}",
        f"loss {record.train_loss:.4f}",
        f"lr {record.lr:.2e}",
        f"{record.images_per_s:.1f} img/s",
        f"{record.train_seconds + record.eval_seconds:.1f} s/epoch",
    ]
    parts += [f"{name} {value:.4f}" for name, value in record.metrics.items()]
    return parts


def wrap_parts(parts: list[str], width: int, indent: str = "    ") -> str:
    """Join ``parts`` with two spaces into lines of at most ``width`` characters, breaking only
    between parts (a part wider than a line gets a line of its own)."""
    lines: list[str] = []
    line = ""
    for part in parts:
        candidate = f"{line}  {part}" if line else part
        if line and len(candidate) > width:
            lines.append(line)
            candidate = indent + part
        line = candidate
    lines.append(line)
    return "\n".join(lines)


def format_duration(seconds: float | None) -> str:
    """``"45 s"``, ``"3.2 min"``, ``"1.5 h"``; ``"n/a"`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Pace:
    """Seconds per step measured over this process's part of the run (evaluation included)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self._first_done = 0
        self._started: float | None = None

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self._first_done = total, done, done
        self._started = time.perf_counter()

    def remaining_seconds(self) -> float | None:
        measured = self.done - self._first_done
        if self._started is None or measured < 1:
            return None
        per_step = (time.perf_counter() - self._started) / measured
        return per_step * max(self.total - self.done, 0)


class _TimeLeftColumn(ProgressColumn):
    """``~3.2 min left`` from the run's measured pace (``...`` until a step has been timed)."""

    def __init__(self, pace: _Pace) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._pace = pace

    def render(self, task: Task) -> Text:
        left = self._pace.remaining_seconds()
        return Text("" if left is None else f"~{format_duration(left)} left", style="cyan")


class RunReporter:
    """Console output and ``train.log`` of one run; use as a context manager."""

    def __init__(
        self,
        log_path: Path | None,
        *,
        show: bool,
        console: Console | None = None,
        name: str | None = None,
    ) -> None:
        self._log_path = log_path
        self._log: IO[str] | None = None
        self._console = console if console is not None else Console(stderr=True)
        self._show = show
        self.name = name or _RUN_NAME.get() or _name_from(log_path, _RUN_PREFIX.get())
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._pace = _Pace()

    def __enter__(self) -> RunReporter:
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            refuse_non_regular(self._log_path)  # appending to a FIFO would wait for a reader
            self._log = self._log_path.open("a", encoding="utf-8")
        if self._show and self._console.is_terminal:
            columns: list[ProgressColumn] = [
                TextColumn(
                    "{task.description}",
                    table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
                ),
                BarColumn(bar_width=10),
                TextColumn("{task.completed}/{task.total}", table_column=Column(no_wrap=True)),
                _TimeLeftColumn(self._pace),
            ]
            if self._console.width >= 100:  # the live loss only where the name still fits
                loss = TextColumn("loss {task.fields[loss]}", table_column=Column(no_wrap=True))
                columns.insert(3, loss)
            self._progress = Progress(*columns, console=self._console, transient=False, expand=True)
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self, message: str, *, console: bool = True) -> None:
        """A timestamped line in train.log and, if shown, on the console."""
        if self._log is not None:
            self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}\n")
            self._log.flush()
        if console and self._show:
            self._console.print(message, markup=False, highlight=False)

    def start_run(self, total_steps: int, done_steps: int) -> None:
        """The run has ``total_steps`` steps, ``done_steps`` of them done before (a resume)."""
        self._pace.start(total_steps, done_steps)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done_steps: int) -> None:
        """Begin 1-based ``epoch`` of ``epochs``: ``steps`` steps, ``done_steps`` already done."""
        if self._progress is None:
            return
        description = f"{self.name}, epoch {epoch}/{epochs}"
        if self._task is None:
            self._task = self._progress.add_task(
                description, total=steps, completed=done_steps, loss="-"
            )
        else:
            self._progress.reset(self._task, description=description, total=steps, loss="-")
            self._progress.update(self._task, completed=done_steps)

    def step(self, loss: float, images_per_s: float) -> None:
        self._pace.done += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, loss=f"{loss:.4f}")

    def end_epoch(self, record: EpochRecord, epochs: int) -> None:
        """train.log gets the epoch line; the console gets it named, with the time left."""
        self.log(format_epoch(record, epochs), console=False)
        if not self._show:
            return
        parts = [f"{self.name}:", *epoch_parts(record, epochs)]
        left = self._pace.remaining_seconds()
        if record.epoch < epochs and left is not None:
            parts.append(f"~{format_duration(left)} left in this run")
        line = wrap_parts(parts, max(self._console.width, 40))
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)


def _name_from(log_path: Path | None, prefix: str | None = None) -> str:
    """``pretrain/downsizenet`` for ``runs/pretrain/downsizenet/train.log``; ``run`` if none;
    ``<prefix> downsizenet`` under a :func:`run_prefix`."""
    if log_path is None:
        return prefix or "run"
    folder = log_path.parent
    if prefix:
        return f"{prefix} {folder.name}"
    return f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name
