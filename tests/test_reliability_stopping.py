"""A stop request during evaluation is honoured at the next batch, and the run resumes exactly.

Job schedulers send SIGKILL 30 s after SIGTERM (Slurm's KillWait), and one evaluation can take
minutes: the signal must not wait for it. The signal is raised from inside the validation set's
``__getitem__`` at a chosen item, so it lands at a known point whatever the machine's load, and
the test counts the batches evaluated after it (never wall time).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import Dataset

from downsizenet_hub.engine import TrainingInterrupted, fit
from downsizenet_hub.engine.checkpoint import load_checkpoint, save_checkpoint
from downsizenet_hub.engine.evaluation import (
    EvaluationStopped,
    evaluation_rounds,
    run_evaluation,
)

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

VAL_BATCHES = 3  # 10 validation items at batch size 4: batches of 4, 4 and 2


class SignalledValidation(Dataset[tuple[Tensor, dict[str, Tensor]]]):
    """The test's validation set; the first time item ``at`` is read, ``signum`` is raised, and
    every item read from then on is recorded."""

    def __init__(self, at: int, signum: int = signal.SIGTERM) -> None:
        self.inner = val_set()
        self.at, self.signum = at, signum
        self.raised = False
        self.read_after: list[int] = []

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        if self.raised:
            self.read_after.append(index)
        elif index == self.at:
            self.raised = True
            signal.raise_signal(self.signum)
        return self.inner[index]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_evaluation_stops_it_at_the_next_batch(tmp_path: Path, signum: int) -> None:
    run_dir = tmp_path / "run"
    validation = SignalledValidation(at=4, signum=signum)  # the first item of batch 2 of 3
    with pytest.raises(TrainingInterrupted, match="resuming continues exactly") as stopped:
        fit(make_pipeline(), train_set(), validation, config(), run_dir, progress=False)
    # The batch being read when the signal came is finished (items 5-7); no later batch starts.
    assert validation.read_after == [5, 6, 7]
    assert (stopped.value.epoch, stopped.value.step) == (0, STEPS)
    saved = load_checkpoint(run_dir / "checkpoint.pt")
    assert (saved.epoch, saved.step) == (0, STEPS)  # every step in, the evaluation not
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert "evaluation batch" in (run_dir / "train.log").read_text()

    resumed = make_pipeline()
    result = fit(resumed, train_set(), val_set(), config(), run_dir, resume=True, progress=False)
    straight = make_pipeline()
    straight_dir = tmp_path / "straight"
    reference = fit(straight, train_set(), val_set(), config(), straight_dir, progress=False)
    assert_same_tensors(weights(resumed), weights(straight))
    assert [r.metrics for r in result.history] == [r.metrics for r in reference.history]


def test_run_evaluation_asks_after_every_batch_and_pads_a_short_share() -> None:
    pipeline = make_pipeline()
    loader = torch.utils.data.DataLoader(val_set(), batch_size=4, collate_fn=_pairs)
    asked: list[int] = []

    def stop_at(round_: int) -> Any:
        def stop() -> bool:
            asked.append(len(asked) + 1)
            return len(asked) == round_

        return stop

    metric = pipeline.build_metric()
    with pytest.raises(EvaluationStopped) as stopped:
        run_evaluation(pipeline, loader, metric, torch.device("cpu"), False, stop=stop_at(2))
    assert stopped.value.batches == 2 and asked == [1, 2]
    # A rank whose share has fewer batches still answers every round of the collective.
    asked.clear()
    values = run_evaluation(
        pipeline, loader, metric, torch.device("cpu"), False, stop=stop_at(0), rounds=5
    )
    assert asked == [1, 2, 3, 4, 5] and set(values) == {"mae"}
    assert evaluation_rounds(10, 4, 1) == VAL_BATCHES
    assert evaluation_rounds(10, 4, 2) == 2  # rank 0 holds 5 items: 2 batches
    assert evaluation_rounds(9, 4, 4) == 1


def _pairs(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, list[dict[str, Tensor]]]:
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


@pytest.mark.parametrize(
    ("epoch", "step", "message"),
    [
        (99, 0, "stops at epoch 99, step 0, outside a run of 3"),
        (1, 11, "stops at epoch 1, step 11"),
        (1, -5, "step must be a non-negative integer"),
        (1, "2", "step must be a non-negative integer"),
    ],
)
def test_a_checkpoint_edited_to_an_impossible_position_is_refused(
    tmp_path: Path, epoch: object, step: object, message: str
) -> None:
    run_dir = tmp_path / "run"
    fit(make_pipeline(), train_set(), val_set(), config(), run_dir, progress=False)
    saved = load_checkpoint(run_dir / "checkpoint.pt")
    saved.epoch, saved.step = epoch, step  # type: ignore[assignment]
    saved.history = [saved.history[0]] * epoch  # consistent with the edited epoch
    saved.partial = {"loss_sum": 0.0, "images": 0.0, "seconds": 0.0}
    save_checkpoint(run_dir / "checkpoint.pt", saved)
    before = (run_dir / "metrics.json").read_text()
    with pytest.raises(ValueError, match=message):
        fit(make_pipeline(), train_set(), val_set(), config(), run_dir, resume=True, progress=False)
    assert (run_dir / "metrics.json").read_text() == before  # nothing marked "interrupted"
