"""SIGTERM does what Ctrl-C does, and a run killed without a word is recognised as interrupted.

A training subprocess (the toy pipeline and data of test_engine.py) reaches a chosen step, writes
a marker file and waits on its stdin inside that step; the test sends it a signal there, so the
signal lands mid-epoch at a known step whatever the machine's load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from downsizenet_hub.engine import TrainingInterrupted, fit
from downsizenet_hub.engine.checkpoint import load_checkpoint
from downsizenet_hub.engine.runlock import RunInUseError, RunLock, is_locked, run_status

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))
from test_engine import (  # noqa: E402
    STEPS,
    assert_same_tensors,
    config,
    make_pipeline,
    train_set,
    val_set,
    weights,
)

# argv: run dir, marker file, the call at which to wait, torch threads. Prints what fit() did.
CHILD = textwrap.dedent(
    """
    import json, sys
    import torch

    sys.path.insert(0, {tests_dir!r})
    from test_engine import config, make_pipeline, train_set, val_set
    from downsizenet_hub.engine import TrainingInterrupted, fit

    run_dir, marker, at_call, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)

    def wait_for_the_test():
        with open(marker, "w") as handle:
            handle.write("waiting")
        sys.stdin.buffer.read(1)  # returns when the test closes our stdin

    pipeline = make_pipeline(events={{at_call: wait_for_the_test}})
    try:
        fit(pipeline, train_set(), val_set(), config(), run_dir, progress=False)
        print(json.dumps({{"finished": True}}))
    except TrainingInterrupted as stopped:
        print(json.dumps({{"stopped": [stopped.epoch, stopped.step], "message": str(stopped)}}))
    """
)


def _start(tmp_path: Path, run_dir: Path, at_call: int) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests_dir=str(TESTS_DIR)))
    marker = tmp_path / "marker"
    command = [
        sys.executable, str(script), str(run_dir), str(marker), str(at_call),
        str(torch.get_num_threads()),
    ]  # fmt: skip
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return child, marker


def _wait_for(marker: Path, child: subprocess.Popen[bytes]) -> None:
    """Poll for the child's marker (it appears once the child is inside the chosen step)."""
    deadline = time.monotonic() + 300
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the training subprocess never reached its step: {child.communicate()}")
        time.sleep(0.05)


def _uninterrupted(tmp_path: Path) -> dict[str, torch.Tensor]:
    pipeline = make_pipeline()
    fit(pipeline, train_set(), val_set(), config(), tmp_path / "straight", progress=False)
    return weights(pipeline)


def _resume(run_dir: Path) -> dict[str, torch.Tensor]:
    pipeline = make_pipeline()
    fit(pipeline, train_set(), val_set(), config(), run_dir, resume=True, progress=False)
    return weights(pipeline)


def test_sigterm_mid_epoch_saves_a_checkpoint_that_resumes_exactly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    child, marker = _start(tmp_path, run_dir, at_call=STEPS + 3)  # epoch 2, step 3
    _wait_for(marker, child)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=300)  # closes stdin: the step goes on, then it stops
    assert child.returncode == 0
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["stopped"] == [1, 3]
    assert report["message"].startswith("Training stopped by SIGTERM; resuming continues")
    saved = load_checkpoint(run_dir / "checkpoint.pt")
    assert (saved.epoch, saved.step) == (1, 3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and "SIGTERM" in metrics["error"]
    assert "SIGTERM received: stopping after this step" in (run_dir / "train.log").read_text()
    assert run_status(run_dir) == "interrupted"

    assert_same_tensors(_resume(run_dir), _uninterrupted(tmp_path))


def test_sigterm_in_process_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    pipeline = make_pipeline(events={STEPS + 2: lambda: signal.raise_signal(signal.SIGTERM)})
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM") as stopped:
        fit(pipeline, train_set(), val_set(), config(), tmp_path / "run", progress=False)
    assert (stopped.value.epoch, stopped.value.step) == (1, 2)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_killed_run_is_reported_interrupted_and_resumes_exactly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    child, marker = _start(tmp_path, run_dir, at_call=STEPS + 3)  # epoch 1's checkpoint exists
    _wait_for(marker, child)
    try:
        # While the child lives it holds the run: reported running, a second trainer refused.
        assert is_locked(run_dir) and run_status(run_dir) == "running"
        with pytest.raises(RunInUseError, match=rf"pid {child.pid}\)"):
            _resume(run_dir)
    finally:
        child.kill()  # SIGKILL: nothing can be written
        child.communicate(timeout=60)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "running"
    assert not is_locked(run_dir) and run_status(run_dir) == "interrupted"
    with pytest.raises(FileExistsError, match=r"already exists \(the run is interrupted\)"):
        fit(make_pipeline(), train_set(), val_set(), config(), run_dir, progress=False)

    resumed = _resume(run_dir)
    log = (run_dir / "train.log").read_text()
    assert f"{run_dir} was interrupted: the process training it died without saving" in log
    assert_same_tensors(resumed, _uninterrupted(tmp_path))
    assert run_status(run_dir) == "completed"


def test_the_lock_is_held_only_while_training(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    assert run_status(tmp_path) is None and not is_locked(tmp_path)
    with lock:
        assert is_locked(tmp_path)
        assert (tmp_path / "run.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunInUseError, match="another live process"):
            RunLock(tmp_path).acquire()
    assert not is_locked(tmp_path)
    with RunLock(tmp_path):  # free again
        pass
