"""``downsizenet data``: build the scenes benchmark and look at samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from downsizenet_hub.cli.common import USER_ERRORS, fail
from downsizenet_hub.data import render, scenes

app = typer.Typer(
    help="Datasets: build the built-in scenes benchmark, draw samples.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("scenes")
def scenes_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the scenes to (VOC layout).")],
    images: Annotated[
        int, typer.Option("--images", help="Number of train scenes.")
    ] = scenes.PRESETS["default"][0],
    seed: Annotated[
        int, typer.Option("--seed", help="Seed; the same seed gives the same files.")
    ] = 0,
    size: Annotated[int, typer.Option("--size", help="Scene side in pixels.")] = 300,
    val_images: Annotated[
        int | None,
        typer.Option("--val-images", help="Number of val scenes (default: a quarter of --images)."),
    ] = None,
) -> None:
    """Build the scenes benchmark into OUT (reused if OUT already holds the same build)."""
    try:
        with Progress(
            TextColumn("building scenes"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("scenes", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            root = scenes.ensure_scenes(
                images, seed, size, val_images=val_images, out=out, progress=progress
            )
    except USER_ERRORS as error:
        raise fail(error) from None
    manifest = scenes.read_manifest(root)
    counts = manifest["images"]
    typer.echo(
        f"{root}: {counts['train']} train + {counts['val']} val scenes of {size} px (seed {seed})."
    )


@app.command("show")
def show_command(
    root: Annotated[
        Path, typer.Argument(help="A scenes folder (built by `downsizenet data scenes`).")
    ],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write the grid to.")],
    n: Annotated[int, typer.Option("--n", help="Number of samples to draw.")] = 8,
    split: Annotated[str, typer.Option("--split", help="train or val.")] = "train",
    variant: Annotated[str, typer.Option("--variant", help="clean or noisy.")] = "clean",
) -> None:
    """Draw the first N samples of ROOT with their masks and boxes into one PNG grid."""
    try:
        written = render.save_sample_grid(root, out, count=n, split=split, variant=variant)
    except USER_ERRORS as error:
        raise fail(error) from None
    typer.echo(f"Wrote {written}.")
