"""A run folder whose files are FIFOs (or other non-regular files) never blocks the engine: the
log and lock are refused in one line, the status files are not read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from downsizenet_hub.atomic import WriteError
from downsizenet_hub.engine import fit
from downsizenet_hub.engine.runlock import is_locked, run_status

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine import config, make_pipeline, train_set, val_set

pytestmark = pytest.mark.usefixtures("deadline")  # opening a FIFO waits for its other end


@pytest.mark.parametrize("name", ["train.log", "run.lock", "checkpoint.pt"])
def test_a_run_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path, name: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / name)
    if name == "checkpoint.pt":  # a fresh run refuses a folder with a checkpoint, FIFO or not
        with pytest.raises(FileExistsError, match="already exists"):
            fit(make_pipeline(), train_set(), val_set(), config(), run_dir, progress=False)
        return
    with pytest.raises(WriteError, match=f"cannot write {run_dir / name}: it is a FIFO"):
        fit(make_pipeline(), train_set(), val_set(), config(epochs=1), run_dir, progress=False)


def test_status_files_that_are_fifos_are_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "metrics.json")
    os.mkfifo(tmp_path / "run.lock")
    assert not is_locked(tmp_path)
    assert run_status(tmp_path) is None
