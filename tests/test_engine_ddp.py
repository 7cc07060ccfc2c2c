"""The engine under ``torchrun`` with 2 gloo processes on CPU: it trains, the ranks agree, only
rank 0 writes, the metric covers the whole validation set, and a Ctrl-C received by one rank
stops both at the same step with a checkpoint that resumes exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from downsizenet_hub.engine import evaluate
from downsizenet_hub.engine.checkpoint import load_checkpoint

TESTS_DIR = Path(__file__).resolve().parent

# Runs on every rank, in one torchrun launch (starting processes is the slow part): an
# uninterrupted fit, a fit that rank 1 alone gets Ctrl-C in, and its resume. Each phase reports
# what this rank saw and which files it wrote. argv: the folder for run dirs and reports.
WORKER = textwrap.dedent(
    """
    import json, os, random, shutil, signal, sys
    import numpy as np
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, {tests_dir!r})
    from test_engine import ToyDataset, config, make_pipeline, train_set, val_set
    from downsizenet_hub.engine import TrainingInterrupted, cleanup, fit, init_from_env
    from downsizenet_hub.engine import checkpoint as checkpoint_module

    writes = []
    write_atomic = checkpoint_module.write_atomic

    def recording_write_atomic(path, write):
        writes.append(str(path))
        write_atomic(path, write)

    checkpoint_module.write_atomic = recording_write_atomic
    root = sys.argv[1]
    info = init_from_env()

    def phase(name, run_dir, events=None, resume=False, val=None):
        writes.clear()
        pipeline = make_pipeline(events=events)
        report = {{"rank": info.rank, "world_size": info.world_size}}
        try:
            result = fit(pipeline, train_set(), val or val_set(), config(epochs=3),
                         f"{{root}}/{{run_dir}}", progress=False, resume=resume)
            report["final"] = result.final_metrics
            report["history"] = [record.to_dict() for record in result.history]
        except TrainingInterrupted as stopped:
            report["stopped"] = [stopped.epoch, stopped.step]
        report["writes"] = list(writes)
        torch.save(pipeline.state_dict(), f"{{root}}/{{name}}-weights{{info.rank}}.pt")
        with open(f"{{root}}/{{name}}-rank{{info.rank}}.json", "w") as handle:
            json.dump(report, handle)

    phase("straight", "straight")
    # Only rank 1 gets Ctrl-C, in its 8th step (epoch 2, step 3 of 5).
    sigint = {{8: lambda: signal.raise_signal(signal.SIGINT)}} if info.rank == 1 else {{}}
    phase("interrupted", "interrupted", events=sigint)
    if info.rank == 0:  # keep the mid-epoch checkpoint for the test; the resume overwrites it
        shutil.copy(f"{{root}}/interrupted/checkpoint.pt", f"{{root}}/interrupted-checkpoint.pt")
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)  # the resume must not depend on what the process drew meanwhile
    phase("resumed", "interrupted", resume=True)

    class SignalAt(torch.utils.data.Dataset):
        # 9 items: rank 0 evaluates 2 batches (0 2 4 6 | 8), rank 1 one (1 3 5 7).
        def __init__(self, at):
            self.inner, self.at = ToyDataset(9, seed=2, augment=False), at

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, index):
            if index == self.at:
                self.at = None
                signal.raise_signal(signal.SIGINT)
            return self.inner[index]

    # Ctrl-C on rank 0 alone, in its second evaluation batch, while rank 1, whose share has
    # run out, waits in the padding round: both stop there, after all steps of epoch 1.
    phase("eval-stopped", "eval", val=SignalAt(8 if info.rank == 0 else None))
    phase("eval-resumed", "eval", resume=True, val=SignalAt(None))
    cleanup()
    # The group is gone, its gloo workers joined: none is left to outlive the interpreter.
    names = [open(f"/proc/self/task/{{tid}}/comm").read().strip()
             for tid in os.listdir("/proc/self/task")]
    with open(f"{{root}}/gloo-workers-rank{{info.rank}}.txt", "w") as handle:
        handle.write(str(names.count("pt_gloo_runloop")))
    """
)


def _torchrun(script: Path, root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(root),
    ]  # fmt: skip
    # Output to a file, not a pipe: torchrun's workers live in their own sessions and would hold
    # a pipe open. On timeout, SIGTERM makes torchrun stop its workers before it exits.
    log_path = root / "torchrun.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pytest.fail(f"torchrun timed out:\n{log_path.read_text()[-3000:]}")
    assert process.returncode == 0, log_path.read_text()[-5000:]


def _reports(root: Path, phase: str) -> list[dict[str, Any]]:
    return [json.loads((root / f"{phase}-rank{rank}.json").read_text()) for rank in (0, 1)]


def _weights(root: Path, phase: str, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(root / f"{phase}-weights{rank}.pt", weights_only=True)


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture
def run_root() -> Iterator[Path]:
    """A private folder: pytest's shared tmp_path base may be pruned by concurrent sessions."""
    with tempfile.TemporaryDirectory(prefix="downsizenet-ddp-") as folder:
        yield Path(folder)


