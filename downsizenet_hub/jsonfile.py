"""Reading JSON that a user can hand us (configs, manifests, metrics), safely.

Python's ``json`` recurses once per nesting level, so a file nested 100000 deep raises
RecursionError, and it reads any size into memory. :func:`read_json` bounds both before parsing and
turns every problem with the file's contents (too large, too deep, not UTF-8, not JSON) into one
ValueError naming the file. A missing or unreadable file stays an OSError, as ``open`` raises it.

This module imports nothing from the rest of the package, so every part of it can use it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_BYTES", "MAX_DEPTH", "loads_json", "read_json"]

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
        ValueError: larger than ``max_bytes``, nested deeper than ``max_depth``, not UTF-8 or
            not valid JSON.
        OSError: the file cannot be opened or read (FileNotFoundError, PermissionError, ...).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than {max_bytes} bytes; refusing to read it.")
    return loads_json(data, source=f"{what} {path}", max_depth=max_depth)


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
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON ({error}).") from None
    except (RecursionError, ValueError) as error:  # e.g. an integer with too many digits
        message = str(error).strip().splitlines()[0] if str(error).strip() else "too deep"
        raise ValueError(f"{source} is not valid JSON ({message}).") from None


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
