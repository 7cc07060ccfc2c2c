"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind.

Checkpoints, published weights, resized images and cached features are all written the same way:
into a temporary file in the target's folder (``.{name}.{pid}-*.tmp``), flushed to disk, made an
ordinary ``0o644`` file and renamed over the target with ``os.replace`` (atomic on POSIX). Only
regular files (or new paths) are written: a target that exists and is a folder, device, FIFO or
socket is refused with :class:`WriteError` before anything is written, never replaced. Readers
see the old file or the new one, never a mix; on any exception, Ctrl-C included, the temporary file
is removed and the exception propagates.

Faults of the machine (a full disk, a folder without write permission, a read-only file system)
raise :class:`WriteError`, an OSError whose message is one line naming the file and the cause,
whatever library did the writing (``torch.save`` reports a full disk as ``RuntimeError: unexpected
pos``; the original error is recorded on the way and reported instead). A process killed outright
leaves its temporary file behind; the pid in its name lets :func:`remove_stale_temporaries` delete
it once that process is gone, and never while it lives.

This module imports nothing from the rest of the package, so every part of it can use it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "WriteError",
    "process_alive",
    "publish_folder",
    "refuse_non_regular",
    "remove_stale_temporaries",
    "temporary_prefix",
    "write_atomic",
    "write_atomic_path",
    "write_json_atomic",
    "write_text_atomic",
]

#: Mode of every file written here: mkstemp makes files owner-only, ours are ordinary files.
FILE_MODE = 0o644
#: ``.{name}.{pid}-{random}.tmp``: the temporary sibling of ``name`` made by process ``pid``.
_TEMPORARY = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)-[A-Za-z0-9_]+(?P<suffix>\.tmp|\.partial)$"
)
# The message of an I/O failure inside a Rust writer (safetensors): "... Os { code: 28, ...".
_RUST_OS_CODE = re.compile(r"Os \{ code: (?P<code>[0-9]+)")


class WriteError(OSError):
    """A file could not be written: one line naming the file and the cause (``errno`` is set).

    Made by :meth:`from_error`, it is also the matching built-in subclass (PermissionError for
    EACCES, ...), so ``except PermissionError`` still catches it.
    """

    def __init__(self, path: str | os.PathLike[str], code: int | None, cause: str) -> None:
        super().__init__(code, cause, os.fspath(path))
        self.cause = cause
        self.message = f"cannot write {os.fspath(path)}: {cause}"

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_error(cls, path: str | os.PathLike[str], error: BaseException) -> WriteError:
        """The WriteError for ``error`` met while writing ``path`` (see :func:`describe`)."""
        if isinstance(error, WriteError) and error.filename == os.fspath(path):
            return error
        code, cause = describe(error)
        return _with_builtin(code)(path, code, cause)


_BUILTIN: dict[int, type[OSError]] = {
    errno.EACCES: PermissionError,
    errno.EPERM: PermissionError,
    errno.ENOENT: FileNotFoundError,
    errno.EEXIST: FileExistsError,
    errno.EISDIR: IsADirectoryError,
    errno.ENOTDIR: NotADirectoryError,
}
_SUBCLASSES: dict[type[OSError], type[WriteError]] = {}


def _with_builtin(code: int | None) -> type[WriteError]:
    builtin = _BUILTIN.get(code) if code is not None else None
    if builtin is None:
        return WriteError
    if builtin not in _SUBCLASSES:
        _SUBCLASSES[builtin] = type(f"Write{builtin.__name__}", (WriteError, builtin), {})
    return _SUBCLASSES[builtin]


