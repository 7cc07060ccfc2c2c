"""The root typer app. Command groups register themselves here; each lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from downsizenet_hub import __version__, allocator
from downsizenet_hub.cli import compare as compare_command
from downsizenet_hub.cli import data
from downsizenet_hub.cli import export as export_command
from downsizenet_hub.cli import hub as hub_commands
from downsizenet_hub.cli import pretrain as pretrain_command
from downsizenet_hub.cli import resize as resize_command
from downsizenet_hub.cli import study as study_command
from downsizenet_hub.cli import transfer as transfer_command

app = typer.Typer(
    name="downsizenet",
    help=(
        "Learned image downsizing for PyTorch pipelines: train a DownsizeNet resizer inside a "
        "segmentation pipeline, publish it, and reuse it frozen in front of a frozen detector."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"downsizenet-hub {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Learned image downsizing (DownsizeNet) for PyTorch vision pipelines."""


# Command registrations: each command module defines its own typer.Typer (a group) or a plain
# function (a single command) and never imports this module; it is wired in here, one line each.
# e.g. app.add_typer(hub_commands.app, name="hub"); app.command("pretrain")(pretrain_cmd.pretrain)
app.add_typer(data.app, name="data")
app.add_typer(hub_commands.app, name="hub")
app.command("pretrain")(pretrain_command.pretrain)
app.command("transfer")(transfer_command.transfer)
app.command("resize")(resize_command.resize)
app.command("compare")(compare_command.compare)
app.command("export")(export_command.export)
app.command("quickstart")(study_command.quickstart)
app.command("study")(study_command.study)


def main() -> None:
    """Console-script entry point.

    Keeps freed memory in the process before any tensor exists (up to 5x faster small
    convolutions on large images with glibc; see :mod:`downsizenet_hub.allocator`).
    ``DOWNSIZENET_ALLOCATOR=default`` opts out.
    """
    allocator.keep_freed_memory()
    app()
