"""Shared by the command modules: one-line user errors, bug reports, option parsing, aliases.

Two kinds of failure reach the user differently. An error the user can cause (a bad option, a
missing file, no network) prints one line and exits with 2. Anything else is a bug in
downsizenet-hub: it prints one line saying so and where the full traceback was written (under
``$DOWNSIZENET_HOME/logs``), and ``downsizenet --debug`` or ``DOWNSIZENET_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from downsizenet_hub import paths
from downsizenet_hub.atomic import WriteError

#: Errors a user can cause (bad option, missing file, corrupt data, no network): one line, exit 2.
#: TypeError is not one of them: the command line hands our code typed values, so a TypeError is
#: a bug. ValueError covers our validation errors (corrupt files, bad names, bad sizes).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ConnectionError,  # includes hub.HubAccessError: offline, no token, Hub unreachable
    WriteError,  # a file we could not write, named with its cause (disk full, read-only...)
)
#: Other OSErrors that come from the user's machine rather than from our code.
USER_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EACCES,
        errno.EPERM,
        errno.ELOOP,  # a link that leads to itself
        errno.ENXIO,  # a socket opened as a file
    }
)
USER_ERROR_EXIT = 2
#: Exit code of a bug (sysexits' EX_SOFTWARE), distinct from a user error's 2.
BUG_EXIT = 70
DEBUG_ENV = "DOWNSIZENET_DEBUG"
if TYPE_CHECKING:
    from downsizenet_hub.experiments.common import DataOptions

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def is_user_error(error: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether ``error`` is one the user can cause and fix (see :data:`USER_ERRORS`)."""
    if isinstance(error, (*USER_ERRORS, *extra)):
        return True
    return isinstance(error, OSError) and error.errno in USER_ERRNOS


def fail(error: BaseException | str, code: int = USER_ERROR_EXIT) -> typer.Exit:
    """Print ``error: <message>`` on one line to stderr; return the Exit to raise."""
    if isinstance(error, OSError) and str(error).startswith("[Errno") and error.strerror:
        # Python's "[Errno 36] File name too long: '...'" as "<file>: file name too long"
        where = f"{error.filename}: " if error.filename is not None else ""
        error = f"{where}{error.strerror[:1].lower()}{error.strerror[1:]}"
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    _stderr.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code=code)


@contextlib.contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn the user's errors into one line and a non-zero exit; let bugs through."""
    try:
        yield
    except Exception as error:
        if not is_user_error(error, extra):
            raise
        raise fail(error) from None


def debug_requested() -> bool:
    """``DOWNSIZENET_DEBUG`` set to 1/true/yes/on."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def report_bug(error: BaseException) -> typer.Exit:
    """Write the traceback of an unexpected ``error`` to a log file, print one line naming the
    file, and return the Exit (code :data:`BUG_EXIT`) to raise."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        logs = paths.home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"crash-{stamp}-{os.getpid()}.txt"
        log.write_text(text, encoding="utf-8")
    except OSError:  # an unwritable home must not hide the bug: fall back to the temp folder
        handle, name = tempfile.mkstemp(prefix=f"downsizenet-crash-{stamp}-", suffix=".txt")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        log = Path(name)
    summary = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    _stderr.print(
        "[bold red]internal error[/] (a bug in downsizenet-hub, please report it): "
        + escape(summary),
        markup=True,
    )
    _stderr.print(
        f"full traceback: {log} (rerun with --debug or {DEBUG_ENV}=1 to print it)", markup=False
    )
    return typer.Exit(code=BUG_EXIT)


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
    items: str,
    family: str = "all",
) -> DataOptions:
    """The DataOptions of pretrain and transfer, from the data options they share (declared
    below). ``--scale`` defaults to ``defaults.SCALE`` when ``--size`` is not given; DataOptions
    checks the pair."""
    from downsizenet_hub.experiments import defaults
    from downsizenet_hub.experiments.common import DataOptions

    parsed = parse_size(size)
    if parsed is None and scale is None:
        scale = defaults.SCALE
    return DataOptions(
        name=data, root=data_root, variant=variant, scale=scale, size=parsed,
        train_images=train_images, val_images=val_images, items=items, family=family,
    )  # fmt: skip


