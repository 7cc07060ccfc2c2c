"""What a run shows and records: rich progress bars, epoch lines, and the plain ``train.log``.

Only rank 0 reports (other ranks get a silent reporter). Progress bars (run and epoch: loss,
images/s, time left) are drawn only on an interactive terminal, so redirected output and CI logs
get one plain line per epoch instead of redrawn bars. ``progress=False`` silences the console;
``train.log`` is written either way.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from downsizenet_hub.engine.config import EpochRecord


def format_epoch(record: EpochRecord, epochs: int) -> str:
    """One line: ``epoch 2/5  loss 0.4213  lr 8.1e-04  312 img/s  12.3 s  miou 0.4120 ...``."""
    parts = [
        f"epoch {record.epoch}/{epochs}",
        f"loss {record.train_loss:.4f}",
        f"lr {record.lr:.2e}",
        f"{record.images_per_s:.1f} img/s",
        f"{record.train_seconds + record.eval_seconds:.1f} s",
    ]
    parts += [f"{name} {value:.4f}" for name, value in record.metrics.items()]
    return "  ".join(parts)


class RunReporter:
    """Console output and ``train.log`` of one run; use as a context manager."""

    def __init__(
        self,
        log_path: Path | None,
        *,
        show: bool,
        console: Console | None = None,
    ) -> None:
        self._log_path = log_path
        self._log: IO[str] | None = None
        self._console = console if console is not None else Console(stderr=True)
        self._show = show
        self._progress: Progress | None = None
        self._run_task: TaskID | None = None
        self._epoch_task: TaskID | None = None

    def __enter__(self) -> RunReporter:
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("a", encoding="utf-8")
        if self._show and self._console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[speed]} img/s"),
                TimeRemainingColumn(),
                TextColumn("left"),
                console=self._console,
                transient=False,
            )
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
        if self._progress is not None:
            self._run_task = self._progress.add_task(
                "run", total=total_steps, completed=done_steps, loss="-", speed="-"
            )

    def start_epoch(self, epoch: int, epochs: int, steps: int, done_steps: int) -> None:
        """Begin 1-based ``epoch`` of ``epochs``: ``steps`` steps, ``done_steps`` already done."""
        if self._progress is not None:
            if self._epoch_task is not None:
                self._progress.remove_task(self._epoch_task)
            self._epoch_task = self._progress.add_task(
                f"epoch {epoch}/{epochs}", total=steps, completed=done_steps, loss="-", speed="-"
            )

    def step(self, loss: float, images_per_s: float) -> None:
        if self._progress is None:
            return
        for task in (self._run_task, self._epoch_task):
            if task is not None:
                self._progress.update(
                    task, advance=1, loss=f"{loss:.4f}", speed=f"{images_per_s:.1f}"
                )

    def end_epoch(self, record: EpochRecord, epochs: int) -> None:
        self.log(format_epoch(record, epochs))
