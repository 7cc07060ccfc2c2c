"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind.

Checkpoints, published weights, resized images and cached features are all written the same way:
into a temporary file in the target's folder (``.{name}.*.tmp``), flushed to disk, made an
ordinary ``0o644`` file and renamed over the target with ``os.replace`` (atomic on POSIX and
Windows). Readers see the old file or the new one, never a mix; on any exception, Ctrl-C included,
the temporary file is removed and the exception propagates.

This module imports nothing from the rest of the package, so every part of it can use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomic", "write_atomic_path"]

#: Mode of every file written here: mkstemp makes files owner-only, ours are ordinary files.
FILE_MODE = 0o644


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a binary handle to a temporary sibling of ``path``, fsync it,
    then rename it to ``path``. Parent folders are created."""

    def fill(descriptor: int, _: Path) -> None:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())

    _replace(Path(path), fill)


def write_atomic_path(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` with the path of a temporary sibling of ``path``, fsync it, then rename
    it to ``path``. For writers that take a file name (safetensors, PIL, ``Path.write_text``).
    Parent folders are created."""

    def fill(descriptor: int, temporary: Path) -> None:
        os.close(descriptor)
        write(temporary)
        with open(temporary, "rb+") as handle:  # "+": Windows needs write access to fsync
            os.fsync(handle.fileno())

    _replace(Path(path), fill)


def _replace(path: Path, fill: Callable[[int, Path], None]) -> None:
    """Make a temporary sibling, let ``fill`` write it (``fill`` owns the open descriptor), then
    chmod and rename it over ``path``; on any exception remove it and re-raise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        fill(descriptor, temporary)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
