"""The resize target: an output size or a scale factor, validated once, and the geometry it implies.

A resize is asked for in one of two ways, exactly as ``F.interpolate`` takes it:

* ``size=(h, w)`` (an int means square): the output has that size, and each output pixel steps
  ``in / out`` input pixels;
* ``scale_factor=s`` (or ``(sy, sx)``): the output has ``floor(in * s)`` pixels per side, and each
  output pixel steps ``1 / s`` input pixels (PyTorch's rule, which differs from ``in / out``
  because of the floor: 513 px at 0.35 gives 179 px, stepping 2.857 input pixels, not 2.866).
  An axis whose length does not change is copied as is, whatever ``s`` (PyTorch's kernels do).

:func:`resize_target` checks a request once and returns a :class:`ResizeTarget`; every resizer,
tool and command of the package goes through it, so a bad request gets the same one-sentence error
everywhere. The target then gives the output size for an input size and the one coordinate map
(``align_corners=False``: pixel ``i`` spans ``[i, i + 1]`` in continuous coordinates, so input
``x`` lands at ``x / step`` in the output). Images are sampled with this map
(:mod:`.sampling`), and points, boxes and masks are moved with it, so they cannot drift apart.

Conventions of the coordinate functions: points are ``(..., 2)`` ``(x, y)`` pairs; boxes are
``(..., 4)`` in any axis-aligned format whose entries alternate x and y (XYXY, XYWH, CXCYWH: every
entry scales by its axis' ratio); both in continuous pixel coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from downsizenet_hub.resizing.limits import check_memory, check_scale_factor, resize_memory_bytes
from downsizenet_hub.resizing.sampling import coordinate_scale

SizeArg = int | tuple[int, int] | list[int] | torch.Size
ScaleArg = float | tuple[float, float] | list[float]


@dataclass(frozen=True)
class ResizeTarget:
    """A checked resize request: exactly one of ``size`` or ``scale_factor``, per axis ``(y, x)``.

    Build it with :func:`resize_target`. Example:

        >>> target = resize_target(scale_factor=0.35)
        >>> target.output_size((513, 513))
        (179, 179)
        >>> round(target.ratio((513, 513))[1], 4)  # output pixels per input pixel: s, not 179/513
        0.35
        >>> target.map_points(torch.tensor([[513.0, 0.0]]), (513, 513)).tolist()
        [[179.5500030517578, 0.0]]
    """

    size: tuple[int, int] | None
    scale_factor: tuple[float, float] | None
    #: How the request was written (``"size=(160, 160)"``), for error messages.
    asked: str = field(default="", compare=False)

    # ------------------------------------------------------------------ sizes
    def output_size(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the output for an ``(H, W)`` input; ValueError if a side has no pixel."""
        if self.size is not None:
            return self.size
        assert self.scale_factor is not None
        in_h, in_w = in_size
        sy, sx = self.scale_factor
        out = (math.floor(in_h * sy), math.floor(in_w * sx))
        if min(out) < 1:
            raise ValueError(
                f"{self.asked} shrinks a {in_h}x{in_w} image to {out[0]}x{out[1]}; the output "
                "needs at least one pixel per side."
            )
        return out

    @property
    def scales(self) -> tuple[float | None, float | None]:
        """The scale factors that set the sampling step, ``(None, None)`` for a size."""
        if self.scale_factor is None:
            return (None, None)
        return self.scale_factor

    def steps(self, in_size: tuple[int, int]) -> tuple[float, float]:
        """Input pixels per output pixel ``(y, x)`` (``1 / s``, or ``in / out`` for a size)."""
        out = self.output_size(in_size)
        sy, sx = self.scales
        return (coordinate_scale(in_size[0], out[0], sy), coordinate_scale(in_size[1], out[1], sx))

    def ratio(self, in_size: tuple[int, int]) -> tuple[float, float]:
        """Output pixels per input pixel ``(y, x)``: the inverse of :meth:`steps`."""
        step_y, step_x = self.steps(in_size)
        return (1.0 / step_y, 1.0 / step_x)

    # ------------------------------------------------------------------ coordinates
    def map_points(self, points: torch.Tensor, in_size: tuple[int, int]) -> torch.Tensor:
        """Input-image ``(x, y)`` points ``(..., 2)`` to output-image coordinates."""
        return _scale_pairs(points, self.ratio(in_size), 2)

    def unmap_points(self, points: torch.Tensor, in_size: tuple[int, int]) -> torch.Tensor:
        """Output-image ``(x, y)`` points back to the coordinates of an ``in_size`` input."""
        return _scale_pairs(points, self.steps(in_size), 2)

    def map_boxes(self, boxes: torch.Tensor, in_size: tuple[int, int]) -> torch.Tensor:
        """Axis-aligned boxes ``(..., 4)`` from the input image to the output image."""
        return _scale_pairs(boxes, self.ratio(in_size), 4)

    def unmap_boxes(self, boxes: torch.Tensor, in_size: tuple[int, int]) -> torch.Tensor:
        """Axis-aligned boxes ``(..., 4)`` from the output image back to an ``in_size`` input."""
        return _scale_pairs(boxes, self.steps(in_size), 4)

    # ------------------------------------------------------------------ calls
    def resize_kwargs(self) -> dict[str, Any]:
        """Keywords for a resizer call or ``F.interpolate``: ``size=`` or ``scale_factor=``."""
        if self.size is not None:
            return {"size": self.size}
        return {"scale_factor": self.scale_factor}

    def __str__(self) -> str:
        return self.asked


