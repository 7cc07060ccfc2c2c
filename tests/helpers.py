"""What tests of the hub and the CLI share: a training record, a folder's snapshot, and the
check that a command failed with one clear line. Fixtures live in ``conftest.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from downsizenet_hub.hub import TrainingRecord

#: A complete training record, as ``pretrain --publish`` writes one.
RECORD = TrainingRecord(
    task="segmentation",
    pipeline="fcn-vgg16",
    dataset="scenes",
    generated_data=True,
    epochs=1,
    seed=0,
    metric="mIoU",
    score=0.5,
    baseline_score=0.375,
    command="downsizenet pretrain",
    scale_factor=0.5,
)


def training_record(**changes: Any) -> TrainingRecord:
    """:data:`RECORD` with ``changes`` (e.g. an output size instead of a scale factor)."""
    return dataclasses.replace(RECORD, **changes)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (hidden ones included) with its bytes (None for folders)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def assert_one_line_error(result: Any, *parts: str) -> None:
    """A command's user error: exit 2, one ``error: ...`` line on stderr holding each of
    ``parts``, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
