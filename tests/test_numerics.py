"""The numerics version and its golden checks (downsizenet_hub/study/golden.py).

Both directions: an exact rewrite (a docstring in resizing/) leaves every cached cell current and
the golden numbers where they were; a real change (the texture head's initial std, the noise
sigma, the learning-rate schedule) moves them, and the reference cannot be rewritten under the
same numerics version.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from downsizenet_hub.study import golden, numerics

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    found = golden.read_reference()
    if found is None:
        pytest.skip(
            f"no golden reference for {platform.machine()}: write one with "
            "`.venv/bin/python -m downsizenet_hub.study.golden --write` on such a machine"
        )
    return found


def test_the_reference_is_of_this_numerics_version(reference: dict[str, Any]) -> None:
    assert reference["numerics_version"] == numerics.NUMERICS_VERSION, (
        "the golden reference is of another numerics version: write it again with "
        "`.venv/bin/python -m downsizenet_hub.study.golden --write`"
    )


@pytest.mark.parametrize("part", golden.PARTS)
def test_the_code_computes_what_its_numerics_version_says(
    reference: dict[str, Any], part: str
) -> None:
    moved = golden.differences(reference["parts"], golden.compute((part,)), (part,))
    assert not moved, (
        f"{len(moved)} golden numbers moved while NUMERICS_VERSION stayed "
        f"{numerics.NUMERICS_VERSION}; an intended change bumps it and rewrites the reference "
        f"(`python -m downsizenet_hub.study.golden --write`). First: {moved[0][:300]}"
    )


@pytest.mark.parametrize(
    ("part", "target", "value"),
    [
        ("resizers", "downsizenet_hub.resizing.downsizenet.TEXTURE_HEAD_INIT_STD", 1e-2),
        ("scenes", "downsizenet_hub.data.registry.NOISE_SIGMA", 0.2),
        ("segmentation", "downsizenet_hub.engine.optim.lr_factor", None),
    ],
    ids=["texture-init-std", "noise-sigma", "lr-schedule"],
)
def test_a_real_numerics_change_moves_the_golden_numbers(
    reference: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    target: str,
    value: float | None,
) -> None:
    if value is None:  # a constant learning rate instead of the schedule
        monkeypatch.setattr(target, lambda schedule, total: lambda step: 1.0)
    else:
        monkeypatch.setattr(target, value)
    moved = golden.differences(reference["parts"], golden.compute((part,)), (part,))
    assert moved, f"changing {target} moved no golden number of {part}"


def test_the_reference_cannot_be_rewritten_without_a_version_bump(
    reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "numerics.json"
    path.write_text(json.dumps(reference))
    monkeypatch.setattr("downsizenet_hub.data.registry.NOISE_SIGMA", 0.2)
    with pytest.raises(SystemExit, match="bump NUMERICS_VERSION"):
        golden.write_reference(path, parts=("scenes",))
    monkeypatch.setattr(golden, "NUMERICS_VERSION", numerics.NUMERICS_VERSION + 1)
    golden.write_reference(path, parts=("scenes",))
    assert json.loads(path.read_text())["numerics_version"] == numerics.NUMERICS_VERSION + 1


_CELLS_SEEN = """
import json, sys
import downsizenet_hub
from downsizenet_hub.study import preset
from downsizenet_hub.study.cells import plan_study
from downsizenet_hub.study.cell_run import read_result
from pathlib import Path
plan = plan_study(preset("cpu"), backbone_weights="hed")
found = {c.key: read_result(Path(sys.argv[1]), c) for c in plan.cells}
seen = {k: None if r is None else [r.numerics, r.current] for k, r in found.items()}
print(json.dumps({"package": downsizenet_hub.__file__, "cells": seen}))
"""


def test_an_exact_rewrite_in_resizing_leaves_every_cached_cell_as_it_was(tmp_path: Path) -> None:
    """The committed cpu study's cells, seen by this code and by a copy whose resizing core
    has a rewritten docstring and a new comment: the same keys, found, equally current."""
    copy = tmp_path / "downsizenet_hub"
    shutil.copytree(REPO / "downsizenet_hub", copy, ignore=shutil.ignore_patterns("__pycache__"))
    core = copy / "resizing" / "downsizenet.py"
    text = core.read_text()
    core.write_text(
        text.replace('"""', '"""An exact rewrite: only this docstring changed. ', 1)
        + "\n# a comment added by an exact rewrite\n"
    )

    def cells_seen(package_parent: Path) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", _CELLS_SEEN, str(REPO / "results" / "cpu")],
            cwd=package_parent, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(package_parent)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        seen: dict[str, Any] = json.loads(done.stdout)
        assert Path(seen["package"]).parent == package_parent / "downsizenet_hub"
        cells: dict[str, Any] = seen["cells"]
        return cells

    original, rewritten = cells_seen(REPO), cells_seen(tmp_path)
    assert rewritten == original
    assert len(original) == 72 and all(v is not None for v in original.values())
