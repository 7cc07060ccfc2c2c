"""The root typer app. Command groups register themselves here; each lives in its own module.

Start-up is kept cheap: the command modules import only typer and :mod:`.common` at the top, and
each command imports the library (torch, torchvision, matplotlib, huggingface_hub) in its body,
so ``downsizenet --help`` and every ``<command> --help`` answer without loading them.
Help screens are click's plain layout (``rich_markup_mode=None``), which wraps between words at
any width (typer's rich panels truncate option names at 80 columns), and never inside a
hyphenated word such as ``--results-dir``.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # recent typer vendors click as typer._click; older ones use the click package
    from typer._click import _textwrap
    from typer._click.core import Context
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import _textwrap  # type: ignore[no-redef]
    from click.core import Context  # type: ignore[assignment]

from downsizenet_hub import __version__, allocator
from downsizenet_hub.cli import compare as compare_command
from downsizenet_hub.cli import data
from downsizenet_hub.cli import export as export_command
from downsizenet_hub.cli import hub as hub_commands
from downsizenet_hub.cli import pretrain as pretrain_command
from downsizenet_hub.cli import resize as resize_command
from downsizenet_hub.cli import study as study_command
from downsizenet_hub.cli import transfer as transfer_command
from downsizenet_hub.cli.common import debug_requested, report_bug

_DEBUG_KEY = "downsizenet_debug"


class _WholeWordWrapper(_textwrap.TextWrapper):
    """Click's help wrapper, but an option name like --results-dir stays on one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("break_on_hyphens", False)
        super().__init__(*args, **kwargs)


# click's wrap_text looks the class up in this module each time it wraps help text.
_textwrap.TextWrapper = _WholeWordWrapper  # type: ignore[misc]


class _RootGroup(TyperGroup):
    """The root command: an unexpected exception is reported as a bug, in one line plus the
    file holding its traceback, unless --debug (or DOWNSIZENET_DEBUG=1) asks for the traceback."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _is_click_exit(error) or ctx.meta.get(_DEBUG_KEY) or debug_requested():
                raise
            if _is_broken_pipe(error):  # `downsizenet hub list | head -1`: the reader left
                _quiet_stdout()
                raise typer.Exit(code=BROKEN_PIPE_EXIT) from None
            raise report_bug(error) from None


#: Exit code when standard output's reader went away (what a shell reports for a tool killed by
#: SIGPIPE, 128 + 13): nothing is printed, as Unix tools print nothing.
BROKEN_PIPE_EXIT = 141


def _is_broken_pipe(error: BaseException) -> bool:
    return isinstance(error, BrokenPipeError) or (
        isinstance(error, OSError) and error.errno == errno.EPIPE
    )


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that flushing what is left of it at exit raises
    nothing more (Python would print "Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real descriptor (a test's capture)
        pass


def _is_click_exit(error: BaseException) -> bool:
    """Exit, Abort, usage errors: typer's and click's own ways of ending a command."""
    ends = {"Exit", "Abort", "ClickException", "TyperException"}
    return any(
        kind.__name__ in ends and kind.__module__.split(".")[0] in ("typer", "click")
        for kind in type(error).__mro__
    )


app = typer.Typer(
    name="downsizenet",
    cls=_RootGroup,
    help=(
        "Learned image downsizing for PyTorch pipelines: train a DownsizeNet resizer inside a "
        "segmentation pipeline, publish it, and reuse it frozen in front of a frozen detector."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"downsizenet-hub {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Print the full traceback of an unexpected error (also DOWNSIZENET_DEBUG=1).",
        ),
    ] = False,
) -> None:
    """Learned image downsizing (DownsizeNet) for PyTorch vision pipelines."""
    ctx.meta[_DEBUG_KEY] = debug


# Command registrations: each command module defines its own typer.Typer (a group) or a plain
# function (a single command) and never imports this module; it is wired in here, one line each.
# Each short help fits the command list at 80 columns (click cuts longer ones with "...").
# Commands are listed in the order registered (groups after them): the main job first, then
# the study it is the small version of.
app.command("quickstart", short_help="The main job end to end, under 10 minutes on a CPU.")(
    study_command.quickstart
)
app.command("study", short_help="The paper's cross-task study: seeds, intervals, plots.")(
    study_command.study
)
app.add_typer(data.app, name="data", short_help="Build the built-in scenes data; draw samples.")
app.add_typer(
    hub_commands.app,
    name="hub",
    short_help="Published resizers: local, shipped, Hugging Face Hub.",
)
app.command("pretrain", short_help="Train a resizer inside a segmentation pipeline.")(
    pretrain_command.pretrain
)
app.command("transfer", short_help="Detection heads behind a frozen resizer and VGG16.")(
    transfer_command.transfer
)
app.command("resize", short_help="Resize a folder or glob of images with a resizer.")(
    resize_command.resize
)
app.command("compare", short_help="Resizers side by side, with DownsizeNet's coefficients.")(
    compare_command.compare
)
app.command("export", short_help="Export a resizer to ONNX or TorchScript, checked.")(
    export_command.export
)


def main() -> None:
    """Console-script entry point.

    Keeps freed memory in the process before any tensor exists (up to 5x faster small
    convolutions on large images with glibc; see :mod:`downsizenet_hub.allocator`).
    ``DOWNSIZENET_ALLOCATOR=default`` opts out.
    """
    allocator.keep_freed_memory()
    try:
        app()
    except SystemExit:
        # Output still buffered when the command ends is written now, where a reader that has
        # left is seen (`hub list | head -1`): end quietly then, as Unix tools do.
        try:
            sys.stdout.flush()
        except OSError as error:
            if not _is_broken_pipe(error):
                raise
            _quiet_stdout()
            raise SystemExit(BROKEN_PIPE_EXIT) from None
        raise