# Options shared by pretrain, transfer and study, declared once.
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        metavar="NAME",
        help="Dataset: scenes (built-in, generated offline), voc, cityscapes or coco.",
    ),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        metavar="DIR",
        help="Folder of a real dataset (never downloaded). Not needed for scenes.",
    ),
]
VariantOpt = Annotated[
    str,
    typer.Option(
        "--variant",
        metavar="NAME",
        help="Built-in data variant: clean, or noisy (sensor noise at full resolution).",
    ),
]
ItemsOpt = Annotated[
    str,
    typer.Option(
        "--items",
        metavar="LAYOUT",
        help="Built-in data item layout: large (48-72 px items) or small (24-40 px).",
    ),
]
FamilyOpt = Annotated[
    str,
    typer.Option(
        "--family",
        metavar="NAME",
        help="Built-in scenes family: all, A (upper-body garments on 7 of the photographs) or B "
        "(trousers, footwear and bags on the other 7; no class or photograph of A).",
    ),
]
ScaleOpt = Annotated[
    float | None,
    typer.Option("--scale", metavar="S", help="Resize factor of the resizer under test, e.g. 0.3."),
]
SizeOpt = Annotated[
    str | None,
    typer.Option(
        "--size", metavar="HxW", help="Output size of the resizer instead of --scale, e.g. 160x160."
    ),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, metavar="N", help="Training epochs.")]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        min=0,
        max=2**32 - 1,
        metavar="N",
        help="Seed for initialisation, data order and augmentation.",
    ),
]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", min=2, metavar="N", help="Images per step (per process).")
]
LrOpt = Annotated[
    float,
    typer.Option(
        "--lr", min=0.0, metavar="LR", help="Peak learning rate (AdamW, cosine schedule)."
    ),
]
RunDirOpt = Annotated[
    Path, typer.Option("--run-dir", metavar="DIR", help="Where checkpoints, logs and metrics go.")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
]
DeviceOpt = Annotated[
    str,
    typer.Option("--device", metavar="DEVICE", help="auto (CUDA if present), cpu, cuda, cuda:1."),
]
#: The most scenes of one split a command builds (about 40 GB at 300 px): a number past it is a
#: typo, not a plan, and would fill the disk for days before failing.
MAX_SCENES = 1_000_000
TrainImagesOpt = Annotated[
    int | None,
    typer.Option(
        "--train-images",
        min=2,
        max=MAX_SCENES,
        metavar="N",
        help="Built-in data: number of training scenes (default 1600).",
    ),
]
ValImagesOpt = Annotated[
    int | None,
    typer.Option(
        "--val-images",
        min=1,
        max=MAX_SCENES,
        metavar="N",
        help="Built-in data: number of validation scenes (default 400).",
    ),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]


def load_plugins(specs: list[str] | None) -> list[str] | None:
    """``--plugin``'s callback: import each module (the current folder is searched last, as
    ``python -m`` would) and register its resizers; a broken plugin is one line and exit 2."""
    if not specs:
        return specs
    import sys

    from downsizenet_hub import plugins

    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        for spec in specs:
            plugins.load_module(spec)
    except plugins.PluginError as error:
        raise fail(error) from None
    return specs


# Eager: the modules are imported before any other option is checked or used.
PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="MODULE",
        callback=load_plugins,
        is_eager=True,
        help="Import MODULE (MODULE:OBJECT, or a file path/to/module.py) to register the "
        "resizers it defines, as an installed plugin does through its entry point (see "
        "docs/plugins.md). Repeatable.",
    ),
]
