"""Keep freed memory in the process: glibc's default hands large blocks back to the OS.

With glibc's defaults, every block above the dynamic mmap threshold (at most 32 MiB) is mapped
fresh and unmapped on free, so each forward pass of a vision model pays a page fault per 4 KiB of
every large feature map, and the freed top of the heap is trimmed back to the OS. On the 2-core
machine the project is developed on (measured by ``benchmarks/pipeline_overhead.py --allocator``),
that made a 3->16-channel 3x3 convolution at 8x513x513 about 5x slower than with the memory kept,
16->16 about 1.8x slower and VGG16's own convolutions about 20% slower; DownsizeNet's texture
branch, whose full-resolution maps are the largest tensors of a pipeline, suffered most.

:func:`keep_freed_memory` raises both thresholds with ``mallopt`` (the runtime equivalent of
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...``). The library
never calls it on import: changing a process-wide allocator is the program's decision. The
``downsizenet`` command calls it at start-up; set ``DOWNSIZENET_ALLOCATOR=default`` to keep glibc's
defaults. The cost is that memory freed by the process is kept for reuse rather than returned,
so its resident size stays near its peak.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Literal

#: mallopt parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to 1 GiB come from the heap; freed memory is trimmed only above 2 GiB.
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1
ENV_VAR = "DOWNSIZENET_ALLOCATOR"

AllocatorState = Literal["kept", "default", "user", "unsupported"]

#: What :func:`keep_freed_memory` decided in this process (None: it was never called).
_decided: AllocatorState | None = None


def keep_freed_memory() -> AllocatorState:
    """Ask glibc to keep freed memory for reuse; return what the process now runs with.

    ``"kept"``: thresholds raised. ``"default"``: ``DOWNSIZENET_ALLOCATOR=default`` was set.
    ``"user"``: ``GLIBC_TUNABLES`` already sets malloc options, which win. ``"unsupported"``: not
    glibc (macOS, Windows, musl), or ``mallopt`` refused; nothing changed.
    """
    global _decided
    _decided = _keep_freed_memory()
    return _decided


def decided() -> AllocatorState | None:
    """What :func:`keep_freed_memory` decided in this process, or None when nothing asked it (the
    process runs with its C library's defaults). A program that starts workers passes this on,
    so that they run as it does."""
    return _decided


def _keep_freed_memory() -> AllocatorState:
    if os.environ.get(ENV_VAR, "").strip().lower() == "default":
        return "default"
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return "user"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "unsupported"
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "unsupported"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trimmed = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return "kept" if trimmed == 1 and mapped == 1 else "unsupported"


def describe(state: AllocatorState) -> str:
    """One line for logs and benchmark JSON."""
    if state == "kept":
        return f"glibc mallopt mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"
    if state == "user":
        return f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}"
    return f"allocator defaults ({state})"
