"""Bad resizer names, heads, layouts and ``--publish ""`` fail before any data is prepared or any
arm trains."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from downsizenet_hub.cli import app

TINY = ["--train-images", "8", "--val-images", "4", "--batch-size", "4", "--no-progress"]


@pytest.mark.parametrize(
    ("command", "args", "words"),
    [
        ("pretrain", ["--compare", "../../x"], "its run folder would lie outside --run-dir"),
        ("pretrain", ["--compare", "no-such-resizer"], "no resizer found for 'no-such-resizer'"),
        ("pretrain", ["--resizer", "nearest-ish"], "no resizer found for 'nearest-ish'"),
        ("pretrain", ["--publish", ""], "invalid resizer name: ''"),
        ("pretrain", ["--publish", "../x"], "invalid resizer name"),
        ("transfer", ["--resizer", "bilinear", "--compare", "../../x"], "no resizer found"),
        ("transfer", ["--resizer", "demo/missing"], "no resizer found for 'demo/missing'"),
        ("transfer", ["--resizer", "bilinear", "--head", "yolo"], "--head must be one of"),
        ("transfer", ["--resizer", "bilinear", "--items", "huge"], "Unknown scene layout 'huge'"),
        ("pretrain", ["--items", "huge"], "Unknown scene layout 'huge'"),
    ],
)
def test_bad_names_fail_before_anything_runs(
    tmp_path: Path, isolated_home: Path, command: str, args: list[str], words: str
) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        app, [command, "--scale", "0.5", "--epochs", "1", "--run-dir", str(run_dir), *TINY, *args]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output
    # Nothing was prepared or trained: no data built, no run folder, nothing beside it.
    assert not (isolated_home / "data").exists()
    assert not run_dir.exists() and not (tmp_path / "x").exists()
