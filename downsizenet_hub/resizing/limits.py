"""Bounds on what a request may ask of the machine, checked before anything is allocated.

Two kinds of check, shared by the resizer core, the tools and the command line:

* :func:`check_scale_factor`: a scale factor is a finite, positive number (``inf`` and ``nan``
  are refused with a ValueError naming the option, not an ``OverflowError`` from deep inside).
* :func:`check_memory`: a size implies an amount of memory; a request whose estimate exceeds
  :func:`memory_limit_bytes` is refused with a :class:`MemoryLimitError` (a ValueError) in one
  sentence that names the option and the estimate.

The limit is :data:`DEFAULT_MEMORY_FRACTION` of the machine's physical memory
(``os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")``); the environment variable
``DOWNSIZENET_MAX_MEMORY_GB`` (in GiB, e.g. ``512`` or ``0.5``) replaces it, for machines with
swap or for tests. Estimates count the large tensors a request must hold at once, so they are
lower bounds: a request under the limit can still run out of memory, one over it never fits.

This module imports nothing else of the package, so the resizer core can use it.
"""

from __future__ import annotations

import math
import os

#: The environment variable that sets the memory limit, in GiB.
MEMORY_LIMIT_ENV = "DOWNSIZENET_MAX_MEMORY_GB"
#: The largest limit in bytes (2**62, 4 EiB): larger settings mean "no limit" and are capped.
_NO_LIMIT = 2**62
#: Without :data:`MEMORY_LIMIT_ENV`, requests may use this fraction of physical memory.
DEFAULT_MEMORY_FRACTION = 0.8
_GIB = 1 << 30


class MemoryLimitError(ValueError):
    """A request whose estimated memory exceeds :func:`memory_limit_bytes`."""


def _read_physical_memory() -> int | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


#: Read once, when the module is imported: a machine's physical memory does not change while a
#: process runs, and a resize call then holds no system call that ``torch.compile`` would break
#: its graph at (issue 28).
_PHYSICAL_MEMORY = _read_physical_memory()


def physical_memory_bytes() -> int | None:
    """The machine's physical memory, or None where ``os.sysconf`` cannot tell."""
    return _PHYSICAL_MEMORY


def memory_limit_bytes() -> tuple[int | None, str]:
    """The limit in bytes (None: unknown, nothing is refused) and where it comes from."""
    raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if raw:
        try:
            gib = float(raw)
        except ValueError:
            gib = math.nan
        if not math.isfinite(gib) or gib <= 0:
            raise ValueError(f"{MEMORY_LIMIT_ENV} must be a positive number of GiB, got {raw!r}.")
        # A limit past any machine (1e308 GiB) is no limit, not an OverflowError.
        return int(min(gib * _GIB, _NO_LIMIT)), f"set by {MEMORY_LIMIT_ENV}"
    physical = physical_memory_bytes()
    if physical is None:
        return None, "physical memory unknown"
    share = f"{DEFAULT_MEMORY_FRACTION:.0%} of {format_bytes(physical)} physical memory"
    return int(physical * DEFAULT_MEMORY_FRACTION), share


def format_bytes(count: float) -> str:
    """``1536 * 2**20`` -> ``"1.5 GiB"``; ``2**50`` -> ``"1 PiB"``."""
    try:
        count = float(count)
    except OverflowError:  # an estimate of hundreds of digits (``--scale 1e300``)
        count = math.inf
    if not math.isfinite(count):
        return "more bytes than a float holds"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB"


def check_memory(what: str, estimate: int) -> None:
    """Refuse ``what`` (e.g. ``"--size 100000x100000"``) if ``estimate`` bytes exceed the limit.

    Raises:
        MemoryLimitError: one sentence naming ``what``, the estimate, the limit and how to raise it.
    """
    limit, source = memory_limit_bytes()
    if limit is not None and estimate > limit:
        raise MemoryLimitError(
            f"{what} needs about {format_bytes(estimate)} of memory, more than the "
            f"{format_bytes(limit)} allowed ({source}; set {MEMORY_LIMIT_ENV} to change it)."
        )


