"""``downsizenet compare``: resizers side by side on one image, with DownsizeNet's coefficients."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from downsizenet_hub.cli.common import ScaleOpt, SizeOpt, user_errors
from downsizenet_hub.cli.resize import resize_target

if TYPE_CHECKING:
    import torch


def compare(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="The image to resize.")],
    resizers: Annotated[
        str,
        typer.Option(
            "--resizers",
            help="Comma-separated resizers, e.g. NAME,bilinear,antialias,area (NAME: a "
            "published resizer).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Figure file to write (.png, .pdf, .svg).")],
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    crop: Annotated[
        int, typer.Option("--crop", min=4, help="Side of the enlarged crop, in output pixels.")
    ] = 48,
) -> None:
    """Draw resizers' outputs at real size and enlarged, plus DownsizeNet coefficient maps.

    \b
    Example:
      downsizenet compare photo.png --resizers me/seg,bilinear,area \\
        --scale 0.3 --out g.png
    """
    from downsizenet_hub.atomic import refuse_non_regular
    from downsizenet_hub.imageio import read_image
    from downsizenet_hub.registry import create_resizer
    from downsizenet_hub.tools.compare import compare_figure, save_figure

    with user_errors():
        target_size, target_scale = resize_target(size, scale)
        refs = [ref.strip() for ref in resizers.split(",") if ref.strip()]
        if not refs:
            raise ValueError("--resizers needs at least one resizer name.")
        refuse_non_regular(out)  # before any work: a device or FIFO is never replaced
        loaded = read_image(image)
        pixels = _opaque(loaded.pixels, loaded.header.alpha)
        models = [(_label(ref), create_resizer(ref)) for ref in refs]
        try:
            figure = compare_figure(
                pixels, models, size=target_size, scale_factor=target_scale, crop_side=crop
            )
        except ValueError as error:  # e.g. a 1x1 image that --scale shrinks to nothing
            raise type(error)(f"{image}: {error}") from None
        save_figure(figure, out)
    typer.echo(f"wrote {out} ({', '.join(refs)} on {image.name})")


def _label(ref: str) -> str:
    from downsizenet_hub.registry import TRAINABLE

    return f"{ref} (fresh, untrained)" if ref == TRAINABLE else ref


def _opaque(pixels: torch.Tensor, alpha: bool) -> torch.Tensor:
    """Colour channels composited over white (the figure has no transparency)."""
    if not alpha:
        return pixels
    colour, opacity = pixels[:-1], pixels[-1:]
    return colour * opacity + (1.0 - opacity)