@pytest.mark.slow
def test_two_gloo_processes_train_agree_and_resume_exactly(run_root: Path) -> None:
    tmp_path = run_root
    sys.path.insert(0, str(TESTS_DIR))
    from test_engine import config, make_pipeline, val_set

    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests_dir=str(TESTS_DIR)))
    _torchrun(script, tmp_path)

    # The uninterrupted run: both ranks end with the same weights and metrics.
    reports = _reports(tmp_path, "straight")
    assert [r["world_size"] for r in reports] == [2, 2]
    straight = _weights(tmp_path, "straight", 0)
    _assert_same(straight, _weights(tmp_path, "straight", 1))
    assert reports[0]["final"] == reports[1]["final"]
    assert reports[0]["history"][0]["images"] == 40  # 5 steps x 4 images x 2 processes
    # Only rank 0 wrote: 3 checkpoints and 3 metrics.json, and the only train.log.
    assert reports[1]["writes"] == []
    names = sorted(Path(path).name for path in reports[0]["writes"])
    assert names == ["checkpoint.pt"] * 3 + ["metrics.json"] * 3
    assert (tmp_path / "straight" / "train.log").read_text().count("epoch 3/3") == 1
    saved = load_checkpoint(tmp_path / "straight" / "checkpoint.pt").model
    frozen = {"frozen.0.weight", "frozen.0.bias", "frozen.1.weight", "frozen.1.bias"}
    _assert_same(saved, {k: v for k, v in straight.items() if k not in frozen})

    # The metric was reduced over both ranks' halves: it equals one process on the whole set.
    pipeline = make_pipeline()
    pipeline.load_state_dict(straight)
    whole = evaluate(pipeline, val_set(), config())
    assert reports[0]["final"]["mae"] == pytest.approx(whole["mae"], rel=1e-6)

    # Ctrl-C on rank 1 only: both ranks stop after the same step, rank 0 saves every rank's RNG.
    stopped = _reports(tmp_path, "interrupted")
    assert [r["stopped"] for r in stopped] == [[1, 3], [1, 3]]
    assert stopped[1]["writes"] == []
    saved = load_checkpoint(tmp_path / "interrupted-checkpoint.pt")
    assert (saved.epoch, saved.step, saved.world_size) == (1, 3, 2)
    assert saved.rng is not None and len(saved.rng) == 2

    # The resume matches the uninterrupted run bit for bit on both ranks.
    resumed = _reports(tmp_path, "resumed")
    _assert_same(_weights(tmp_path, "resumed", 0), straight)
    _assert_same(_weights(tmp_path, "resumed", 1), straight)
    assert [h["train_loss"] for h in resumed[0]["history"]] == [
        h["train_loss"] for h in reports[0]["history"]
    ]
    assert resumed[0]["final"] == reports[0]["final"]
    # Ctrl-C on one rank during evaluation: both stop at the next evaluation round, every step
    # of epoch 1 done; the resume evaluates and trains on to the same weights.
    assert [r["stopped"] for r in _reports(tmp_path, "eval-stopped")] == [[0, 5], [0, 5]]
    _assert_same(_weights(tmp_path, "eval-resumed", 0), straight)
    _assert_same(_weights(tmp_path, "eval-resumed", 1), straight)
    assert len(_reports(tmp_path, "eval-resumed")[0]["history"]) == 3
    # cleanup() freed the process group on both ranks (see engine.distributed).
    assert [(tmp_path / f"gloo-workers-rank{rank}.txt").read_text() for rank in (0, 1)] == [
        "0",
        "0",
    ]
