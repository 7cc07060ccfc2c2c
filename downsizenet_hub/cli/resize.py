"""``downsizenet resize``: a folder or glob of images through a resizer, same names and formats."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from downsizenet_hub.cli.common import (
    DeviceOpt,
    PluginOpt,
    ProgressOpt,
    parse_size,
    user_errors,
)
from downsizenet_hub.resizing.limits import check_memory

if TYPE_CHECKING:
    import torch

    from downsizenet_hub.tools.folder_resize import ResizeTask

#: Exit code when some files could not be resized (bad options exit with 2).
SOME_FAILED_EXIT = 1
#: ``resizers.FIXED_RESIZERS`` as the help text names them (a test checks they agree; importing
#: torch here would slow down every help screen).
FIXED_RESIZER_NAMES = ("bilinear", "bicubic", "area", "antialias", "nearest")

ResizerOpt = Annotated[
    str,
    typer.Option(
        "--resizer",
        help=f"{', '.join(FIXED_RESIZER_NAMES)}, or a published resizer (name, folder or "
        "hf-hub:owner/name).",
    ),
]
#: --scale and --size of the commands that only resize (resize, export): the output of the
#: resizer given, not of "the resizer under test" of a training command.
OutputScaleOpt = Annotated[
    float | None,
    typer.Option(
        "--scale",
        metavar="S",
        help="Scale factor of the output, e.g. 0.35: each side becomes floor(side x S).",
    ),
]
OutputSizeOpt = Annotated[
    str | None,
    typer.Option("--size", metavar="HxW", help="Output size instead of --scale, e.g. 160x160."),
]


def resize_target(
    size: str | None, scale: float | None
) -> tuple[tuple[int, int] | None, float | None]:
    """``--size HxW`` or ``--scale S``, exactly one, checked by the resizing core's one check
    (:func:`downsizenet_hub.resizing.target.resize_target`; a ValueError naming the options)."""
    from downsizenet_hub.resizing import target

    parsed = parse_size(size)
    target.resize_target(parsed, scale, names=("--size", "--scale"))
    return parsed, scale


def check_resize_memory(
    tasks: list[ResizeTask],
    model: torch.nn.Module,
    size: tuple[int, int] | None,
    scale: float | None,
    batch_size: int,
) -> None:
    """Refuse --size / --scale before any file is written if one batch of the images cannot fit
    in memory (MemoryLimitError). Unreadable files, and sizes the target cannot resize, are left
    to resize_files to report."""
    from downsizenet_hub.imageio import ImageFileError, read_header
    from downsizenet_hub.resizing.downsizenet import resize_memory_estimate

    batches: dict[tuple[int, int, int], int] = {}
    for task in tasks:
        try:
            header = read_header(task.source)
        except ImageFileError:
            continue
        key = (header.channels, header.height, header.width)
        batches[key] = min(batches.get(key, 0) + 1, batch_size)
    option = f"--size {size[0]}x{size[1]}" if size is not None else f"--scale {scale:g}"
    for (channels, height, width), batch in batches.items():
        try:
            estimate = resize_memory_estimate(model, (batch, channels, height, width), size, scale)
        except ValueError:  # e.g. a 1x1 image that --scale shrinks to nothing: skipped, named,
            continue  # by resize_files like any other file it cannot resize
        check_memory(f"{option} on {batch} image(s) of {height}x{width} px", estimate)


def resolve_device(text: str) -> torch.device:
    """``auto`` (CUDA if present, else CPU) or a torch device string."""
    import torch

    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise ValueError(f"--device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text}: CUDA is not available on this machine.")
    return device


def resize(
    inputs: Annotated[
        str,
        typer.Argument(
            metavar="IN",
            help="A folder (searched recursively), an image file, or a quoted glob ('a/*.jpg').",
        ),
    ],
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="Output folder; must not be the input folder or inside it."
        ),
    ],
    resizer: ResizerOpt,
    size: OutputSizeOpt = None,
    scale: OutputScaleOpt = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images of the same size resized together.")
    ] = 16,
    device: DeviceOpt = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace output files that already exist.")
    ] = False,
    progress: ProgressOpt = True,
    plugin: PluginOpt = None,
) -> None:
    """Resize every image in IN into OUT, keeping relative names, format and mode.

    Grayscale images through a 3-channel learned resizer use the gray picture as RGB; alpha is
    premultiplied while resizing (see downsizenet_hub.tools.channels). Unreadable files are
    reported and skipped; the exit code is 1 if any file failed.

    \b
    Example:
      downsizenet resize photos/ small/ --resizer bilinear --scale 0.35
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from downsizenet_hub.registry import create_resizer
    from downsizenet_hub.tools.folder_resize import plan_resize, resize_files

    with user_errors():
        target_size, target_scale = resize_target(size, scale)
        tasks = plan_resize(inputs, out, overwrite=overwrite)
        model = create_resizer(resizer)
        run_on = resolve_device(device)
        check_resize_memory(tasks, model, target_size, target_scale, batch_size)
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    with Progress(
        TextColumn("resizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=not progress,
        transient=True,
    ) as bar:
        task_id = bar.add_task("resize", total=len(tasks))

        def on_done(task: ResizeTask, error: str | None) -> None:
            if error is not None:
                bar.console.print(f"skipped: {error}", markup=False)
            bar.advance(task_id)

        report = resize_files(
            tasks,
            model,
            size=target_size,
            scale_factor=target_scale,
            batch_size=batch_size,
            device=run_on,
            on_done=on_done,
        )
    typer.echo(f"resized {len(report.written)} of {len(tasks)} images into {out}")
    if report.failed:
        typer.echo(
            f"{len(report.failed)} file(s) failed; see the 'skipped:' lines above.", err=True
        )
        raise typer.Exit(code=SOME_FAILED_EXIT)
