"""The operating system's advisory file locks (``flock``), taken one way for the whole package.

Used by the engine's run lock (:mod:`downsizenet_hub.engine.runlock`, also the study's cell
claims) and by the local hub's namespace lock (:mod:`downsizenet_hub.hub.store`). The operating
system drops a lock when its process dies, however it dies, so no lock is ever stale and no clock
is involved. ``flock`` locks an open file (or folder), not a name: a lock file is never deleted.

This module imports nothing from the rest of the package, so every part of it can use it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["acquire", "release"]


def acquire(
    path: str | os.PathLike[str],
    *,
    shared: bool = False,
    wait: bool = False,
    create: bool = False,
    directory: bool = False,
) -> int | None:
    """Open ``path`` and take its lock: exclusive, or ``shared``; waiting for it, or not.

    Returns the open descriptor, which holds the lock until :func:`release` (or until it is
    closed), or None when another process holds a conflicting lock and ``wait`` is False.
    ``create`` makes a missing file (``0o644``, opened for writing); ``directory`` locks a folder
    itself. Raises the OSError of opening ``path`` (FileNotFoundError when it is missing).
    """
    if directory:
        flags = os.O_RDONLY | os.O_DIRECTORY
    else:  # non-blocking open: a FIFO at ``path`` must not wait for a writer
        flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | os.O_NONBLOCK
    descriptor = os.open(Path(path), flags, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(descriptor, mode if wait else mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def release(descriptor: int) -> None:
    """Drop the lock :func:`acquire` returned and close its descriptor."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
