"""Reading JSON that a user can hand us (configs, manifests, metrics), safely.

Python's ``json`` recurses once per nesting level, so a file nested 100000 deep raises
RecursionError, and it reads any size into memory. :func:`read_json` bounds both before parsing and
turns every problem with the file's contents (too large, too deep, not UTF-8, not JSON, a key
given twice in one object) into one ValueError naming the file. Only regular files are read: a
FIFO, device or socket at the path is refused at once (opening a FIFO for reading would wait
forever for a writer). A missing or unreadable file stays an OSError, as ``open`` raises it.

This module imports nothing from the rest of the package, so every part of it can use it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "loads_json",
    "read_json",
    "read_matching",
    "read_regular_bytes",
]

#: Default largest file read (bytes): far above any config or metrics file; pass ``max_bytes``
#: for bigger inputs such as COCO annotation files.
MAX_BYTES = 64 * 1024 * 1024
#: Default deepest nesting of arrays and objects; our files nest a handful of levels.
MAX_DEPTH = 64

# A JSON string (escapes included; an unterminated one is left for the parser to refuse).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def read_json(
    path: str | os.PathLike[str],
    *,
    what: str = "JSON file",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The JSON value in ``path``; ValueError ``"<what> <path> ...: <why>."`` on bad contents.

    Raises:
        ValueError: not a regular file, larger than ``max_bytes``, nested deeper than
            ``max_depth``, not UTF-8, not valid JSON, or an object with a key given twice.
        OSError: the file cannot be opened or read (FileNotFoundError, PermissionError, ...).
    """
    path = Path(path)
    data = read_regular_bytes(path, max_bytes + 1, what=what)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than {max_bytes} bytes; refusing to read it.")
    return loads_json(data, source=f"{what} {path}", max_depth=max_depth)


def read_matching(
    path: str | os.PathLike[str], expected: Mapping[str, Any], *, what: str
) -> dict[str, Any] | None:
    """The JSON object in ``path`` if it holds every key of ``expected`` with that value, else
    None (missing, unreadable, corrupt, or written for other inputs).

    How finished work is found again: a run's metrics.json and a study cell's cell.json are
    written last, atomically, and name what they were computed from (a recipe, a cell spec);
    only one naming the same inputs is reused.
    """
    try:
        data = read_json(path, what=what)
    except (OSError, ValueError):  # missing, or corrupt (too deep, not JSON): not reusable
        return None
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
        return None
    return data


def read_regular_bytes(path: str | os.PathLike[str], limit: int, *, what: str = "file") -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` (links followed).

    Opened without blocking, so a FIFO (which would wait for a writer), a device or a socket is a
    ValueError naming the file rather than a hang or an endless read; a folder is
    IsADirectoryError; a missing or unreadable file the OSError ``open`` raises.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{what} {os.fspath(path)} is a folder, not a file.")
        if not stat.S_ISREG(mode):
            raise ValueError(
                f"{what} {os.fspath(path)} is not a regular file ({_kind(mode)}); refusing to "
                "read it."
            )
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(descriptor)


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def loads_json(data: str | bytes, *, source: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` like :func:`read_json`; ``source`` names it in errors."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as error:
        raise ValueError(f"{source} is not UTF-8 text ({error.reason}).") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise ValueError(
            f"{source} nests arrays or objects {depth} levels deep; at most {max_depth} are read."
        )
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except DuplicateKeyError as error:
        raise ValueError(f"{source} {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON ({error}).") from None
    except (RecursionError, ValueError) as error:  # e.g. an integer with too many digits
        message = str(error).strip().splitlines()[0] if str(error).strip() else "too deep"
        raise ValueError(f"{source} is not valid JSON ({message}).") from None
    if "\\u" in text:  # "\ud800" escapes a lone surrogate, which no UTF-8 file can hold
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{source} holds a string with a lone surrogate escape (such as \\ud800), which "
                "is not text."
            ) from None
    return value


class DuplicateKeyError(ValueError):
    """An object in the JSON text names one key twice (``json`` would keep the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise DuplicateKeyError(
                f"gives the key {key!r} twice in one object; each key may appear once."
            )
        document[key] = value
    return document


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text``, brackets inside strings ignored.

    Linear, without recursion or a Python loop per character (regular expressions and numpy), so
    it is safe and quick on hostile input of any size. Malformed text gives some number; the
    parser rejects it afterwards.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max())
