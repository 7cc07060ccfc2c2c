"""``downsizenet hub``: list, show, publish, push and remove published resizers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from downsizenet_hub import hub, paths
from downsizenet_hub.cli.common import USER_ERRORS, fail
from downsizenet_hub.hub import PublishedResizer

app = typer.Typer(
    help=(
        "Published resizers: the local hub (DOWNSIZENET_HOME/hub), the ones shipped with the "
        "package, and the Hugging Face Hub."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


NameArg = Annotated[
    str,
    typer.Argument(
        help="A resizer: local-hub or shipped name (namespace/name), folder, or repo id."
    ),
]
LocalNameArg = Annotated[str, typer.Argument(help="A name in the local hub: namespace/name.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace an existing resizer of that name.")
]


@app.command("list")
def list_command() -> None:
    """Show every published resizer as a table: local hub first, then the shipped ones."""
    try:
        entries = hub.list_published()
    except USER_ERRORS as error:
        raise fail(error) from None
    if not entries:
        typer.echo(f"No published resizers (local hub: {paths.hub_dir()}).")
        return
    table = Table(title=f"Published resizers (local hub: {paths.hub_dir()})")
    table.add_column("Name", no_wrap=True, style="bold")
    for column in ("Source", "Resizer", "Trained on", "Scale", "Score", "Baseline"):
        table.add_column(column, overflow="fold")
    table.add_column("Date", no_wrap=True)
    table.add_column("Size", justify="right", no_wrap=True)
    for entry in entries:
        # Text cells: names and record fields are user text, never rich markup.
        cells = [Text(cell) for cell in _row(entry)]
        if entry.problem is not None:
            cells[3].stylize("red")
        table.add_row(*cells)
    Console().print(table)


@app.command("show")
def show_command(name: NameArg) -> None:
    """Print the model card (README.md) of a published resizer."""
    try:
        card = hub.show(name)
    except USER_ERRORS as error:
        raise fail(error) from None
    typer.echo(card, nl=False)


@app.command("publish")
def publish_command(source: NameArg, name: LocalNameArg, force: ForceOpt = False) -> None:
    """Copy a resizer (e.g. a folder written by save_pretrained) into the local hub as NAME."""
    try:
        model, record = hub.load(source)
        folder = hub.publish(model, name, record=record, force=force)
    except USER_ERRORS as error:
        raise fail(error) from None
    typer.echo(f"Published {name} to {folder}.")


@app.command("push")
def push_command(
    name: NameArg,
    repo_id: Annotated[str, typer.Argument(help="Hugging Face repo id: owner/name.")],
    private: Annotated[
        bool | None, typer.Option("--private/--public", help="Visibility of a new repo.")
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to push to [default: main].")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", help="Commit message.")] = None,
    create_pr: Annotated[
        bool, typer.Option("--create-pr", help="Open a pull request instead of committing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a resizer already in REPO_ID.")
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="Hub URL [default: HF_ENDPOINT or huggingface.co]."),
    ] = None,
) -> None:
    """Upload NAME to the Hugging Face Hub as REPO_ID, with the token from HF_TOKEN or
    `hf auth login`."""
    try:
        url = hub.push_published(
            name,
            repo_id,
            private=private,
            revision=revision,
            commit_message=message,
            create_pr=create_pr,
            force=force,
            endpoint=endpoint,
        )
    except USER_ERRORS as error:
        raise fail(error) from None
    typer.echo(f"Pushed {name} to {url}")


@app.command("remove")
def remove_command(
    name: LocalNameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete NAME from the local hub."""
    try:
        hub.validate_name(name)
        if not yes:
            typer.confirm(f"Remove {name} from the local hub?", abort=True)
        folder = hub.remove(name)
    except USER_ERRORS as error:
        raise fail(error) from None
    typer.echo(f"Removed {name} ({folder}).")


def _row(entry: PublishedResizer) -> list[str]:
    """Name, source, resizer, trained on, scale, score, baseline, date, size."""
    size = _human_bytes(entry.size_bytes)
    if entry.config is None or entry.problem is not None:
        problem = f"unreadable: {entry.problem}"
        return [entry.name, entry.source, "", problem, "", "", "", entry.date, size]
    config, record = entry.config, entry.record
    layers = f"{config.conv_layers}x{config.channels}" if config.conv_layers else "no convs"
    resizer = f"{config.neighbourhood} {layers}"
    if record is None:
        trained = scale = score = baseline = "-"
    else:
        trained = f"{record.task} on {record.dataset}"
        if record.generated_data:
            trained += " (generated)"
        scale = _scale(record)
        score = f"{record.metric} {record.score:.3f}"
        baseline = (
            f"{record.baseline} {record.baseline_score:.3f}"
            if record.baseline_score is not None
            else "-"
        )
    return [entry.name, entry.source, resizer, trained, scale, score, baseline, entry.date, size]


def _scale(record: hub.TrainingRecord) -> str:
    if record.scale_factor is not None:
        return f"x{record.scale_factor:g}"
    assert record.output_size is not None
    target = f"{record.output_size[0]}x{record.output_size[1]}"
    if record.input_size:
        return f"{record.input_size[0]}x{record.input_size[1]}->{target}"
    return f"->{target}"


def _human_bytes(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"
