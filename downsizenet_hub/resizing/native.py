"""Compiled kernels for DownsizeNet's CPU inference (optional; the eager path is the reference).

Two steps of an inference call cost more in eager PyTorch than their arithmetic:

* the texture branch's last 3x3 conv + ReLU, needed at the anchors only. The eager path
  (:mod:`.anchors`) gathers the anchors' 3x3 neighbourhoods into a grid of blocks (or their
  rows) and runs a strided convolution on it; :func:`conv3x3_relu_at` computes each anchor's
  dot products straight from the channels-last map instead;
* the convex mix of each output pixel's taps, an ``F.embedding_bag`` per image over a
  channels-last copy of the images; :func:`mix_taps` reads the images in place.

``csrc/resize_kernels.c`` holds both (plain C99 with OpenMP or POSIX threads, no PyTorch
headers). It is built on the user's machine at first use, by the C compiler on the ``PATH``
(``$CC``, else ``cc``, ``gcc`` or ``clang``; about a second), into
:func:`~downsizenet_hub.paths.kernels_dir`: one file per source, compiler, flags and machine,
written atomically, so concurrent processes never load a half-written library. Before their
first use in a process both kernels are checked against PyTorch's operators on small inputs
with borders and repeated taps. Where there is no compiler, no build loads, the library is not
ours to load (another owner, writable by others) or a check fails, :func:`kernels` is None and
the eager path runs; outputs are the same either way up to float summation order.
``DOWNSIZENET_NATIVE=0`` turns them off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from downsizenet_hub.atomic import WriteError, write_atomic_path
from downsizenet_hub.paths import kernels_dir

logger = logging.getLogger(__name__)

NATIVE_ENV = "DOWNSIZENET_NATIVE"
SOURCE = Path(__file__).resolve().parent / "csrc" / "resize_kernels.c"
_COMMON_FLAGS = ("-O3", "-ffp-contract=fast", "-std=c99", "-shared", "-fPIC")
#: Flags tried in order, until one builds, loads and passes the checks: tuned for this CPU,
#: then portable (older aarch64 compilers lack ``-march=native``); each with OpenMP, whose
#: runtime PyTorch has loaded already (its threads are awake right after the texture
#: convolutions: 1.4-2.6 ms less per 513 px image than starting POSIX threads), then without.
FLAG_SETS = (
    ("-march=native", *_COMMON_FLAGS, "-fopenmp"),
    ("-march=native", *_COMMON_FLAGS, "-pthread"),
    (*_COMMON_FLAGS, "-fopenmp"),
    (*_COMMON_FLAGS, "-pthread"),
)
#: The anchor kernel keeps its accumulators in vectors of 8 floats: it takes multiples of 8
#: output channels, up to this many (DownsizeNet's default is 16).
MAX_OUT_CHANNELS = 64
#: The anchor kernel runs where the anchors number at most this fraction of the input pixels.
#: Resizer alone, interleaved, against the eager paths (2-core x86_64, memory kept, 15
#: rounds): 0.88-0.93x the time at 513->179 (0.12; against the grid of blocks), 0.91-1.00x at
#: 300->160 (0.28; against the anchor rows), 0.94x at 300->200 (0.44), 1.06x at 300->250 (0.69).
NATIVE_MAX_RATIO = 0.5
#: How the kernels' calls are named in ``torch.profiler`` output.
ANCHOR_CONV_LABEL = "native::anchor_conv3x3_relu"
MIX_LABEL = "native::mix_taps"
_BUILD_TIMEOUT_S = 120
_INT64 = ctypes.c_int64
_POINTER = ctypes.c_void_p

Kernel = Callable[..., int]


class Kernels(NamedTuple):
    """The two C functions of one loaded library (see the module)."""

    anchor_conv: Kernel
    mix: Kernel


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else the first of cc, gcc, clang on the PATH."""
    chosen = os.environ.get("CC")
    if chosen:
        return shutil.which(chosen)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def library_path(source: bytes, cc: str, flags: tuple[str, ...]) -> Path:
    digest = hashlib.sha256()
    for part in (source, cc.encode(), " ".join(flags).encode(), platform.machine().encode()):
        digest.update(part + b"\0")
    return kernels_dir() / f"resize_kernels-{digest.hexdigest()[:16]}.so"