def describe(error: BaseException) -> tuple[int | None, str]:
    """``(errno, cause)`` of an I/O failure, the cause as a short lower-case phrase."""
    if isinstance(error, WriteError):
        return error.errno, error.cause
    code = getattr(error, "errno", None) if isinstance(error, OSError) else None
    if code is None:
        match = _RUST_OS_CODE.search(str(error))
        code = int(match["code"]) if match else None
    if code is not None:
        text = os.strerror(code)
        return code, text[:1].lower() + text[1:]
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return None, text


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a binary handle to a temporary sibling of ``path``, fsync it,
    then rename it to ``path``. Parent folders are created."""

    def fill(descriptor: int, _: Path) -> None:
        with os.fdopen(descriptor, "wb") as handle:
            recording = _RecordingHandle(handle)
            try:
                write(recording)  # type: ignore[arg-type]
            except (RuntimeError, ValueError):
                if recording.failure is not None:  # the writer hid an I/O error: report that
                    raise recording.failure from None
                raise
            handle.flush()
            os.fsync(handle.fileno())

    _replace(Path(path), fill)


def write_atomic_path(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` with the path of a temporary sibling of ``path``, fsync it, then rename
    it to ``path``. For writers that take a file name (PIL, ``Path.write_text``). Parent folders
    are created."""

    def fill(descriptor: int, temporary: Path) -> None:
        os.close(descriptor)
        write(temporary)
        with open(temporary, "rb+") as handle:  # "+": Windows needs write access to fsync
            os.fsync(handle.fileno())

    _replace(Path(path), fill)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_atomic`)."""
    data = text.encode("utf-8")
    write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path: str | os.PathLike[str], document: Any) -> None:
    """Write ``document`` as indented JSON with a final newline to ``path`` atomically."""
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def publish_folder(
    target: str | os.PathLike[str],
    fill: Callable[[Path], object],
    *,
    done: Callable[[Path], bool] | None = None,
) -> Path:
    """Make the folder ``target`` in one step: ``fill(staging)`` writes a temporary sibling folder
    (``.{name}.{pid}-*.partial``, an ordinary ``0o755`` folder), which is then renamed to
    ``target`` (``os.replace``: atomic, and it also replaces an empty folder left there).

    Readers see no folder or the complete one. Partial folders of dead processes are removed
    first; on any exception the staging folder is removed and the exception propagates. If the
    rename fails because ``target`` exists and is not empty, ``done(target)`` says whether it is
    complete all the same (another process finished it first): then it is kept, else the error
    propagates. Returns ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target, suffix=".partial")
    staging = Path(
        tempfile.mkdtemp(prefix=temporary_prefix(target), suffix=".partial", dir=target.parent)
    )
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
        fill(staging)
        try:
            os.replace(staging, target)
        except OSError:
            if done is None or not done(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours always does)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def temporary_prefix(path: str | os.PathLike[str]) -> str:
    """The name prefix of this process's temporary siblings of ``path``: ``.{name}.{pid}-``."""
    return f".{Path(path).name}.{os.getpid()}-"


def remove_stale_temporaries(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> list[Path]:
    """Delete the temporary siblings of ``path`` (named ``temporary_prefix(path) + ... + suffix``,
    files or folders) that processes which no longer run left behind; return them. Those of live
    processes (this one included) are left alone."""
    target = Path(path)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # no folder, or not ours to read: nothing to clean
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if (
            match is None
            or match["name"] != target.name
            or match["suffix"] != suffix
            or process_alive(int(match["pid"]))
        ):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # gone meanwhile, or not ours to delete
        removed.append(Path(entry.path))
    return removed


def _replace(path: Path, fill: Callable[[int, Path], None]) -> None:
    """Make a temporary sibling, let ``fill`` write it (``fill`` owns the open descriptor), then
    chmod and rename it over ``path``; on any exception remove it and re-raise (I/O failures as
    :class:`WriteError`)."""
    refuse_non_regular(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(
            dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp"
        )
    except OSError as error:
        raise WriteError.from_error(path, error) from None
    temporary = Path(name)
    try:
        fill(descriptor, temporary)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if _is_write_failure(error):
            raise WriteError.from_error(path, error) from None
        raise


def refuse_non_regular(path: str | os.PathLike[str]) -> None:
    """Raise :class:`WriteError` if ``path`` exists (links followed) and is not a regular file.

    Renaming over it would replace a device node, FIFO or socket with a regular file (``export
    --onnx /dev/full`` run as root did), so such a target is refused in one line; a folder is
    refused as IsADirectoryError. A new path, a dangling link or a regular file pass.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # a new path (a missing parent is made, or fails, when writing)
    except OSError as error:
        raise WriteError.from_error(path, error) from None
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise _with_builtin(errno.EISDIR)(path, errno.EISDIR, "it is a folder, not a file")
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise WriteError(
        path, errno.EEXIST, f"it is {kind}; only regular files are written (refusing to replace it)"
    )


def _is_write_failure(error: BaseException) -> bool:
    """An I/O failure of the machine, as opposed to a bug or bad data in the writer."""
    if isinstance(error, OSError):
        return True
    # safetensors reports I/O errors of its Rust writer as SafetensorError("... IoError(Os {...").
    return (
        type(error).__name__ == "SafetensorError" and _RUST_OS_CODE.search(str(error)) is not None
    )


class _RecordingHandle:
    """A binary handle that remembers the first OSError of its writes, for writers (torch.save)
    that swallow it and raise a vaguer error of their own."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.failure: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            if self.failure is None:
                self.failure = error
            raise

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as error:
            if self.failure is None:
                self.failure = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)
