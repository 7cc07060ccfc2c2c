"""The training engine on a toy pipeline: learning, exact resume, NaN stop, Ctrl-C, frozen parts,
config checks, atomic checkpoints, evaluation.

The toy pipeline is a frozen conv + batch-norm "backbone" and a trainable linear head with
dropout, regressing one number per 2x4x4 image; its dataset adds noise from the torch, NumPy and
Python generators, so exact resume is only possible if every generator is reproduced.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchmetrics import MeanAbsoluteError, MetricCollection

from downsizenet_hub.engine import (
    EpochRecord,
    TrainConfig,
    TrainingError,
    TrainingInterrupted,
    evaluate,
    fit,
)
from downsizenet_hub.engine.checkpoint import (
    TrainingState,
    load_checkpoint,
    save_checkpoint,
    write_atomic,
)
from downsizenet_hub.engine.loaders import steps_per_epoch, train_indices
from downsizenet_hub.engine.optim import lr_factor
from downsizenet_hub.engine.progress import RunReporter
from downsizenet_hub.engine.randomness import capture_rng, restore_rng

# ---------------------------------------------------------------------------------------------
# The toy pipeline and data (also imported by test_engine_ddp.py's worker script)


class ToyDataset(Dataset[tuple[Tensor, dict[str, Tensor]]]):
    """``size`` fixed 2x4x4 images with target ``y`` = a fixed linear function of the image.

    ``augment`` adds noise drawn from torch, NumPy and Python's global generators.
    """

    def __init__(self, size: int, *, seed: int = 0, augment: bool = True) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(size, 2, 4, 4, generator=generator)
        direction = torch.randn(2 * 4 * 4, generator=torch.Generator().manual_seed(123))
        self.targets = self.images.flatten(1) @ direction / 4
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image = self.images[index]
        if self.augment:
            scale = 0.01 * (1.0 + random.random()) * float(np.random.uniform(0.5, 1.5))
            image = image + scale * torch.randn_like(image)
        return image, {"y": self.targets[index]}


Event = Callable[[], None]


class ToyPipeline(nn.Module):
    """Frozen conv + batch norm, trainable dropout + linear head; MSE loss, MAE metric.

    ``events`` maps a 1-based count of training forward calls to a callable run inside that call
    (to raise KeyboardInterrupt, send SIGINT, ...); ``nan_at`` makes that call's loss NaN,
    ``nan_grad_at`` its gradient (the loss stays finite).
    """

    def __init__(
        self,
        *,
        dropout: float = 0.1,
        events: dict[int, Event] | None = None,
        nan_at: int | None = None,
        nan_grad_at: int | None = None,
    ) -> None:
        super().__init__()
        self.frozen = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.frozen.requires_grad_(False)
        self.frozen.eval()
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * 4 * 4, 1))
        self.events = events or {}
        self.nan_at = nan_at
        self.nan_grad_at = nan_grad_at
        self.train_calls = 0
        self.modes_seen: list[tuple[bool, bool]] = []  # (frozen.training, head.training)

    def train(self, mode: bool = True) -> ToyPipeline:
        super().train(mode)
        self.frozen.eval()  # frozen parts stay in eval mode, as the engine's contract asks
        return self

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Any]:
        preds = self.head(self.frozen(images)).squeeze(1)
        y = torch.stack([target["y"] for target in targets])
        loss = F.mse_loss(preds, y)
        if self.training:
            self.train_calls += 1
            self.modes_seen.append((self.frozen.training, self.head.training))
            if self.train_calls in self.events:
                self.events[self.train_calls]()
            if self.train_calls == self.nan_at:
                loss = loss * float("nan")
            if self.train_calls == self.nan_grad_at:
                # Adds exactly 0 to the loss, but its gradient is 0 * inf = nan.
                bias = self.head[2].bias.sum()
                loss = loss + 0.0 * torch.sqrt(bias - bias.detach())
        return {"loss": loss, "preds": preds}

    def build_metric(self) -> MetricCollection:
        return MetricCollection({"mae": TargetMAE()})


class TargetMAE(MeanAbsoluteError):
    """Mean absolute error of ``preds`` against the target dicts' ``y``."""

    def update(self, preds: Tensor, targets: list[dict[str, Tensor]]) -> None:  # type: ignore[override]
        super().update(preds, torch.stack([target["y"] for target in targets]))


