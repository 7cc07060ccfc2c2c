"""Which process is training a run folder: an exclusive ``flock`` on ``run_dir/run.lock``.

:func:`~downsizenet_hub.engine.fit` holds the lock (rank 0) from before its first write until it
returns or raises. The operating system drops the lock when the process dies, however it dies,
so a run whose metrics.json still says ``running`` but whose lock is free was killed (``kill -9``,
the out-of-memory killer, a power cut) before it could write anything: :func:`run_status` calls
it ``interrupted``. No clock is involved: a run that is slow is still held, a dead one never is.

The lock file is never deleted (removing it while another process waits on it would let two
processes hold "the" lock); it holds the pid of the last holder, for messages only.
"""

from __future__ import annotations

import os
from pathlib import Path

from downsizenet_hub import flock
from downsizenet_hub.atomic import refuse_non_regular
from downsizenet_hub.jsonfile import read_json

LOCK_NAME = "run.lock"


class RunInUseError(FileExistsError):
    """Another live process is training this run folder."""


def _holder_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


class RunLock:
    """The exclusive lock of one run folder; :meth:`acquire` never waits."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunInUseError` naming the live process holding it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_non_regular(self.path)  # a FIFO or device there is not our lock file
        fd = flock.acquire(self.path, create=True)
        if fd is None:
            raise RunInUseError(
                f"{self.path.parent} is being trained by another live process (pid "
                f"{_holder_pid(self.path)}): wait for it to finish or stop it first."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            flock.release(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def is_locked(run_dir: str | os.PathLike[str]) -> bool:
    """True while a live process (this one included) holds ``run_dir``'s lock."""
    try:
        fd = flock.acquire(Path(run_dir) / LOCK_NAME, shared=True)  # never blocks on a FIFO
    except FileNotFoundError:
        return False
    if fd is None:
        return True
    flock.release(fd)  # the shared lock taken to test
    return False


def run_status(run_dir: str | os.PathLike[str]) -> str | None:
    """``running`` (a live process holds the lock), ``completed``, ``failed``, ``interrupted``
    (stopped by a signal, or killed: metrics.json says running or is missing beside a
    checkpoint, and nobody holds the lock), or None (no run here)."""
    run_dir = Path(run_dir)
    if is_locked(run_dir):
        return "running"
    status = recorded_status(run_dir)
    if status in ("completed", "failed", "interrupted"):
        return str(status)
    if status == "running" or (run_dir / "checkpoint.pt").is_file():
        return "interrupted"
    return None


def recorded_status(run_dir: Path) -> str | None:
    """The status metrics.json records (None: no readable metrics.json; a FIFO or device there
    is not read)."""
    try:
        status = read_json(run_dir / "metrics.json", what="run metrics").get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None
