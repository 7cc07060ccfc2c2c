"""A compiled kernel for the last texture convolution at the anchors (CPU inference, optional).

Floating pooling needs the texture branch's last 3x3 conv + ReLU at the anchors only. The
eager path (:mod:`.anchors`) gathers the anchors' 3x3 neighbourhoods into a grid of blocks and
runs a stride-3 convolution on it: at 513->179 the gather copies about one feature map per
image and the strided convolution runs at a third of oneDNN's usual rate. ``csrc/anchor_conv.c``
computes each anchor's 3x3 x channels dot products straight from the channels-last map instead
(plain C99 with OpenMP or POSIX threads, no PyTorch headers).

It is built on the user's machine at first use, by the C compiler on the ``PATH`` (``$CC``,
else ``cc``, ``gcc`` or ``clang``; about a second), into
:func:`~downsizenet_hub.paths.kernels_dir`: one file per source, compiler, flags and machine,
written atomically, so concurrent processes never load a half-written library. Before its first
use in a process it is checked against ``torch.nn.functional.conv2d`` on a small input with
borders and repeated anchors. Where there is no compiler, the build fails, the library is not
ours to load (another owner, writable by others) or the check fails, :func:`anchor_conv` is
None and the eager path runs; outputs are the same either way up to float summation order.
``DOWNSIZENET_NATIVE=0`` turns it off.
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

import torch
import torch.nn.functional as F

from downsizenet_hub.atomic import WriteError, write_atomic_path
from downsizenet_hub.paths import kernels_dir

logger = logging.getLogger(__name__)

NATIVE_ENV = "DOWNSIZENET_NATIVE"
SOURCE = Path(__file__).resolve().parent / "csrc" / "anchor_conv.c"
_COMMON_FLAGS = ("-O3", "-ffp-contract=fast", "-std=c99", "-shared", "-fPIC")
#: Flags tried in order, until one builds, loads and agrees with conv2d: tuned for this CPU,
#: then portable (older aarch64 compilers lack ``-march=native``); each with OpenMP, whose
#: runtime PyTorch has loaded already (its threads are awake right after the texture
#: convolutions: 1.4-2.6 ms less per 513 px image than starting POSIX threads), then without.
FLAG_SETS = (
    ("-march=native", *_COMMON_FLAGS, "-fopenmp"),
    ("-march=native", *_COMMON_FLAGS, "-pthread"),
    (*_COMMON_FLAGS, "-fopenmp"),
    (*_COMMON_FLAGS, "-pthread"),
)
#: The kernel keeps one accumulator per output channel on the stack.
MAX_OUT_CHANNELS = 64
#: The kernel runs where the anchors number at most this fraction of the input pixels. Resizer
#: alone, interleaved, against the eager paths (2-core x86_64, memory kept, 15 rounds):
#: 0.88-0.93x the time at 513->179 (0.12; against the grid of blocks), 0.91-1.00x at 300->160
#: (0.28; against the anchor rows), 0.94x at 300->200 (0.44), 1.06x at 300->250 (0.69).
NATIVE_MAX_RATIO = 0.5
_BUILD_TIMEOUT_S = 120
_INT64 = ctypes.c_int64
_POINTER = ctypes.c_void_p

AnchorConv = Callable[..., int]


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
    return kernels_dir() / f"anchor_conv-{digest.hexdigest()[:16]}.so"


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
        logger.debug("native kernel: no C compiler on the PATH")
        return None
    path = library_path(SOURCE.read_bytes(), cc, flags)
    if path.exists() or path.is_symlink():
        return path if _ours(path) else None

    def compile_to(target: Path) -> None:
        command = [cc, *flags, str(SOURCE), "-o", str(target)]
        subprocess.run(command, check=True, capture_output=True, timeout=_BUILD_TIMEOUT_S)

    try:
        write_atomic_path(path, compile_to)
    except (OSError, WriteError, subprocess.SubprocessError) as error:
        logger.debug("native kernel: building with %s %s failed: %s", cc, flags, error)
        return None
    return path


@functools.cache
def anchor_conv() -> AnchorConv | None:
    """The compiled kernel, built, loaded and checked once per process (the first of
    :data:`FLAG_SETS` that gets that far); None where unavailable (see the module)."""
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return None
    for flags in FLAG_SETS:
        path = build(flags)
        kernel = None if path is None else load(path)
        if kernel is not None and _agrees_with_conv2d(kernel):
            return kernel
    return None


def load(path: Path) -> AnchorConv | None:
    """The kernel function of the library at ``path``; None where it does not load."""
    try:
        function = ctypes.CDLL(str(path)).anchor_conv3x3_relu
    except (OSError, AttributeError) as error:  # e.g. an OpenMP symbol PyTorch's lacks
        logger.debug("native kernel: loading %s failed: %s", path, error)
        return None
    function.restype = ctypes.c_int
    function.argtypes = [_POINTER] * 6 + [_INT64] * 9
    kernel: AnchorConv = function
    return kernel


def pays(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether the kernel is faster than the eager paths for this resize (see
    :data:`NATIVE_MAX_RATIO`)."""
    return out_size[0] * out_size[1] <= NATIVE_MAX_RATIO * in_size[0] * in_size[1]


def applies(features: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`conv3x3_relu_at` can run on these: float32 CPU tensors without autograd,
    at most :data:`MAX_OUT_CHANNELS` output channels, and the kernel available."""
    return (
        not torch.is_grad_enabled()
        and features.device.type == "cpu"
        and features.dtype == torch.float32
        and weight.dtype == torch.float32
        and weight.shape[0] <= MAX_OUT_CHANNELS
        and tuple(weight.shape[2:]) == (3, 3)
        and anchor_conv() is not None
    )


def conv3x3_relu_at(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rows: torch.Tensor,
    cols: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``relu(conv2d(features, weight, bias, padding=1))`` at pixels ``(rows[i], cols[j])``, as
    pixel vectors ``(B, len(rows) * len(cols), C_out)`` (row-major over the anchors), written
    into ``out`` if given (a tensor of that shape whose last two dimensions are contiguous).
    Only where :func:`applies`."""
    kernel = anchor_conv()
    if kernel is None:
        raise RuntimeError("the native anchor convolution is not available on this machine")
    return _call(kernel, features, weight, bias, rows, cols, out)


def _call(
    kernel: AnchorConv,
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rows: torch.Tensor,
    cols: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
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
        raise ValueError("anchor rows or columns fall outside the feature map")
    return out


def _agrees_with_conv2d(kernel: AnchorConv) -> bool:
    """The kernel against conv2d + relu on a small map with borders, repeated anchors, a bias
    and none, and the accumulator counts the kernel specialises (16) and does not (5)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for out_channels, with_bias in ((16, True), (5, False)):
            features = torch.randn(2, 7, 6, 9, generator=generator)
            weight = torch.randn(out_channels, 7, 3, 3, generator=generator)
            bias = torch.randn(out_channels, generator=generator) if with_bias else None
            # Borders, a repeat, and a run of four inside the borders (its fast path).
            rows, cols = torch.tensor([0, 2, 2, 5]), torch.tensor([0, 1, 2, 3, 4, 4, 5, 8])
            full = F.relu(F.conv2d(features, weight, bias, padding=1))
            expected = full[:, :, rows][:, :, :, cols].permute(0, 2, 3, 1).reshape(2, 32, -1)
            try:
                got = _call(kernel, features, weight, bias, rows, cols)
            except (RuntimeError, ValueError):
                return False
            if not torch.allclose(got, expected, rtol=1e-5, atol=1e-5):
                logger.warning("native kernel disagrees with conv2d; using the eager path")
                return False
    return True