def _ours(path: Path) -> bool:
    """A regular file owned by this user and writable by nobody else (safe to load)."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    return not hasattr(os, "getuid") or info.st_uid == os.getuid()


def build(flags: tuple[str, ...] = FLAG_SETS[0]) -> Path | None:
    """The path of the library built with ``flags``, building it if needed; None where it
    cannot be built or is not ours to load."""
    cc = compiler()
    if cc is None:
        logger.debug("native kernels: no C compiler on the PATH")
        return None
    try:  # an unreadable source or kernels folder is a reason to stay eager, not an error
        path = library_path(SOURCE.read_bytes(), cc, flags)
        if path.exists() or path.is_symlink():
            return path if _ours(path) else None
    except OSError as error:
        logger.debug("native kernels: %s", error)
        return None

    def compile_to(target: Path) -> None:
        command = [cc, *flags, str(SOURCE), "-o", str(target)]
        subprocess.run(command, check=True, capture_output=True, timeout=_BUILD_TIMEOUT_S)

    try:
        write_atomic_path(path, compile_to)
    except (OSError, WriteError, subprocess.SubprocessError) as error:
        logger.debug("native kernels: building with %s %s failed: %s", cc, flags, error)
        return None
    return path


def load(path: Path) -> Kernels | None:
    """The kernels of the library at ``path``; None where it does not load."""
    try:
        library = ctypes.CDLL(str(path))
        anchor_conv, mix = library.anchor_conv3x3_relu, library.mix_taps
    except (OSError, AttributeError) as error:  # e.g. an OpenMP symbol PyTorch's lacks
        logger.debug("native kernels: loading %s failed: %s", path, error)
        return None
    anchor_conv.restype = mix.restype = ctypes.c_int
    anchor_conv.argtypes = [_POINTER] * 6 + [_INT64] * 9
    mix.argtypes = [_POINTER] * 4 + [_INT64] * 9
    return Kernels(anchor_conv, mix)


@functools.cache
def kernels() -> Kernels | None:
    """The compiled kernels, built, loaded and checked once per process (the first of
    :data:`FLAG_SETS` that gets that far); None where unavailable (see the module)."""
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return None
    for flags in FLAG_SETS:
        path = build(flags)
        loaded = None if path is None else load(path)
        if loaded is not None and passes_checks(loaded):
            return loaded
    return None


def pays(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether the anchor kernel is faster than the eager paths for this resize (see
    :data:`NATIVE_MAX_RATIO`)."""
    return out_size[0] * out_size[1] <= NATIVE_MAX_RATIO * in_size[0] * in_size[1]


def _float32_inference(*tensors: torch.Tensor) -> bool:
    return not torch.is_grad_enabled() and all(
        t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors
    )


