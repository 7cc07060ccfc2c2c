"""Which version of the training code computed a cell.

A cell's key covers its settings, not the code that ran them: a change to a pipeline, the engine
or the data would otherwise go unnoticed by the cache. Every result records a fingerprint of the
source files that decide scores, and a cached result whose fingerprint differs from the running
code is reported as such (on its progress line and in results.md), so a reader knows which
numbers predate a code change. Delete those cells' folders to recompute them.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
#: What a score depends on: the models, the training loop, the data, the experiment wiring.
RESULT_CODE = (
    "backbones",
    "data",
    "engine",
    "experiments",
    "pipelines",
    "registry.py",
    "resizing",
)


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """First 12 hex digits of a SHA-256 over the :data:`RESULT_CODE` sources (paths and bytes)."""
    digest = hashlib.sha256()
    for entry in RESULT_CODE:
        path = _PACKAGE / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(_PACKAGE).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]
