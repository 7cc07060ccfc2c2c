"""``downsizenet hub``: list, show, publish, push and remove published resizers."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from downsizenet_hub.cli.common import PluginOpt, user_errors

if TYPE_CHECKING:
    from rich.console import Console

    from downsizenet_hub.hub import PublishedResizer, TrainingRecord

app = typer.Typer(
    help=(
        "Published resizers: the local hub (DOWNSIZENET_HOME/hub), the ones shipped with the "
        "package, and the Hugging Face Hub (hf-hub:owner/name)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="A resizer: a local-hub or shipped name (namespace/name), a folder, or "
        "hf-hub:owner/name[@revision] on the Hugging Face Hub.",
    ),
]
LocalNameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="A name in the local hub: namespace/name.")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace an existing resizer of that name.")
]
#: Columns of ``hub list``, short enough for 80 columns; ``hub show`` prints everything else.
LIST_COLUMNS = ("NAME", "FROM", "RESIZER", "TRAINED FOR", "SCORE")


@app.command("list")
def list_command(plugin: PluginOpt = None) -> None:
    """List published resizers: local hub first, then the shipped ones.

    On a terminal, one block per resizer that reads at 80 columns; piped, one tab-separated
    line per resizer under a header line (for grep and cut). `downsizenet hub show NAME` has the
    rest.
    """
    from downsizenet_hub import hub, paths

    with user_errors():
        entries = hub.list_published()
    if not entries:
        typer.echo(f"No published resizers (local hub: {paths.hub_dir()}).")
        return
    rows = [list_row(entry) for entry in entries]
    if sys.stdout.isatty():
        from rich.console import Console

        print_table(rows, Console(), local_hub=str(paths.hub_dir()))
    else:
        for row in [list(LIST_COLUMNS), *rows]:
            typer.echo("\t".join(cell.replace("\t", " ") for cell in row))


@app.command("show")
def show_command(name: NameArg, plugin: PluginOpt = None) -> None:
    """Print the model card (README.md) of a published resizer."""
    from downsizenet_hub import hub

    with user_errors():
        card = hub.show(name)
    typer.echo(card, nl=False)


@app.command("publish", short_help="Copy a resizer into the local hub as NAME.")
def publish_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="A folder written by save_pretrained, a published name, or "
            "hf-hub:owner/name[@revision].",
        ),
    ],
    name: LocalNameArg,
    force: ForceOpt = False,
    plugin: PluginOpt = None,
) -> None:
    """Copy SOURCE (a folder written by save_pretrained, say) into the local hub as NAME."""
    from downsizenet_hub import hub

    with user_errors():
        model, record = hub.load(source)
        folder = hub.publish(model, name, record=record, force=force)
    typer.echo(f"Published {name} to {folder}.")


@app.command("push", short_help="Upload NAME to the Hugging Face Hub as REPO_ID.")
def push_command(
    name: NameArg,
    repo_id: Annotated[
        str, typer.Argument(metavar="REPO_ID", help="Hugging Face repo id: owner/name.")
    ],
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
    plugin: PluginOpt = None,
) -> None:
    """Upload NAME to the Hugging Face Hub as REPO_ID, with the token from HF_TOKEN or
    'hf auth login'."""
    from downsizenet_hub import hub

    with user_errors():
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
    typer.echo(f"Pushed {name} to {url}")


@app.command("remove")
def remove_command(
    name: LocalNameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete NAME from the local hub."""
    from downsizenet_hub import hub

    with user_errors():
        hub.validate_name(name)
        if not yes:
            typer.confirm(f"Remove {name} from the local hub?", abort=True)
        folder = hub.remove(name)
    typer.echo(f"Removed {name} ({folder}).")


def print_table(rows: list[list[str]], console: Console, *, local_hub: str) -> None:
    """``hub list`` on a terminal: per source, one block per resizer that reads at 80 columns.

    The name and what it was trained for on the first line, then, indented, the resizer and one
    line per measured difference. Lines wrap between words only (a word longer than the whole
    line, which no name or score is, folds).
    """
    from rich.padding import Padding
    from rich.text import Text

    titles = {"local": f"Local hub ({local_hub})", "shipped": "Shipped with downsizenet-hub"}
    for source, title in titles.items():
        chosen = [row for row in rows if row[1] == source]
        if not chosen:
            continue
        console.print(Text(title, style="bold underline"), overflow="fold")
        for name, _, resizer, trained, score in chosen:
            first = Text(name, style="bold")
            if trained and trained != "-":
                first.append(f"  {trained}")
            console.print(Padding(first, (0, 0, 0, 2)), overflow="fold")
            details = [resizer] + [part for part in score.split("; ") if part and part != "-"]
            for line in details:
                text = Text(line, style="red" if line.startswith("unreadable") else "")
                console.print(Padding(text, (0, 0, 0, 6)), overflow="fold")


#: C0 and C1 control characters (newline, tab, escape...): a record edited by hand may hold
#: them, and they would break the tab-separated lines or drive the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def list_row(entry: PublishedResizer) -> list[str]:
    """Name, source, resizer, what it was trained for, score beside the baseline; each cell one
    line (control characters such as newlines become spaces)."""
    return [_CONTROL.sub(" ", cell) for cell in _row(entry)]


def _row(entry: PublishedResizer) -> list[str]:
    from downsizenet_hub.hub.architectures import describe  # torch-free

    if entry.config is None or entry.problem is not None:
        # Short: file names inside the resizer's folder, its name for the folder itself.
        problem = str(entry.problem).replace(f"{entry.path}{os.sep}", "")
        problem = problem.replace(str(entry.path), entry.name)
        return [entry.name, entry.source, f"unreadable: {problem}", "", ""]
    record = entry.record
    if record is None:
        return [entry.name, entry.source, describe(entry.config), "-", "-"]
    task = record.task.split(" ")[0]
    headline = record.headline()
    if headline:  # measured over seeds by a study: the difference that matters
        score = "; ".join(
            f"{d.task.split(' (')[0]} {d.metric} {d.describe()} vs {d.baseline}" for d in headline
        )
    elif record.baseline_score is not None:  # one run (or a mean over seeds) beside its baseline
        difference = record.score - record.baseline_score
        score = (
            f"{task} {record.metric} {difference:+.3g} vs {record.baseline} "
            f"(n={record.n_seeds or 1})"
        )
    else:
        score = f"{task} {record.metric} {record.score:.4g}"
    trained = f"{record.task} {_scale(record)}"
    return [entry.name, entry.source, describe(entry.config), trained, score]


def _scale(record: TrainingRecord) -> str:
    if record.scale_factor is not None:
        return f"x{record.scale_factor:g}"
    assert record.output_size is not None
    target = f"{record.output_size[0]}x{record.output_size[1]}"
    if record.input_size:
        return f"{record.input_size[0]}x{record.input_size[1]}->{target}"
    return f"->{target}"
