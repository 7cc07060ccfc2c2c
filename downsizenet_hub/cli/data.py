"""``downsizenet data``: build the scenes benchmark and look at samples."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from downsizenet_hub.cli.common import MAX_SCENES, FamilyOpt, ItemsOpt, user_errors
from downsizenet_hub.resizing.limits import check_memory

if TYPE_CHECKING:
    from downsizenet_hub.experiments.common import DataOptions

app = typer.Typer(
    help="Datasets: build the built-in scenes benchmark, draw samples.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
#: Train scenes when --images is not given: ``data.scenes.PRESETS["default"][0]`` (a test checks
#: they agree; importing the generator here would slow down every help screen).
DEFAULT_IMAGES = 1600
#: Memory one scene takes while it is composed and written, per pixel of its square (float32 RGB
#: working copies, the mask, the encoder's buffers): 40 bytes measured at 4000 px; a floor of 32.
SCENE_BYTES_PER_PIXEL = 32


def run_label(data: DataOptions) -> str:
    """What makes a training run's data differ, as a folder name: ``scenes-noisy-large-x0.3``
    (dataset, variant, item layout and family for the built-in scenes, and the resize), so that
    runs on other data never share a run folder and their progress lines say which is which."""
    from downsizenet_hub.data.composition import DEFAULT_FAMILY  # loaded with DataOptions

    items = ""
    if data.name == "scenes" and data.root is None:
        items = f"-{data.items}" + ("" if data.family == DEFAULT_FAMILY else f"-fam{data.family}")
    return f"{data.name}-{data.variant}{items}-{data.describe_resize()}"


@app.command("scenes", short_help="Build the scenes benchmark into a folder (VOC layout).")
def scenes_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the scenes to (VOC layout).")],
    images: Annotated[
        int, typer.Option("--images", max=MAX_SCENES, help="Number of train scenes.")
    ] = DEFAULT_IMAGES,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed; the same seed gives the same files.")
    ] = 0,
    size: Annotated[int, typer.Option("--size", help="Scene side in pixels.")] = 300,
    val_images: Annotated[
        int | None,
        typer.Option(
            "--val-images",
            max=MAX_SCENES,
            help="Number of val scenes (default: a quarter of --images).",
        ),
    ] = None,
    items: ItemsOpt = "large",
    family: FamilyOpt = "all",
) -> None:
    """Build the scenes benchmark into OUT (reused if OUT already holds the same build).

    \b
    Example:
      downsizenet data scenes --out scenes-small --items small --images 40
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from downsizenet_hub.data import scenes
    from downsizenet_hub.data.composition import DEFAULT_FAMILY

    with user_errors():
        # An unknown layout or family fails before anything is written.
        layout = scenes.scene_layout(items, family)
        check_memory(f"--size {size}", size * size * SCENE_BYTES_PER_PIXEL)
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
                images,
                seed,
                size,
                val_images=val_images,
                config=layout,
                out=out,
                progress=progress,
            )
    manifest = scenes.read_manifest(root)
    counts = manifest["images"]
    typer.echo(
        f"{root}: {counts['train']} train + {counts['val']} val scenes of {size} px (seed {seed}), "
        f"{items} items" + ("." if family == DEFAULT_FAMILY else f", family {family}.")
    )


@app.command("show", short_help="Draw samples with their masks and boxes into a PNG.")
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
    from downsizenet_hub.data import render

    with user_errors():
        written = render.save_sample_grid(root, out, count=n, split=split, variant=variant)
    typer.echo(f"Wrote {written}.")