def resize_target(
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    *,
    names: tuple[str, str] = ("size", "scale_factor"),
) -> ResizeTarget:
    """Check a resize request and return its :class:`ResizeTarget`: the one place it is checked.

    Args:
        size: ``(h, w)`` positive ints (an int means square); or
        scale_factor: a finite, positive number or a pair ``(sy, sx)``. Exactly one of the two.
        names: how the caller calls the two, for the error messages: keywords by default, or
            command-line options such as ``("--size", "--scale")``.

    Raises:
        ValueError: one sentence naming the option: neither or both given, a size that is not
            positive integers, a scale factor that is not finite and positive. TypeError for a
            scale factor that is not a number.
    """
    size_name, scale_name = names
    if (size is None) == (scale_factor is None):
        raise ValueError(
            f"give exactly one of {_hint(size_name, '(h, w)', 'HxW')} or "
            f"{_hint(scale_name, 's', 'S')}."
        )
    if size is not None:
        pair = _pair(size, size_name)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
            raise ValueError(f"{size_name} must be positive integers (h, w), got {size!r}.")
        return ResizeTarget((int(pair[0]), int(pair[1])), None, _asked(size_name, size))
    factors = _pair(scale_factor, scale_name)
    sy, sx = (check_scale_factor(v, scale_name) for v in factors)
    return ResizeTarget(None, (sy, sx), _asked(scale_name, scale_factor))


def _hint(name: str, keyword_value: str, option_value: str) -> str:
    """``size=(h, w)`` for a keyword, ``--size HxW`` for a command-line option."""
    return f"{name} {option_value}" if name.startswith("-") else f"{name}={keyword_value}"


def _asked(name: str, value: Any) -> str:
    return f"{name} {value}" if name.startswith("-") else f"{name}={value!r}"


def check_images(images: Any) -> None:
    """TypeError / ValueError in one sentence unless ``images`` is a float ``B x C x H x W``
    tensor with at least one pixel per side."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if images.dim() != 4:
        raise ValueError(
            f"images must be a 4-D tensor B x C x H x W, got shape {tuple(images.shape)}."
        )
    if not images.is_floating_point():
        raise TypeError(f"images must have a floating dtype, got {images.dtype}.")
    in_h, in_w = images.shape[-2:]
    if min(in_h, in_w) < 1:
        raise ValueError(f"images must have at least one pixel per side, got {in_h}x{in_w}.")


def resolve_output_size(
    images: torch.Tensor, size: SizeArg | None, scale_factor: ScaleArg | None
) -> tuple[ResizeTarget, tuple[int, int]]:
    """Check a resize call (the images, the target, the memory a plain resize needs at least) and
    return the target and the ``(h, w)`` output size. Shared by every resizer of the package."""
    check_images(images)
    target = resize_target(size, scale_factor)
    batch, channels, in_h, in_w = images.shape
    out = target.output_size((in_h, in_w))
    if batch > 0:  # an empty batch resizes to an empty batch and allocates nothing
        estimate = resize_memory_bytes(
            batch, channels, (in_h, in_w), out, itemsize=images.element_size(), taps=1
        )
        check_memory(f"{target} ({describe_resize(images, out)})", estimate)
    return target, out


def describe_resize(images: torch.Tensor, out: tuple[int, int]) -> str:
    """``"a 2x3x300x300 batch to 160x160"``."""
    return f"a {'x'.join(str(v) for v in images.shape)} batch to {out[0]}x{out[1]}"


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list, torch.Size)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a pair (h, w), got {value!r}.")
        return value[0], value[1]
    return value, value


def _scale_pairs(values: torch.Tensor, factors: tuple[float, float], width: int) -> torch.Tensor:
    """Multiply the x entries (even columns) by ``factors[1]`` and the y entries by ``factors[0]``
    in the first ``width`` columns of the last dimension; other columns (a key point's visibility)
    are kept. Returns a new tensor of the same dtype."""
    if values.shape[-1] < width:
        raise ValueError(
            f"expected at least {width} coordinates in the last dimension, got "
            f"shape {tuple(values.shape)}."
        )
    factor_y, factor_x = factors
    scale = torch.ones(values.shape[-1], dtype=torch.float64)
    scale[0:width:2] = factor_x
    scale[1:width:2] = factor_y
    scaled = values.double() * scale.to(values.device)
    return scaled.to(values.dtype) if values.is_floating_point() else scaled.float()
