"""``downsizenet export``: a resizer, bound to one output size or scale, to ONNX or TorchScript."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from downsizenet_hub.cli.common import PluginOpt, parse_size, user_errors
from downsizenet_hub.cli.resize import OutputScaleOpt, OutputSizeOpt, resize_target


def export(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="A published resizer (name, folder or hf-hub:owner/name) or a fixed one.",
        ),
    ],
    onnx: Annotated[Path | None, typer.Option("--onnx", help="Write an ONNX file here.")] = None,
    torchscript: Annotated[
        Path | None, typer.Option("--torchscript", help="Write a TorchScript file here.")
    ] = None,
    size: OutputSizeOpt = None,
    scale: OutputScaleOpt = None,
    input_size: Annotated[
        str | None,
        typer.Option(
            "--input-size",
            help="Input HxW; required for a fixed-size export, the example size with --dynamic.",
        ),
    ] = None,
    dynamic: Annotated[
        bool,
        typer.Option(
            "--dynamic",
            help="ONNX only: dynamic input height and width (the batch is always dynamic); "
            "with --scale the output size follows the input.",
        ),
    ] = False,
    plugin: PluginOpt = None,
) -> None:
    """Export NAME bound to --size or --scale, and check the file against PyTorch (1e-4).

    \b
    Example:
      downsizenet export me/seg --onnx seg.onnx --scale 0.35 --input-size 512x512
    """
    from downsizenet_hub.atomic import refuse_non_regular
    from downsizenet_hub.tools.export import export_onnx, export_torchscript

    with user_errors():
        if (onnx is None) == (torchscript is None):
            raise ValueError("give exactly one of --onnx FILE or --torchscript FILE.")
        target = onnx if onnx is not None else torchscript
        assert target is not None
        refuse_non_regular(target)  # before any work: a device or FIFO is never replaced
        target_size, target_scale = resize_target(size, scale)
        example = parse_size(input_size, "--input-size")
        if example is None and not (dynamic and onnx is not None):
            raise ValueError(
                "a fixed-size export needs --input-size HxW (or --onnx with --dynamic)."
            )
        if torchscript is not None:
            if dynamic:
                raise ValueError(
                    "--dynamic needs --onnx: a TorchScript trace records the sampling geometry "
                    "of one input size (its batch size stays dynamic)."
                )
            result = export_torchscript(
                name, torchscript, size=target_size, scale_factor=target_scale, input_size=example
            )
        else:
            assert onnx is not None
            result = export_onnx(
                name,
                onnx,
                size=target_size,
                scale_factor=target_scale,
                input_size=example,
                dynamic=dynamic,
            )
    shape_in = "(" + ", ".join(str(v) for v in result.input_shape) + ")"
    shape_out = "(" + ", ".join(str(v) for v in result.output_shape) + ")"
    typer.echo(
        f"wrote {result.path}: {shape_in} -> {shape_out}; max difference from PyTorch "
        f"{result.max_abs_error:.1e} over {len(result.checked_shapes)} input shapes"
    )
