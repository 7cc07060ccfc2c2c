"""Shared by the command modules: one-line user errors, option parsing, option aliases."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

#: Errors a user can cause (bad option, missing file, corrupt data): one line, exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    OSError,
)
USER_ERROR_EXIT = 2
if TYPE_CHECKING:
    from downsizenet_hub.experiments.common import DataOptions

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(error: BaseException | str, code: int = USER_ERROR_EXIT) -> typer.Exit:
    """Print ``error: <message>`` on one line to stderr; return the Exit to raise."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    _stderr.print(f"[bold red]error:[/] {message}", markup=True)
    return typer.Exit(code=code)


@contextlib.contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn the user's errors into one line and a non-zero exit, never a traceback."""
    try:
        yield
    except (*USER_ERRORS, *extra) as error:
        raise fail(error) from None


_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str | None, option: str = "--size") -> tuple[int, int] | None:
    """``"160x160"`` to ``(160, 160)``; a bare ``"160"`` is square."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if match:
        size = (int(match.group(1)), int(match.group(2)))
    elif text.strip().isdigit():
        size = (int(text), int(text))
    else:
        raise typer.BadParameter(f"expected HxW such as 160x160, got {text!r}.", param_hint=option)
    if min(size) < 1:
        raise typer.BadParameter(f"sizes must be positive, got {text!r}.", param_hint=option)
    return size


def data_options_from(
    data: str,
    data_root: Path | None,
    variant: str,
    scale: float | None,
    size: str | None,
    train_images: int | None,
    val_images: int | None,
    *,
    default_scale: float,
) -> DataOptions:
    """The data options of a training command, with --scale / --size checked."""
    from downsizenet_hub.experiments.common import DataOptions

    parsed = parse_size(size)
    if parsed is not None and scale is not None:
        raise ValueError("give --scale or --size, not both.")
    return DataOptions(
        name=data, root=data_root, variant=variant,
        scale=None if parsed else (scale if scale is not None else default_scale), size=parsed,
        train_images=train_images, val_images=val_images,
    )  # fmt: skip


# Options shared by pretrain, transfer and study, declared once.
DataOpt = Annotated[
    str,
    typer.Option(
        "--data", help="Dataset: scenes (built-in, generated offline), voc, cityscapes or coco."
    ),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root", help="Folder of a real dataset (never downloaded). Not needed for scenes."
    ),
]
VariantOpt = Annotated[
    str,
    typer.Option(
        "--variant",
        help="Built-in data variant: clean, or noisy (sensor noise at full resolution).",
    ),
]
ScaleOpt = Annotated[
    float | None, typer.Option("--scale", help="Resize factor of the resizer under test, e.g. 0.3.")
]
SizeOpt = Annotated[
    str | None,
    typer.Option("--size", help="Output size of the resizer instead of --scale, e.g. 160x160."),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed for initialisation, data order and augmentation.")
]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", min=2, help="Images per step (per process).")
]
LrOpt = Annotated[
    float, typer.Option("--lr", min=0.0, help="Peak learning rate (AdamW, cosine schedule).")
]
RunDirOpt = Annotated[
    Path, typer.Option("--run-dir", help="Where checkpoints, logs and metrics go.")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA if present), cpu, cuda, cuda:1.")
]
TrainImagesOpt = Annotated[
    int | None,
    typer.Option("--train-images", min=2, help="Built-in data: number of training scenes."),
]
ValImagesOpt = Annotated[
    int | None,
    typer.Option("--val-images", min=1, help="Built-in data: number of validation scenes."),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