def applies(features: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`conv3x3_relu_at` can run on these: float32 CPU tensors without autograd,
    a 3x3 kernel with a multiple of 8 outputs, at most :data:`MAX_OUT_CHANNELS`, and the kernels
    available."""
    return (
        _float32_inference(features, weight)
        and weight.shape[0] <= MAX_OUT_CHANNELS
        and weight.shape[0] % 8 == 0
        and tuple(weight.shape[2:]) == (3, 3)
        and kernels() is not None
    )


def mix_applies(images: torch.Tensor, coefficients: torch.Tensor) -> bool:
    """Whether :func:`mix_taps` can run on these: float32 CPU tensors without autograd, images
    whose pixels a flat index reaches (NCHW or channels-last), and the kernels available."""
    return (
        _float32_inference(images, coefficients)
        and images.stride(2) == images.shape[3] * images.stride(3)
        and kernels() is not None
    )


def _loaded() -> Kernels:
    loaded = kernels()
    if loaded is None:
        raise RuntimeError("the native kernels are not available on this machine")
    return loaded


def conv3x3_relu_at(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rows: torch.Tensor,
    cols: torch.Tensor,
    out: torch.Tensor | None = None,
    *,
    kernel: Kernel | None = None,
) -> torch.Tensor:
    """``relu(conv2d(features, weight, bias, padding=1))`` at pixels ``(rows[i], cols[j])``, as
    pixel vectors ``(B, len(rows) * len(cols), C_out)`` (row-major over the anchors), written
    into ``out`` if given (a tensor of that shape whose last two dimensions are contiguous).
    Only where :func:`applies`; ``kernel`` another build's function (tests)."""
    kernel = kernel or _loaded().anchor_conv
    batch, channels, height, width = features.shape
    out_channels = weight.shape[0]
    pixels = features.permute(0, 2, 3, 1).contiguous()  # a view when channels-last already
    packed = weight.permute(2, 3, 1, 0).contiguous()  # (3, 3, C_in, C_out)
    bias = None if bias is None else bias.contiguous()
    rows, cols = rows.contiguous(), cols.contiguous()
    shape = (batch, rows.numel() * cols.numel(), out_channels)
    if out is None:
        out = torch.empty(shape, dtype=torch.float32)
    elif out.shape != shape or out.stride(2) != 1 or out.stride(1) != out_channels:
        raise ValueError(f"out must be {shape} with contiguous pixel vectors, got {out.shape}")
    with torch.profiler.record_function(ANCHOR_CONV_LABEL):  # named in profiles
        status = kernel(
            pixels.data_ptr(),
            packed.data_ptr(),
            None if bias is None else bias.data_ptr(),
            rows.data_ptr(),
            cols.data_ptr(),
            out.data_ptr(),
            batch,
            height,
            width,
            channels,
            out_channels,
            rows.numel(),
            cols.numel(),
            out.stride(0),
            torch.get_num_threads(),
        )
    if status != 0:
        raise ValueError(
            f"anchor rows or columns fall outside the feature map, or {out_channels} output "
            "channels (the kernel takes multiples of 8 up to 64)"
        )
    return out


def mix_taps(
    images: torch.Tensor,
    taps: torch.Tensor,
    coefficients: torch.Tensor,
    *,
    kernel: Kernel | None = None,
) -> torch.Tensor:
    """``out[b, p, c] = sum_k coefficients[b, p, k] * images[b, c].flatten()[taps[p, k]]``:
    ``(B, P, C)`` from images ``(B, C, H, W)`` (NCHW or channels-last, read in place), flat tap
    indices ``taps`` ``(P, K)`` and ``coefficients`` ``(B, P, K)``. Only where
    :func:`mix_applies`; ``kernel`` another build's function (tests)."""
    kernel = kernel or _loaded().mix
    batch, channels, height, width = images.shape
    pixels, k = taps.shape
    if coefficients.shape != (batch, pixels, k):
        raise ValueError(f"coefficients must be {(batch, pixels, k)}, got {coefficients.shape}")
    taps, coefficients = taps.contiguous(), coefficients.contiguous()
    out = torch.empty(batch, pixels, channels, dtype=torch.float32)
    with torch.profiler.record_function(MIX_LABEL):
        status = kernel(
            images.data_ptr(),
            taps.data_ptr(),
            coefficients.data_ptr(),
            out.data_ptr(),
            batch,
            channels,
            pixels,
            k,
            height * width,
            images.stride(0),
            images.stride(1),
            images.stride(3),
            torch.get_num_threads(),
        )
    if status != 0:
        raise ValueError("a tap falls outside the images")
    return out


def passes_checks(loaded: Kernels) -> bool:
    """Both kernels against PyTorch on small inputs: the anchor conv against conv2d + relu
    (borders, a repeat, a run of four anchors inside the borders, with a bias and without, an
    output width it specialises and one it does not), the mix against a gather and a sum
    (NCHW and channels-last images, repeated taps)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for out_channels, with_bias in ((16, True), (24, False)):
            features = torch.randn(2, 7, 6, 9, generator=generator)
            weight = torch.randn(out_channels, 7, 3, 3, generator=generator)
            bias = torch.randn(out_channels, generator=generator) if with_bias else None
            rows, cols = torch.tensor([0, 2, 2, 5]), torch.tensor([0, 1, 2, 3, 4, 4, 5, 8])
            full = F.relu(F.conv2d(features, weight, bias, padding=1))
            expected = full[:, :, rows][:, :, :, cols].permute(0, 2, 3, 1).reshape(2, 32, -1)
            try:
                got = conv3x3_relu_at(features, weight, bias, rows, cols, kernel=loaded.anchor_conv)
            except ValueError:
                return False
            if not torch.allclose(got, expected, rtol=1e-5, atol=1e-5):
                logger.warning("native anchor kernel disagrees with conv2d; using the eager path")
                return False
        images = torch.randn(2, 3, 5, 4, generator=generator)
        taps = torch.tensor([[0, 1, 4, 5], [19, 19, 0, 7], [3, 2, 1, 0]])
        coefficients = torch.rand(2, 3, 4, generator=generator)
        gathered = images.flatten(2)[:, :, taps]  # (B, C, P, K)
        expected = (gathered * coefficients[:, None]).sum(-1).permute(0, 2, 1)
        for layout in (torch.contiguous_format, torch.channels_last):
            try:
                got = mix_taps(
                    images.contiguous(memory_format=layout), taps, coefficients, kernel=loaded.mix
                )
            except ValueError:
                return False
            if not torch.allclose(got, expected, rtol=1e-5, atol=1e-6):
                logger.warning("native mix kernel disagrees with PyTorch; using the eager path")
                return False
    return True