FROZEN_PARAMETERS = {"frozen.0.weight", "frozen.0.bias", "frozen.1.weight", "frozen.1.bias"}


def make_pipeline(**kwargs: Any) -> ToyPipeline:
    """A ToyPipeline initialised the same way every time."""
    torch.manual_seed(0)
    return ToyPipeline(**kwargs)


def config(**overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "epochs": 3,
        "batch_size": 4,
        "lr": 1e-2,
        "seed": 7,
        "log_every": 2,
    }
    values.update(overrides)
    return TrainConfig(**values)


TRAIN_SIZE = 40  # 10 steps per epoch at batch size 4
STEPS = TRAIN_SIZE // 4


def train_set() -> ToyDataset:
    return ToyDataset(TRAIN_SIZE, seed=1)


def val_set() -> ToyDataset:
    return ToyDataset(10, seed=2, augment=False)


def weights(module: nn.Module) -> dict[str, Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def assert_same_tensors(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def send_sigint() -> None:
    signal.raise_signal(signal.SIGINT)


def send_sigint_twice() -> None:
    signal.raise_signal(signal.SIGINT)  # a stop request
    signal.raise_signal(signal.SIGINT)  # impatience: KeyboardInterrupt at once


# ---------------------------------------------------------------------------------------------
# Learning


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(tmp_path: Path) -> None:
    data = ToyDataset(8, seed=3, augment=False)
    pipeline = make_pipeline(dropout=0.0)
    result = fit(
        pipeline,
        data,
        None,
        config(epochs=8, batch_size=8, lr=0.05, schedule="constant", grad_clip=None),
        tmp_path,
        progress=False,
    )
    losses = [record.train_loss for record in result.history]
    assert len(losses) == 8  # one step per epoch: the same 8 images every time
    assert losses[-1] < 0.5 * losses[0]
    assert result.final_metrics == {}


def test_fit_writes_metrics_log_and_checkpoint(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    result = fit(pipeline, train_set(), val_set(), config(epochs=2), tmp_path, progress=False)
    assert result.epochs_completed == 2
    assert [r.epoch for r in result.history] == [1, 2]
    assert set(result.final_metrics) == {"mae"}
    assert result.images_per_s > 0
    assert all(r.images == TRAIN_SIZE for r in result.history)

    metrics = json.loads(result.metrics_path.read_text())
    assert metrics["status"] == "completed"
    assert metrics["epochs_completed"] == 2
    assert metrics["final"] == result.final_metrics
    assert metrics["config"] == config(epochs=2).to_dict()
    assert [h["train_loss"] for h in metrics["history"]] == [r.train_loss for r in result.history]

    log = result.log_path.read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log and "step 10/10" in log

    payload = torch.load(result.checkpoint_path, weights_only=True)
    assert payload["epoch"] == 2 and payload["step"] == 0
    assert payload["rng"] is None and payload["partial"] is None
    assert set(payload) >= {"model", "optimizer", "scheduler", "scaler", "history", "config"}
    assert payload["optimizer"]["state"]  # AdamW moments of the trainable parameters
    trained = {k: v for k, v in weights(pipeline).items() if k not in FROZEN_PARAMETERS}
    assert_same_tensors(payload["model"], trained)  # frozen parameters: only their fingerprint
    assert not list(tmp_path.glob(".*.tmp"))


def test_epoch_lines_go_to_the_console_unless_progress_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit(make_pipeline(), train_set(), None, config(epochs=1), tmp_path / "a", progress=True)
    assert "epoch 1/1" in capsys.readouterr().err
    fit(make_pipeline(), train_set(), None, config(epochs=1), tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bars_render_on_a_terminal(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    record = EpochRecord(1, 0.5, 1e-3, 8, 0.1, 0.0, {"mae": 0.25})
    with RunReporter(tmp_path / "train.log", show=True, console=console) as reporter:
        reporter.start_run(total_steps=4, done_steps=0)
        reporter.start_epoch(1, 2, steps=4, done_steps=0)
        for _ in range(4):
            reporter.step(0.5, 80.0)
        reporter.end_epoch(record, 2)
    shown = buffer.getvalue()
    assert "epoch 1/2" in shown and "loss 0.5000" in shown and "80.0 img/s" in shown
    assert "mae 0.2500" in (tmp_path / "train.log").read_text()


def test_on_epoch_end_gets_each_record(tmp_path: Path) -> None:
    seen: list[EpochRecord] = []
    result = fit(
        make_pipeline(),
        train_set(),
        val_set(),
        config(epochs=2, eval_every=2),
        tmp_path,
        progress=False,
        on_epoch_end=seen.append,
    )
    assert seen == result.history
    assert seen[0].metrics == {} and set(seen[1].metrics) == {"mae"}  # evaluated every 2 epochs


# ---------------------------------------------------------------------------------------------
# Frozen parts


def test_frozen_parts_stay_in_eval_mode_and_unchanged(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    frozen_before = weights(pipeline.frozen)
    head_before = weights(pipeline.head)
    fit(pipeline, train_set(), val_set(), config(epochs=2), tmp_path, progress=False)
    assert pipeline.modes_seen and set(pipeline.modes_seen) == {(False, True)}
    assert_same_tensors(weights(pipeline.frozen), frozen_before)
    assert all(p.grad is None for p in pipeline.frozen.parameters())
    assert not torch.equal(weights(pipeline.head)["2.weight"], head_before["2.weight"])


# ---------------------------------------------------------------------------------------------
# Resume


def _uninterrupted(tmp_path: Path, **overrides: Any) -> tuple[dict[str, Tensor], list[EpochRecord]]:
    pipeline = make_pipeline()
    result = fit(
        pipeline, train_set(), val_set(), config(**overrides), tmp_path / "straight", progress=False
    )
    return weights(pipeline), result.history


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test's duration.

    A process started in the background by a non-interactive shell (``cmd &``, nohup, some CI
    runners) inherits SIGINT *ignored*, and Python then installs no handler: the loop's handler
    steps aside to SIG_IGN after the first Ctrl-C and the second is lost. The engine restores
    whatever it found, which is right; the test asks what happens in a terminal.
    """
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize(
    ("event", "at_call", "expected_epoch", "expected_step"),
    [
        # A KeyboardInterrupt raised inside a step: the checkpoint of epoch 1 is what remains.
        (raise_keyboard_interrupt, STEPS + 3, 1, 0),
        # SIGINT (Ctrl-C) inside a step: the step finishes and a mid-epoch checkpoint is saved.
        (send_sigint, STEPS + 3, 1, 3),
        # ... in an epoch's last step: saved before that epoch's evaluation and checkpoint.
        (send_sigint, STEPS, 0, STEPS),
        # Ctrl-C twice: the second one stops at once; the checkpoint of epoch 1 remains.
        (send_sigint_twice, STEPS + 3, 1, 0),
    ],
    ids=["keyboard-interrupt", "sigint", "sigint-last-step", "sigint-twice"],
)
def test_interrupt_then_resume_reproduces_an_uninterrupted_run_exactly(
    tmp_path: Path,
    event: Event,
    at_call: int,
    expected_epoch: int,
    expected_step: int,
    python_sigint: None,
) -> None:
    straight_weights, straight_history = _uninterrupted(tmp_path)

    run_dir = tmp_path / "interrupted"
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as stopped:
        fit(
            make_pipeline(events={at_call: event}),
            train_set(),
            val_set(),
            config(),
            run_dir,
            progress=False,
        )
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert (stopped.value.epoch, stopped.value.step) == (expected_epoch, expected_step)
    assert stopped.value.checkpoint == run_dir / "checkpoint.pt"
    assert "resume" in str(stopped.value) and "\n" not in str(stopped.value)
    saved = load_checkpoint(run_dir / "checkpoint.pt")
    assert (saved.epoch, saved.step) == (expected_epoch, expected_step)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"

    resumed_pipeline = make_pipeline()
    torch.manual_seed(999)  # whatever the caller's RNG state, the resumed run is the same
    result = fit(
        resumed_pipeline, train_set(), val_set(), config(), run_dir, resume=True, progress=False
    )
    assert result.resumed_from_epoch == expected_epoch
    assert_same_tensors(weights(resumed_pipeline), straight_weights)
    assert [r.train_loss for r in result.history] == [r.train_loss for r in straight_history]
    assert [r.metrics for r in result.history] == [r.metrics for r in straight_history]


def test_sigint_with_worker_processes_keeps_the_epoch_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted) as stopped:
        fit(
            make_pipeline(events={STEPS + 3: send_sigint}),
            train_set(),
            None,
            config(epochs=2, num_workers=1),
            tmp_path,
            progress=False,
        )
    assert (stopped.value.epoch, stopped.value.step) == (1, 0)
    assert load_checkpoint(tmp_path / "checkpoint.pt").step == 0


def test_resuming_a_finished_run_returns_its_result(tmp_path: Path) -> None:
    first = fit(make_pipeline(), train_set(), val_set(), config(epochs=1), tmp_path, progress=False)
    again = fit(
        make_pipeline(),
        train_set(),
        val_set(),
        config(epochs=1),
        tmp_path,
        resume=True,
        progress=False,
    )
    assert again.history == first.history and again.final_metrics == first.final_metrics


def test_resume_refuses_different_settings(tmp_path: Path) -> None:
    fit(
        make_pipeline(),
        train_set(),
        None,
        config(epochs=1),
        tmp_path,
        progress=False,
        recipe={"resizer": "downsizenet"},
    )
    with pytest.raises(ValueError, match=r"lr: 0\.01 there, 0\.02 here") as error:
        fit(
            make_pipeline(),
            train_set(),
            None,
            config(epochs=1, lr=0.02),
            tmp_path,
            resume=True,
            progress=False,
            recipe={"resizer": "downsizenet"},
        )
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="recipe"):
        fit(
            make_pipeline(),
            train_set(),
            None,
            config(epochs=1),
            tmp_path,
            resume=True,
            progress=False,
            recipe={"resizer": "bilinear"},
        )
    # Logging frequency does not change the result: allowed.
    fit(
        make_pipeline(),
        train_set(),
        None,
        config(epochs=1, log_every=5),
        tmp_path,
        resume=True,
        progress=False,
        recipe={"resizer": "downsizenet"},
    )


def test_resume_needs_a_checkpoint_and_a_fresh_run_an_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"checkpoint\.pt does not exist"):
        fit(
            make_pipeline(),
            train_set(),
            None,
            config(epochs=1),
            tmp_path,
            resume=True,
            progress=False,
        )
    fit(make_pipeline(), train_set(), None, config(epochs=1), tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        fit(make_pipeline(), train_set(), None, config(epochs=1), tmp_path, progress=False)


def test_resume_refuses_a_checkpoint_of_another_pipeline(tmp_path: Path) -> None:
    fit(make_pipeline(), train_set(), None, config(epochs=1), tmp_path, progress=False)
    other = make_pipeline()
    other.head[2] = nn.Linear(4 * 4 * 4, 1, bias=False)
    with pytest.raises(ValueError, match="does not fit this pipeline"):
        fit(other, train_set(), None, config(epochs=1), tmp_path, resume=True, progress=False)


def test_checkpoints_leave_out_frozen_parameters_but_fingerprint_them(tmp_path: Path) -> None:
    interrupted = make_pipeline(events={STEPS + 3: raise_keyboard_interrupt})
    with pytest.raises(TrainingInterrupted):
        fit(interrupted, train_set(), None, config(epochs=2), tmp_path, progress=False)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert not FROZEN_PARAMETERS & set(saved.model)
    assert {"frozen.1.running_mean", "head.2.weight"} <= set(saved.model)  # buffers stay
    assert saved.frozen_sha256 is not None and len(saved.frozen_sha256) == 64

    changed = make_pipeline()
    with torch.no_grad():
        changed.frozen[0].weight.add_(1e-3)
    with pytest.raises(ValueError, match="other frozen weights"):
        fit(changed, train_set(), None, config(epochs=2), tmp_path, resume=True, progress=False)


def test_a_frozen_module_shared_under_two_names_is_left_out_under_both(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    pipeline.alias = pipeline.frozen  # as a feature cache wraps the frozen front it caches
    fit(pipeline, train_set(), None, config(epochs=1), tmp_path, progress=False)
    saved = set(load_checkpoint(tmp_path / "checkpoint.pt").model)
    assert not {name.replace("frozen.", "alias.") for name in FROZEN_PARAMETERS} & saved
    assert not FROZEN_PARAMETERS & saved and "alias.1.running_mean" in saved


def test_a_checkpoint_holding_the_whole_model_still_resumes(tmp_path: Path) -> None:
    """Checkpoints written before frozen parameters were left out carry them and no fingerprint."""
    straight_weights, _ = _uninterrupted(tmp_path)
    run_dir = tmp_path / "old"
    first = make_pipeline(events={STEPS + 3: raise_keyboard_interrupt})
    with pytest.raises(TrainingInterrupted):
        fit(first, train_set(), val_set(), config(), run_dir, progress=False)
    saved = load_checkpoint(run_dir / "checkpoint.pt")
    frozen = {k: v for k, v in make_pipeline().state_dict().items() if k in FROZEN_PARAMETERS}
    saved.model, saved.frozen_sha256 = {**saved.model, **frozen}, None
    save_checkpoint(run_dir / "checkpoint.pt", saved)
    resumed = make_pipeline()
    fit(resumed, train_set(), val_set(), config(), run_dir, resume=True, progress=False)
    assert_same_tensors(weights(resumed), straight_weights)


# ---------------------------------------------------------------------------------------------
# Non-finite loss


def test_nan_loss_stops_with_the_last_good_checkpoint_intact(tmp_path: Path) -> None:
    snapshots: list[bytes] = []

    def snapshot(record: EpochRecord) -> None:
        snapshots.append((tmp_path / "checkpoint.pt").read_bytes())

    pipeline = make_pipeline(nan_at=STEPS + 5)
    with pytest.raises(TrainingError, match=r"Non-finite loss \(nan\) at epoch 2, step 5") as err:
        fit(
            pipeline,
            train_set(),
            val_set(),
            config(),
            tmp_path,
            progress=False,
            on_epoch_end=snapshot,
        )
    assert "after epoch 1" in str(err.value) and "\n" not in str(err.value)
    assert len(snapshots) == 1
    assert (tmp_path / "checkpoint.pt").read_bytes() == snapshots[0]
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(tensor).all() for tensor in saved.model.values())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "Non-finite loss" in metrics["error"]
    assert metrics["epochs_completed"] == 1


def test_nan_loss_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"epoch 1, step 1: .*kept no checkpoint"):
        fit(make_pipeline(nan_at=1), train_set(), None, config(), tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_non_finite_gradient_stops_before_the_weights_change(tmp_path: Path) -> None:
    pipeline = make_pipeline(nan_grad_at=2)
    seen: list[dict[str, Tensor]] = []
    pipeline.events[2] = lambda: seen.append(weights(pipeline))
    with pytest.raises(TrainingError, match="Non-finite gradient norm at epoch 1, step 2"):
        fit(pipeline, train_set(), None, config(), tmp_path, progress=False)
    assert_same_tensors(weights(pipeline), seen[0])


# ---------------------------------------------------------------------------------------------
# Checkpoint files


def _state(epoch: int) -> TrainingState:
    return TrainingState(
        epoch=epoch,
        step=0,
        world_size=1,
        config=config().to_dict(),
        recipe=None,
        model={"w": torch.full((3,), float(epoch))},
        optimizer={},
        scheduler={},
        scaler={},
        history=[],
    )


def test_a_crash_while_writing_a_checkpoint_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state(1))
    before = path.read_bytes()

    def crash(obj: object, handle: Any) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path).model["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_write_atomic_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.bin"
    write_atomic(path, lambda handle: handle.write(b"one"))
    write_atomic(path, lambda handle: handle.write(b"two"))
    assert path.read_bytes() == b"two"


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(ValueError, match="not a downsizenet-engine/1 checkpoint"):
        load_checkpoint(path)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng()
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(torch.load(path, weights_only=True))
    assert (random.random(), float(np.random.rand())) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])


# ---------------------------------------------------------------------------------------------
# Settings


def test_schedules_and_optimizers(tmp_path: Path) -> None:
    assert lr_factor("constant", 10)(7) == 1.0
    cosine = lr_factor("cosine", 10)
    assert (cosine(0), cosine(5), cosine(10)) == (1.0, pytest.approx(0.5), pytest.approx(0.0))
    poly = lr_factor("poly", 10)
    assert (poly(0), poly(10)) == (1.0, 0.0) and poly(5) == pytest.approx(0.5**0.9)
    result = fit(
        make_pipeline(),
        train_set(),
        None,
        config(epochs=2, optimizer="sgd", schedule="poly"),
        tmp_path,
        progress=False,
    )
    assert result.history[0].lr == pytest.approx(1e-2 * 0.5**0.9)
    assert result.history[-1].lr == 0.0


def test_deterministic_mode_is_scoped_to_the_run(tmp_path: Path) -> None:
    plain, _ = _uninterrupted(tmp_path / "plain", epochs=1)
    strict, _ = _uninterrupted(tmp_path / "strict", epochs=1, deterministic=True)
    assert_same_tensors(plain, strict)  # CPU training is deterministic either way
    assert not torch.are_deterministic_algorithms_enabled()


def test_config_round_trips_through_a_dict() -> None:
    original = config(grad_clip=None, amp="off")
    assert TrainConfig.from_dict(original.to_dict()) == original
    with pytest.raises(ValueError, match=r"unknown TrainConfig key\(s\) \['colour'\]"):
        TrainConfig.from_dict({**original.to_dict(), "colour": "red"})


def test_frozen_batch_norm_left_in_train_mode_is_reported(tmp_path: Path) -> None:
    class Careless(ToyPipeline):
        def train(self, mode: bool = True) -> Careless:
            nn.Module.train(self, mode)  # forgets to keep self.frozen in eval mode
            return self

    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"Frozen batch-norm layers .*\(frozen\.1\)"):
        fit(Careless(), train_set(), None, config(epochs=1), tmp_path, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda_trains_and_resumes(tmp_path: Path) -> None:
    cuda = config(epochs=2, device="cuda", amp="auto")
    result = fit(make_pipeline(), train_set(), val_set(), cuda, tmp_path, progress=False)
    assert all(math.isfinite(record.train_loss) for record in result.history)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved.scaler["scale"] > 0  # the GradScaler was on and its state was saved
    assert all(tensor.device.type == "cpu" for tensor in saved.model.values())


# ---------------------------------------------------------------------------------------------
# Data order


def test_training_order_depends_only_on_seed_and_epoch() -> None:
    first = train_indices(10, seed=7, epoch=2, rank=0, world_size=1)
    torch.manual_seed(123)
    assert train_indices(10, seed=7, epoch=2, rank=0, world_size=1) == first
    assert sorted(first) == list(range(10))
    assert train_indices(10, seed=7, epoch=3, rank=0, world_size=1) != first
    shards = [train_indices(10, seed=7, epoch=2, rank=r, world_size=2) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    assert steps_per_epoch(10, 2, 2) == 2 and steps_per_epoch(3, 4, 1) == 0


# ---------------------------------------------------------------------------------------------
# Evaluation


def test_evaluate_gives_the_metric_of_the_whole_set() -> None:
    pipeline = make_pipeline()
    data = val_set()
    values = evaluate(pipeline, data, config(batch_size=3))  # 10 images: last batch of 1 kept
    with torch.no_grad():
        pipeline.eval()
        preds = pipeline(data.images, [{"y": y} for y in data.targets])["preds"]
    assert values["mae"] == pytest.approx(float((preds - data.targets).abs().mean()), rel=1e-6)
    assert not pipeline.training


# ---------------------------------------------------------------------------------------------
# Errors a user can cause


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"optimizer": "adam"}, "optimizer must be one of adamw, sgd"),
        ({"amp": "yes"}, "amp must be one of auto, on, off"),
        ({"grad_clip": 0.0}, "grad_clip must be a positive number or None"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_config_values_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_bad_runs_are_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="amp='on' needs a CUDA device"):
        fit(make_pipeline(), train_set(), None, config(amp="on", device="cpu"), tmp_path)
    with pytest.raises(ValueError, match="fewer than batch_size=4"):
        fit(make_pipeline(), ToyDataset(3), None, config(), tmp_path)
    frozen = make_pipeline()
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, train_set(), None, config(), tmp_path)
    with pytest.raises(TypeError, match="no build_metric"):
        fit(nn.Linear(2, 2), train_set(), val_set(), config(), tmp_path)

    class NoLoss(ToyPipeline):
        def forward(self, images: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Any]:
            return {"preds": super().forward(images, targets)["preds"]}

    with pytest.raises(TypeError, match="scalar 'loss' tensor"):
        fit(NoLoss(), train_set(), None, config(), tmp_path / "noloss")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on CPU-only machines")
def test_asking_for_cuda_without_it_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'cuda' but CUDA is not available"):
        fit(make_pipeline(), train_set(), None, config(device="cuda"), tmp_path)


def test_a_run_is_named_and_its_epoch_lines_break_between_metrics(tmp_path: Path) -> None:
    from downsizenet_hub.engine.progress import run_name

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=60)
    metrics = {f"metric_{index}": 0.125 for index in range(4)}
    record = EpochRecord(1, 0.5, 1e-3, 8, 0.1, 0.0, metrics)
    with run_name("seg x0.3 downsizenet seed 0"):
        reporter = RunReporter(tmp_path / "a" / "train.log", show=True, console=console)
    assert RunReporter(tmp_path / "pretrain" / "bilinear" / "train.log", show=False).name == (
        "pretrain/bilinear"
    )
    with reporter:
        reporter.start_run(total_steps=8, done_steps=0)
        reporter.start_epoch(1, 2, steps=4, done_steps=0)
        for _ in range(4):
            reporter.step(0.5, 80.0)
        reporter.end_epoch(record, 2)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("seg x0.3 downsizenet seed 0:  epoch 1/2  loss 0.5000")
    assert len(lines) > 1 and all(len(line) <= 60 for line in lines)
    items = [item.strip() for line in lines for item in line.split("  ") if item.strip()]
    assert {"metric_0 0.1250", "80.0 img/s", "lr 1.00e-03", "0.1 s/epoch"} <= set(items)
    assert re.fullmatch(r"~\d+ s left in this run", items[-1])  # 4 of 8 steps: measured pace


def test_a_run_prefix_names_the_data_before_the_arm(tmp_path: Path) -> None:
    from downsizenet_hub.engine.progress import run_prefix

    log = tmp_path / "scenes-noisy-large-x0.3" / "downsizenet" / "train.log"
    with run_prefix("pretrain scenes-noisy-large-x0.3"):
        assert RunReporter(log, show=False).name == "pretrain scenes-noisy-large-x0.3 downsizenet"
    assert RunReporter(log, show=False).name == "scenes-noisy-large-x0.3/downsizenet"


def test_time_left_comes_from_the_measured_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    from downsizenet_hub.engine import progress

    clock = iter([100.0, 110.0])  # start, then 10 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    reporter = RunReporter(None, show=False)
    reporter.start_run(total_steps=30, done_steps=10)  # resumed: 10 steps done before
    assert reporter._pace.remaining_seconds() is None  # nothing measured yet: no guess
    for _ in range(5):
        reporter.step(0.1, 1.0)
    assert reporter._pace.remaining_seconds() == pytest.approx(30.0)  # 2 s/step x 15 steps


def test_the_live_line_shows_the_whole_name_and_epoch_at_80_columns(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    reporter = RunReporter(None, show=True, console=console, name="seg x0.3 downsizenet seed 0")
    with reporter:
        reporter.start_run(total_steps=96, done_steps=48)
        reporter.start_epoch(3, 4, steps=24, done_steps=0)
        for _ in range(5):
            reporter.step(0.5, 80.0)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue()).replace("\r", "\n")
    assert "seg x0.3 downsizenet seed 0, epoch 3/4" in shown and "5/24" in shown
    assert "…" not in shown and max(len(line) for line in shown.splitlines()) <= 80
    assert re.search(r"~[\d.]+ (s|min) left", shown)