def check_scale_factor(value: object, name: str = "scale_factor") -> float:
    """``value`` as a float if it is a finite, positive number; ValueError naming ``name`` if not.

    TypeError for a non-number (a bool is not a number here).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    try:
        number = float(value)
    except OverflowError:  # an int of hundreds of digits
        number = math.inf
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite, positive number, got {value!r}.")
    return number


def resize_memory_bytes(
    batch: int,
    channels: int,
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    *,
    itemsize: int = 4,
    taps: int = 4,
    texture_channels: int = 0,
    texture_layers: int = 0,
    autograd: bool = False,
    band_pixels: int | None = None,
    texture_images: int | None = None,
    anchor_grid: bool = False,
    anchor_rows: bool = False,
) -> int:
    """Bytes a resize of ``batch x channels x in_size`` to ``out_size`` holds at once (a floor).

    Counts the output (``itemsize`` bytes per value, twice: before and after its change of
    layout), the gathered taps (``taps`` per output pixel and channel), the float32 coefficients
    (logits and normalised weights) and the sampling geometry (an int64 index and three float32
    maps per tap, shared by the batch). With a texture branch, its float32 feature maps: one per
    layer under ``autograd`` (kept for the backward pass), else two at a time, over the input or
    over ``band_pixels`` input pixels when it runs in bands, for ``texture_images`` images at a
    time (default: the batch); and the features pooled at the output pixels. With
    ``anchor_grid``, the last layer reads a grid of 3x3 blocks around the output pixels' anchors
    (``9`` pixels per output pixel, of the band's share) instead of making a whole map: under
    ``autograd`` it is kept in that map's place, else it is held with the map it is gathered from.
    With ``anchor_rows`` (inference only), the last layer reads the three rows around each anchor
    row (``3 h`` rows of the input's width) and makes ``h`` rows, held with the map they are
    gathered from. A fixed resizer is ``taps=1`` without a texture branch.
    """
    out_pixels = out_size[0] * out_size[1]
    total = 2 * batch * channels * out_pixels * itemsize
    total += batch * out_pixels * taps * channels * itemsize
    total += 2 * batch * out_pixels * taps * 4
    total += out_pixels * taps * (8 + 3 * 4)
    if texture_channels and texture_layers:
        in_pixels = whole = in_size[0] * in_size[1]
        if band_pixels is not None:
            in_pixels = min(in_pixels, band_pixels)
        images = batch if texture_images is None else min(batch, texture_images)
        feature_map = images * texture_channels * in_pixels * 4
        before = texture_layers - 1  # whole maps before the last layer
        # What the last layer reads has the channels of the layer before it.
        last_channels = texture_channels if texture_layers > 1 else channels
        if anchor_rows and not autograd and not anchor_grid:
            share = out_size[0] * in_pixels // max(1, in_size[0])  # the anchor rows' pixels
            rows = images * (3 * last_channels + texture_channels) * share * 4
            total += max(min(2, before) * feature_map, min(1, before) * feature_map + rows)
        elif not anchor_grid:
            total += (texture_layers if autograd else 2) * feature_map
        else:
            grid = images * last_channels * 9 * out_pixels * in_pixels // max(1, whole) * 4
            if autograd:
                total += before * feature_map + grid
            else:
                total += max(min(2, before) * feature_map, min(1, before) * feature_map + grid)
        total += batch * out_pixels * texture_channels * 4
    return total


def check_output_size(option: str, size: tuple[int, int] | None, batch: int) -> None:
    """Refuse an output ``size`` (from ``option``, e.g. ``"--size"``) if a batch of ``batch``
    three-channel images resized to it cannot fit: checked before any data is prepared."""
    if size is not None:
        estimate = resize_memory_bytes(batch, 3, size, size)
        check_memory(f"{option} {size[0]}x{size[1]} with batches of {batch}", estimate)
