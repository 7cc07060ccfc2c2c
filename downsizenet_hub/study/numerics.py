"""The numerics version: which computation a study cell's result came from.

A finished cell is found again by its key, a hash of its settings (:meth:`.cells.Cell.spec`),
and it counts as current when it was computed under :data:`NUMERICS_VERSION`. The version is
changed by hand, in the commit that changes what the code computes (a new noise stream, another
initialisation, another schedule); an exact rewrite (a refactor, a docstring, a faster kernel
with the same outputs) keeps it, so results outlive refactors. The golden checks
(:mod:`.golden`, ``tests/test_numerics.py``) hold the version to its word: they fail when the
computation moves while the version stays. Where and by what a cell was computed (commit, library
versions, platform, device, threads, malloc setting) is recorded beside it as provenance, never as
part of its key, as DVC, joblib.Memory and MLflow keep a result's inputs apart from its
provenance.

History:

- 1: the code of the 300-step ``cpu``, ``full``, ``longer`` and ``sensitivity`` studies (cells
  then keyed by a hash of the training code's source files, ``5b57cf6dbb65``).
- 2: the ``noisy`` variant's pixel noise drawn by torch's generator instead of NumPy's (another
  stream of the same Gaussian, 4.5 ms less per 300 px image on one core); nothing else moved.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

#: Changed by hand when what the training code computes changes (see the module docstring).
NUMERICS_VERSION = 2

_CHECKOUT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def _commit() -> str | None:
    """The checkout's commit (with ``+dirty`` when tracked files differ), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(_CHECKOUT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(_CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def provenance(device: str) -> dict[str, Any]:
    """Where and by what a result was computed: provenance for a reader, not part of any key."""
    import torchvision

    from downsizenet_hub import __version__, allocator

    return {
        "package_version": __version__,
        "commit": _commit(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "device": device,
        "threads": torch.get_num_threads(),
        "allocator": allocator.decided(),
    }
