"""The allocator setting the CLI applies: what it reports, and that it removes the page faults."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from downsizenet_hub import allocator

# Re-allocating a freed 64 MiB tensor: the fewest minor page faults of one fill, over five fills
# (glibc settles its heap over the first ones with either setting; how many varies by run).
_CHILD = """
import resource, sys, torch
from downsizenet_hub import allocator
state = allocator.keep_freed_memory()
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 << 20).fill_(1.0)  # 64 MiB, freed at once
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(state, min(faults))
"""

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _child(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", allocator.ENV_VAR)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    state, faults = out.stdout.split()
    return state, int(faults)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_kept_memory_is_reused_without_page_faults() -> None:
    kept_state, kept_faults = _child()
    default_state, default_faults = _child(**{allocator.ENV_VAR: "default"})
    assert (kept_state, default_state) == ("kept", "default")
    # 64 MiB is 16384 pages of 4 KiB: glibc's default maps it afresh and faults on every page.
    assert default_faults > 8000
    assert kept_faults < 1000


def test_user_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    assert allocator.keep_freed_memory() == "user"
    assert allocator.describe("user") == "GLIBC_TUNABLES=glibc.malloc.trim_threshold=1"
    monkeypatch.setenv(allocator.ENV_VAR, "Default")
    assert allocator.keep_freed_memory() == "default"
    assert "defaults" in allocator.describe("default")
