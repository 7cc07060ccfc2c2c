"""Export a resizer, bound to one output size or scale factor, to ONNX or TorchScript.

Every export is checked before it is kept: the written file is run (onnxruntime, or
``torch.jit.load``) on random images and compared with the PyTorch resizer; a difference above
``atol`` (1e-4 by default) raises :class:`ExportError` and leaves no file behind.

What can be exported (input ``(B, C, H, W)`` float32 in [0, 1], output ``(B, C, h, w)``, the
batch size always dynamic):

* ONNX, fixed input size: DownsizeNet with a ``size`` or a ``scale_factor``; fixed resizers
  whose ONNX translation matches PyTorch.
* ONNX, dynamic input height and width (``dynamic=True``): DownsizeNet with a ``scale_factor``
  only (output ``floor(H * s)``) and only when ``1 / s`` survives float32 rounding (below);
  fixed resizers whose translation matches PyTorch on the checked sizes.
* TorchScript: a fixed input size only, every resizer. Tracing records the geometry of one input
  size; a scripted guard refuses other sizes instead of resizing them wrongly.

Why dynamic input sizes are limited for DownsizeNet: the dynamo ONNX exporter computes the in-graph
sampling geometry with float32 scalars; see :mod:`.export_geometry`. The scales that pass (0.25,
0.3, 0.35, 0.4, 0.5, ...; not e.g. 0.6) still shift sampling positions by about ``6e-8 * H`` pixels,
well below 1e-4 up to inputs of a few thousand pixels. The output size itself can never be a runtime
input: the resizer takes it as Python ints.

This file is about 400 lines because ONNX and TorchScript share the one checked, atomic write
(:func:`_write_checked`) and the input checks; the geometry that decides what can be exported is
in :mod:`.export_geometry`.

Fixed resizers (``F.interpolate``) export through PyTorch's translation of the interpolation op,
which differs from PyTorch in some cases (seen with torch 2.14: ``antialias`` with a scale factor,
``area`` with a dynamic input, ``nearest`` with some sizes); the check refuses those.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from downsizenet_hub.atomic import write_atomic_path
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.downsizenet import DownsizeNet, resize_memory_estimate
from downsizenet_hub.resizing.limits import check_memory
from downsizenet_hub.resizing.target import ScaleArg, SizeArg, resize_target
from downsizenet_hub.tools.export_geometry import (
    BoundResizer,
    cache_free,
    check_dynamic_possible,
    warmed,
)

#: Largest difference from PyTorch an export may show on the check images.
DEFAULT_ATOL = 1e-4
INPUT_NAME = "images"
OUTPUT_NAME = "resized"
_EXAMPLE_BATCH = 2  # not 1: exporters specialise dimensions of size 1


class ExportError(ValueError):
    """The exporter failed, or the exported model does not match PyTorch."""


@dataclass(frozen=True)
class ExportResult:
    """What was written and how well it matches PyTorch."""

    path: Path
    input_shape: tuple[int | str, ...]  # e.g. ("batch", 3, 320, 320); names mark dynamic dims
    output_shape: tuple[int | str, ...]
    max_abs_error: float  # largest difference from PyTorch over the checked shapes
    checked_shapes: tuple[tuple[int, ...], ...]  # the input shapes the check ran


def export_onnx(
    resizer: nn.Module | str,
    path: str | os.PathLike[str],
    *,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    dynamic: bool = False,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
) -> ExportResult:
    """Export to ONNX with the dynamo exporter and check it with onnxruntime.

    Args:
        resizer: a resizer module or a reference for
            :func:`~downsizenet_hub.registry.create_resizer`.
        path: the ``.onnx`` file to write (atomically).
        size, scale_factor: the bound output, exactly one.
        input_size: ``(H, W)`` of the input; required unless ``dynamic`` (then the example size).
        channels: image channels (default: what the resizer reads, else 3).
        dynamic: input height and width dynamic (the batch always is); see the module table.
        opset: ONNX opset (default: the exporter's).
        atol: the largest difference from PyTorch accepted by the check.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from downsizenet_hub import DownsizeNet
        >>> target = Path(tempfile.mkdtemp()) / "resizer.onnx"
        >>> result = export_onnx(DownsizeNet(), target, size=(32, 32), input_size=(80, 80))
        >>> result.input_shape, result.output_shape, result.max_abs_error < 1e-4
        (('batch', 3, 80, 80), ('batch', 3, 32, 32), True)
    """
    net, bound, channels, example_size = _prepare(
        resizer, size, scale_factor, input_size, channels, dynamic
    )
    if dynamic:
        check_dynamic_possible(net, size, scale_factor)
    example = _images((_EXAMPLE_BATCH, channels, *example_size), seed=0)
    batch_dim = torch.export.Dim.DYNAMIC
    axes: dict[int, Any] = {0: batch_dim}
    if dynamic:
        axes.update({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC})
    checks = _check_shapes(channels, example_size, dynamic)

    def write(temporary: Path) -> None:
        with _quiet():
            torch.onnx.export(
                cache_free(bound) if dynamic else warmed(bound, example),
                (example,),
                str(temporary),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(axes,),
                opset_version=opset,
                external_data=False,  # one self-contained file (the weights are tiny)
                verbose=False,
            )
        _add_metadata(temporary, net, size, scale_factor, dynamic)

    def run(temporary: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(temporary), providers=["CPUExecutionProvider"])
        return lambda images: torch.from_numpy(session.run(None, {INPUT_NAME: images.numpy()})[0])

    error = _write_checked(Path(path), write, run, bound, checks, atol, "ONNX")
    out_example = _output_shape(example_size, size, scale_factor)
    spatial_in: tuple[int | str, ...] = ("height", "width") if dynamic else tuple(example_size)
    spatial_out: tuple[int | str, ...]
    if dynamic and scale_factor is not None:
        spatial_out = ("floor(height * s)", "floor(width * s)")
    else:
        spatial_out = tuple(out_example)
    return ExportResult(
        Path(path),
        ("batch", channels, *spatial_in),
        ("batch", channels, *spatial_out),
        error,
        tuple(checks),
    )


def export_torchscript(
    resizer: nn.Module | str,
    path: str | os.PathLike[str],
    *,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    atol: float = DEFAULT_ATOL,
) -> ExportResult:
    """Export to TorchScript (traced, fixed input size, dynamic batch) and check it.

    The saved module refuses inputs of another channel count or size with a ``ValueError``
    rather than resizing them with the wrong geometry. Load it with ``torch.jit.load(path)``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from downsizenet_hub import DownsizeNet
        >>> target = Path(tempfile.mkdtemp()) / "resizer.pt"
        >>> result = export_torchscript(
        ...     DownsizeNet(), target, scale_factor=0.5, input_size=(64, 64))
        >>> result.output_shape
        ('batch', 3, 32, 32)
        >>> torch.jit.load(str(target))(torch.rand(5, 3, 64, 64)).shape
        torch.Size([5, 3, 32, 32])
    """
    if input_size is None:
        raise ValueError("TorchScript export needs input_size=(H, W): it records one input size.")
    _, bound, channels, example_size = _prepare(
        resizer, size, scale_factor, input_size, channels, False
    )
    example = _images((_EXAMPLE_BATCH, channels, *example_size), seed=0)
    checks = _check_shapes(channels, example_size, dynamic=False)

    def write(temporary: Path) -> None:
        with _quiet():
            traced = torch.jit.trace(warmed(bound, example), (example,), check_trace=False)
            guarded = torch.jit.script(_FixedInputShape(traced, channels, *example_size))
        guarded.save(str(temporary))

    def run(temporary: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        with _quiet():
            loaded = torch.jit.load(str(temporary))
        return lambda images: loaded(images)

    error = _write_checked(Path(path), write, run, bound, checks, atol, "TorchScript")
    out_example = _output_shape(example_size, size, scale_factor)
    return ExportResult(
        Path(path),
        ("batch", channels, *example_size),
        ("batch", channels, *out_example),
        error,
        tuple(checks),
    )


class _FixedInputShape(nn.Module):
    """Scripted guard around a traced resizer: other input shapes would use the wrong geometry."""

    def __init__(self, traced: nn.Module, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.traced = traced
        self.channels = channels
        self.height = height
        self.width = width
        self.message = (
            f"this exported resizer takes (B, {channels}, {height}, {width}) float images; "
            "export another one for other sizes."
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if (
            images.dim() != 4
            or images.size(1) != self.channels
            or images.size(2) != self.height
            or images.size(3) != self.width
        ):
            raise ValueError(self.message)
        return self.traced(images)


def _prepare(
    resizer: nn.Module | str,
    size: SizeArg | None,
    scale_factor: ScaleArg | None,
    input_size: tuple[int, int] | None,
    channels: int | None,
    dynamic: bool,
) -> tuple[nn.Module, BoundResizer, int, tuple[int, int]]:
    net = create_resizer(resizer).eval()
    if channels is None:
        reads = isinstance(net, DownsizeNet) and net.config.conv_layers > 0
        channels = net.config.in_channels if reads and isinstance(net, DownsizeNet) else 3
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}.")
    if input_size is None:
        if not dynamic:
            raise ValueError("a fixed-size export needs input_size=(H, W) (or dynamic=True).")
        input_size = _default_example_size(size)
    example_size = _check_input_size(input_size)
    bound = BoundResizer(net, size, scale_factor).eval()
    # Fails early, with the resizer's own message, on e.g. a scale that leaves no pixel.
    resize_target(size, scale_factor).output_size(example_size)
    _check_memory(net, channels, example_size, size, scale_factor, dynamic)
    return net, bound, channels, example_size


def _check_memory(
    net: nn.Module,
    channels: int,
    example_size: tuple[int, int],
    size: SizeArg | None,
    scale_factor: ScaleArg | None,
    dynamic: bool,
) -> None:
    """MemoryLimitError naming input_size if the largest check batch cannot be resized here."""
    estimate = max(
        resize_memory_estimate(net, shape, size, scale_factor)  # type: ignore[arg-type]
        for shape in _check_shapes(channels, example_size, dynamic)
    )
    check_memory(f"input_size={example_size} (the export is checked at this size)", estimate)


def _write_checked(
    path: Path,
    write: Callable[[Path], None],
    run: Callable[[Path], Callable[[torch.Tensor], torch.Tensor]],
    reference: nn.Module,
    shapes: list[tuple[int, ...]],
    atol: float,
    kind: str,
) -> float:
    """Write to a temporary file, compare with ``reference``, then move it to ``path``: a file
    that fails the check never replaces what ``path`` held."""
    worst = 0.0

    def write_and_check(temporary: Path) -> None:
        nonlocal worst
        try:
            write(temporary)
        except Exception as error:  # exporters raise many types; report them in one line
            raise ExportError(f"the {kind} exporter failed: {_one_line(error)}") from error
        exported = run(temporary)
        for number, shape in enumerate(shapes):
            images = _images(shape, seed=1 + number)
            with torch.no_grad():
                expected = reference(images)
            try:
                with torch.no_grad():
                    got = exported(images)
            except Exception as error:
                raise ExportError(
                    f"the exported {kind} model fails on input {shape}: {_one_line(error)}"
                ) from error
            if tuple(got.shape) != tuple(expected.shape):
                raise ExportError(
                    f"the exported {kind} model gives shape {tuple(got.shape)} for input {shape}, "
                    f"PyTorch gives {tuple(expected.shape)}."
                )
            worst = max(worst, float((got - expected).abs().max()))
            if worst > atol:
                raise ExportError(
                    f"the exported {kind} model differs from PyTorch by {worst:.2e} (> {atol:g}) "
                    f"on input {shape}; this resizer/size combination does not export faithfully."
                )

    write_atomic_path(path, write_and_check)
    return worst


def _add_metadata(
    path: Path, net: nn.Module, size: SizeArg | None, scale_factor: ScaleArg | None, dynamic: bool
) -> None:
    import onnx

    model = onnx.load(str(path))
    entries = {
        "downsizenet.resizer": type(net).__name__ + "(" + net.extra_repr() + ")",
        "downsizenet.target": f"size={size}"
        if size is not None
        else f"scale_factor={scale_factor}",
        "downsizenet.input": "float32 (batch, C, H, W) in [0, 1]",
        "downsizenet.dynamic_input_size": str(dynamic),
    }
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _check_shapes(channels: int, example: tuple[int, int], dynamic: bool) -> list[tuple[int, ...]]:
    height, width = example
    shapes: list[tuple[int, ...]] = [
        (_EXAMPLE_BATCH, channels, height, width),
        (1, channels, height, width),
    ]
    if dynamic:
        shapes += [(3, channels, height + 13, width + 7), (1, channels, 2 * height - 1, width + 31)]
    return shapes


def _default_example_size(size: SizeArg | None) -> tuple[int, int]:
    if size is None:
        return (256, 256)
    h, w = size if isinstance(size, (tuple, list, torch.Size)) else (size, size)
    return (2 * int(h) + 1, 2 * int(w) + 1)


def _check_input_size(input_size: Any) -> tuple[int, int]:
    if (
        not isinstance(input_size, (tuple, list))
        or len(input_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 1 for v in input_size)
    ):
        raise ValueError(f"input_size must be (H, W) integers above 1, got {input_size!r}.")
    return int(input_size[0]), int(input_size[1])


def _output_shape(
    input_size: tuple[int, int], size: SizeArg | None, scale_factor: ScaleArg | None
) -> tuple[int, int]:
    return resize_target(size, scale_factor).output_size(input_size)


def _images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporters print progress and warn about tracing; keep the command output to our lines."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
