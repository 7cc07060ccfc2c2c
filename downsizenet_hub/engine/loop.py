"""The training loop: :func:`fit`.

One epoch: reseed from (seed, epoch, rank) -> train on full batches in the seeded order (each step
in :mod:`~downsizenet_hub.engine.step`) -> evaluate when due -> write the checkpoint, metrics.json
and a train.log line (rank 0) -> ``on_epoch_end`` -> stop here if Ctrl-C or SIGTERM came
meanwhile.

Why this file is longer than ~400 lines: it is the one epoch loop, and the state it carries
(resume position, seeded order, best metrics, the stop request, the run lock) is shared by every
phase of an epoch, so :class:`_Trainer` reads top to bottom as one sequence. Everything that does
not need that state already lives beside it: one step in :mod:`.step`, evaluation in
:mod:`.evaluation`, checkpoint files in :mod:`.checkpoint`, progress in :mod:`.progress`, signals
and stopping in :mod:`.stopping`, the run lock in :mod:`.runlock`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from downsizenet_hub.engine import distributed
from downsizenet_hub.engine.checkpoint import (
    CHECKPOINT_NAME,
    LOG_NAME,
    METRICS_NAME,
    TrainingState,
    check_position,
    check_resumable,
    load_checkpoint,
    normalise_recipe,
    save_checkpoint,
    write_metrics_json,
)
from downsizenet_hub.engine.config import (
    EpochRecord,
    FitResult,
    TrainConfig,
    TrainingError,
    TrainingInterrupted,
    final_metrics,
    throughput,
)
from downsizenet_hub.engine.devices import deterministic_mode, resolve_amp, resolve_device
from downsizenet_hub.engine.distributed import DistInfo
from downsizenet_hub.engine.evaluation import (
    EvaluationStopped,
    MetricLike,
    build_metric,
    evaluation_rounds,
    run_evaluation,
)
from downsizenet_hub.engine.loaders import (
    Collate,
    collate_pairs,
    dataset_size,
    eval_loader,
    steps_per_epoch,
    train_loader,
)
from downsizenet_hub.engine.optim import build_optimizer, build_scheduler
from downsizenet_hub.engine.progress import RunReporter
from downsizenet_hub.engine.randomness import (
    capture_rng,
    epoch_seeds,
    loader_generator,
    restore_rng,
    seed_everything,
)
from downsizenet_hub.engine.runlock import RunLock, recorded_status, run_status
from downsizenet_hub.engine.step import StepRunner
from downsizenet_hub.engine.stopping import StopRequest
from downsizenet_hub.tensor_hash import tensors_sha256

EpochCallback = Callable[[EpochRecord], None]


class _StopAtStep(Exception):
    """Internal: every rank agreed to stop after ``step`` steps of 0-based ``epoch``."""

    def __init__(self, epoch: int, step: int, sums: dict[str, float]) -> None:
        super().__init__(epoch, step)
        self.epoch, self.step, self.sums = epoch, step, sums


def _warn_about_frozen_layers_in_train_mode(pipeline: nn.Module) -> None:
    """Frozen batch-norm layers left in train mode would still update their running statistics:
    the pipeline should override ``train()`` to keep its frozen parts in eval mode."""
    drifting = [
        name
        for name, module in pipeline.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        and module.training
        and module.track_running_stats
        and not any(p.requires_grad for p in module.parameters())
    ]
    if drifting:
        shown = ", ".join(drifting[:3]) + (", ..." if len(drifting) > 3 else "")
        warnings.warn(
            f"Frozen batch-norm layers are in train mode after pipeline.train() and will change "
            f"their running statistics ({shown}); override the pipeline's train() to keep frozen "
            "parts in eval mode.",
            stacklevel=5,  # the caller of fit()
        )


class _Trainer:
    """The state of one :func:`fit` call; :meth:`run` is the epoch loop."""

    def __init__(
        self,
        pipeline: nn.Module,
        train_set: Dataset[Any],
        val_set: Dataset[Any] | None,
        config: TrainConfig,
        run_dir: Path,
        recipe: dict[str, Any] | None,
        collate_fn: Collate,
        dist_info: DistInfo,
    ) -> None:
        self.pipeline, self.train_set, self.val_set = pipeline, train_set, val_set
        self.config, self.recipe, self.collate_fn, self.dist = config, recipe, collate_fn, dist_info
        self.checkpoint_path = run_dir / CHECKPOINT_NAME
        self.metrics_path = run_dir / METRICS_NAME
        self.log_path = run_dir / LOG_NAME
        self.device = resolve_device(config.device, dist_info)
        self.amp = resolve_amp(config.amp, self.device)
        self.trainable = [p for p in pipeline.parameters() if p.requires_grad]
        # Every name a frozen parameter has in the state_dict (a module shared under two names,
        # like a cached front that wraps the front, appears under both).
        self.frozen = {
            name
            for name, p in pipeline.named_parameters(remove_duplicate=False)
            if not p.requires_grad
        }
        weights = pipeline.state_dict()
        self.frozen_sha256 = (
            tensors_sha256({name: weights[name] for name in self.frozen}) if self.frozen else None
        )
        if not self.trainable:
            raise ValueError(f"{type(pipeline).__name__} has no trainable parameters to fit.")
        size = dataset_size(train_set)
        self.steps = steps_per_epoch(size, config.batch_size, dist_info.world_size)
        if self.steps == 0:
            raise ValueError(
                f"The training set has {size} images, fewer than batch_size="
                f"{config.batch_size} per process x {dist_info.world_size} processes."
            )
        pipeline.to(self.device)
        self.optimizer = build_optimizer(self.trainable, config)
        self.scheduler = build_scheduler(self.optimizer, config, config.epochs * self.steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.metric: MetricLike | None = None
        if val_set is not None:
            self.metric = build_metric(pipeline, self.device)
        self.history: list[EpochRecord] = []
        # (completed epochs, steps into the next) of the checkpoint on disk; None: none yet.
        self.on_disk: tuple[int, int] | None = None
        self.first_epoch = 0  # the first epoch this call trains (set by run)
        self.reporter = RunReporter(None, show=False)
        self.stop = StopRequest()
        # Set by fit() when the run it resumes was killed without a word (see engine.runlock).
        self.killed_note: str | None = None

    # -- state -----------------------------------------------------------------------------------

    def state(
        self,
        epoch: int,
        step: int,
        partial: dict[str, float] | None = None,
        rng: list[dict[str, Any]] | None = None,
    ) -> TrainingState:
        return TrainingState(
            epoch=epoch,
            step=step,
            world_size=self.dist.world_size,
            config=self.config.to_dict(),
            recipe=self.recipe,
            model={k: v for k, v in self.pipeline.state_dict().items() if k not in self.frozen},
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            history=[record.to_dict() for record in self.history],
            partial=partial,
            rng=rng,
            frozen_sha256=self.frozen_sha256,
        )

    def restore(self, state: TrainingState) -> None:
        if state.frozen_sha256 != self.frozen_sha256 and state.frozen_sha256 is not None:
            raise ValueError(
                f"{self.checkpoint_path} was trained behind other frozen weights than this "
                "pipeline's (their SHA-256 differs); resume with the same frozen resizer and "
                "trunk, or use another run directory."
            )
        leaves_out = self.frozen if state.frozen_sha256 is not None else set()
        try:
            missing, unexpected = self.pipeline.load_state_dict(state.model, strict=False)
            if unexpected or set(missing) != leaves_out:
                wrong = sorted(set(missing) ^ leaves_out) + sorted(unexpected)
                raise RuntimeError(f"missing or unexpected entries: {', '.join(wrong[:5])}")
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise ValueError(
                f"{self.checkpoint_path} does not fit this pipeline: {first}"
            ) from None
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.scaler.load_state_dict(state.scaler)
        self.history = [EpochRecord.from_dict(record) for record in state.history]
        self.on_disk = (state.epoch, state.step)

    def save(self, epoch: int, step: int, state: TrainingState | None = None) -> None:
        """Rank 0 writes the checkpoint (``state`` defaults to the current epoch-boundary one)."""
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_path, state or self.state(epoch, step))
        self.on_disk = (epoch, step)

    def write_metrics(self, status: str, error: str | None = None) -> None:
        if self.dist.is_main:
            write_metrics_json(
                self.metrics_path,
                status=status,
                error=error,
                history=self.history,
                config=self.config,
                recipe=self.recipe,
                world_size=self.dist.world_size,
            )

    def checkpoint_phrase(self) -> str:
        """The checkpoint a resume would start from, e.g. "the checkpoint after epoch 2 in X"."""
        if self.on_disk is None:
            return "no checkpoint (none was written yet)"
        epoch, step = self.on_disk
        where = f"after epoch {epoch}" if step == 0 else f"at epoch {epoch + 1}, step {step}"
        return f"the checkpoint {where} in {self.checkpoint_path}"

    def interrupted(self, message: str) -> TrainingInterrupted:
        self.reporter.log(message, console=False)
        self.write_metrics("interrupted", message)
        epoch, step = self.on_disk or (0, 0)
        checkpoint = self.checkpoint_path if self.on_disk is not None else None
        return TrainingInterrupted(message, checkpoint=checkpoint, epoch=epoch, step=step)

    # -- steps -------------------------------------------------------------------------------------

    def train_epoch(
        self, epoch: int, start_step: int, sums: dict[str, float] | None, rng: dict[str, Any] | None
    ) -> EpochRecord:
        config = self.config
        seeds = epoch_seeds(config.seed, epoch, self.dist.rank)
        if rng is None:
            seed_everything(seeds)
        else:
            restore_rng(rng)
        loader = train_loader(
            self.train_set,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            seed=config.seed,
            epoch=epoch,
            skip_steps=start_step,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            generator=loader_generator(seeds),
            collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda",
        )
        sums = dict(sums) if sums else {"loss_sum": 0.0, "images": 0.0, "seconds": 0.0}
        self.step_runner.model.train()
        if epoch == self.first_epoch:
            _warn_about_frozen_layers_in_train_mode(self.pipeline)
        self.reporter.start_epoch(epoch + 1, config.epochs, self.steps, start_step)
        step, tick = start_step, time.perf_counter()
        for images, targets in loader:
            step += 1
            loss_value, stop_now = self.step_runner(
                images,
                targets,
                where=f"epoch {epoch + 1}, step {step}",
            )
            now = time.perf_counter()
            sums["loss_sum"] += loss_value
            sums["images"] += len(images) * self.dist.world_size
            sums["seconds"] += now - tick
            tick = now
            self.reporter.step(loss_value, sums["images"] / max(sums["seconds"], 1e-9))
            if config.log_every and step % config.log_every == 0:
                self.reporter.log(
                    f"epoch {epoch + 1} step {step}/{self.steps} loss {loss_value:.4f}",
                    console=False,
                )
            if stop_now:
                raise _StopAtStep(epoch, step, sums)
        record = EpochRecord(
            epoch=epoch + 1,
            train_loss=sums["loss_sum"] / self.steps,
            lr=float(self.optimizer.param_groups[0]["lr"]),
            images=int(sums["images"]),
            train_seconds=sums["seconds"],
            eval_seconds=0.0,
        )
        if (
            self.metric is not None
            and self.val_set is not None
            and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs)
        ):
            started = time.perf_counter()
            try:
                record.metrics = run_evaluation(
                    self.pipeline,
                    self.val_loader(),
                    self.metric,
                    self.device,
                    self.amp,
                    stop=lambda: self.step_runner.agree(self.zero)[1],
                    rounds=evaluation_rounds(
                        dataset_size(self.val_set), config.batch_size, self.dist.world_size
                    ),
                )
            except EvaluationStopped:
                # Every step of the epoch is done, its evaluation is not: the checkpoint says
                # "all steps in", and a resume trains nothing more and evaluates.
                raise _StopAtStep(epoch, step, sums) from None
            record.eval_seconds = time.perf_counter() - started
        return record

    def val_loader(self) -> torch.utils.data.DataLoader[Any]:
        assert self.val_set is not None
        return eval_loader(
            self.val_set,
            batch_size=self.config.batch_size,
            num_workers=self.config.num_workers,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda",
        )

    # -- the run -----------------------------------------------------------------------------------

    def run(
        self, resumed: TrainingState | None, show: bool, on_epoch_end: EpochCallback | None
    ) -> FitResult:
        started = time.perf_counter()
        config, main = self.config, self.dist.is_main
        model: nn.Module = self.pipeline
        if self.dist.is_distributed:
            model = DistributedDataParallel(
                self.pipeline,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.find_unused_parameters,
            )
        self.reporter = RunReporter(self.log_path if main else None, show=show and main)
        stop = self.stop = StopRequest(notify=self.reporter.log)
        self.step_runner = StepRunner(
            model,
            self.trainable,
            self.optimizer,
            self.scheduler,
            self.scaler,
            device=self.device,
            amp=self.amp,
            grad_clip=config.grad_clip,
            # Not a closure over self: the trainer (and its DDP wrapper, which holds the process
            # group) is then freed as soon as fit() returns, without waiting for the collector.
            stop_requested=lambda: stop.requested,
        )
        zero = self.zero = torch.zeros((), device=self.device)
        start_epoch = resumed.epoch if resumed else 0
        self.first_epoch = start_epoch
        start_step = resumed.step if resumed else 0
        sums = resumed.partial if resumed else None
        rng = resumed.rng[self.dist.rank] if resumed and resumed.rng else None
        with deterministic_mode(config.deterministic), self.reporter, self.stop:
            if resumed:
                epoch, step = resumed.epoch, resumed.step
                if self.killed_note:
                    self.reporter.log(f"{self.killed_note}; its last checkpoint is kept.")
                self.reporter.log(f"resuming {self.checkpoint_path} (epoch {epoch}, step {step})")
            else:
                self.reporter.log(
                    f"training {config.epochs} epochs x {self.steps} steps on {self.device}"
                    f" ({self.dist.world_size} process(es)); config {config.to_dict()}",
                    console=False,
                )
            self.reporter.start_run(
                config.epochs * self.steps, start_epoch * self.steps + start_step
            )
            try:
                for epoch in range(start_epoch, config.epochs):
                    record = self.train_epoch(epoch, start_step, sums, rng)
                    start_step, sums, rng = 0, None, None
                    self.history.append(record)
                    self.save(epoch + 1, 0)
                    done = epoch + 1 == config.epochs
                    self.write_metrics("completed" if done else "running")
                    self.reporter.end_epoch(record, config.epochs)
                    if on_epoch_end is not None:
                        on_epoch_end(record)
                    stop_now = self.step_runner.agree(zero)[1]
                    if not done and stop_now:
                        raise _StopAtStep(epoch + 1, 0, {})
            except _StopAtStep as stop:
                self.interrupted_at_step(stop)
            except KeyboardInterrupt:
                raise self.interrupted(
                    f"Training interrupted; resuming continues from {self.checkpoint_phrase()}."
                ) from None
            except TrainingError as error:
                message = f"{error}; kept {self.checkpoint_phrase()}."
                self.reporter.log(message, console=False)
                self.write_metrics("failed", message)
                raise TrainingError(message) from None
            if resumed and resumed.epoch == config.epochs:
                self.reporter.log(f"{self.checkpoint_path} is already complete: nothing to train.")
        distributed.barrier()  # fit() returns once rank 0's files are complete
        return FitResult(
            final_metrics=final_metrics(self.history),
            history=list(self.history),
            metrics_path=self.metrics_path,
            log_path=self.log_path,
            checkpoint_path=self.checkpoint_path,
            wall_time_s=time.perf_counter() - started,
            images_per_s=throughput(self.history),
            epochs_completed=len(self.history),
            resumed_from_epoch=resumed.epoch if resumed else None,
        )

    def interrupted_at_step(self, stop: _StopAtStep) -> None:
        """Save where every rank stopped (when data loads in this process), then raise."""
        if stop.step > 0 and self.config.num_workers == 0:
            rngs = distributed.all_gather_objects(capture_rng())
            self.save(stop.epoch, stop.step, self.state(stop.epoch, stop.step, stop.sums, rngs))
        # With worker processes (num_workers > 0) the data RNG lives in the workers and cannot be
        # saved, so the last epoch checkpoint stays the exact point to resume from.
        # Every rank stopped at the same step: wait until rank 0's files are complete, so that a
        # resume started right away on any rank reads the new checkpoint.
        distributed.barrier()
        where = self.checkpoint_phrase()
        raise self.interrupted(
            f"Training stopped by {self.stop.reason or 'a stop request'}; resuming continues "
            f"exactly from {where}."
        )


def fit(
    pipeline: nn.Module,
    train_set: Dataset[Any],
    val_set: Dataset[Any] | None,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    collate_fn: Collate | None = None,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``pipeline``'s trainable parameters on ``train_set``; see the package docstring.

    Args:
        pipeline: an ``nn.Module`` called as ``pipeline(images, targets) -> {"loss", "preds"}``
            with ``build_metric()`` when ``val_set`` is given.
        train_set, val_set: map-style datasets of ``(image, target dict)`` (or whatever
            ``collate_fn`` turns into ``(images, targets)``); ``val_set=None`` skips evaluation.
        config: optimiser, schedule, batch size (per process), seed, device, AMP...
        run_dir: receives ``checkpoint.pt``, ``metrics.json`` and ``train.log`` (rank 0 only).
        resume: continue the run in ``run_dir`` exactly where its checkpoint stops; a fresh run
            refuses a ``run_dir`` that already holds a checkpoint.
        progress: progress bars (interactive terminals) and epoch lines on stderr; train.log is
            written regardless.
        on_epoch_end: called on every rank with each finished epoch's record, after the
            checkpoint is written.
        recipe: JSON-able description of what is trained (pipeline, data, resizer), stored in the
            checkpoint and metrics.json and required to match on resume.

    Raises:
        TrainingError: a non-finite loss or gradient norm (the last good checkpoint is kept).
        TrainingInterrupted: Ctrl-C (SIGINT) or SIGTERM, after saving a resumable checkpoint.
        RunInUseError: another live process is training ``run_dir`` (a FileExistsError).
        ValueError, TypeError, FileNotFoundError, FileExistsError: bad settings or run_dir.
    """
    if not isinstance(pipeline, nn.Module):
        raise TypeError(f"fit() trains an nn.Module pipeline, got {type(pipeline).__name__}.")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"fit() needs a TrainConfig, got {type(config).__name__}.")
    run_dir = Path(run_dir)
    if not resume and (run_dir / CHECKPOINT_NAME).exists():
        status = run_status(run_dir)
        raise FileExistsError(
            f"{run_dir / CHECKPOINT_NAME} already exists"
            + (f" (the run is {status})" if status else "")
            + ": resume that run or choose another run directory."
        )
    dist_info = distributed.init_from_env()
    # Rank 0 holds the run's lock while it trains: a second process is refused, and a run left
    # "running" by a process that died without a word is recognised as interrupted.
    with RunLock(run_dir) if dist_info.is_main else contextlib.nullcontext():
        killed = resume and dist_info.is_main and recorded_status(run_dir) in ("running", None)
        return _fit(
            pipeline, train_set, val_set, config, run_dir, dist_info,
            resume=resume, collate_fn=collate_fn, progress=progress, on_epoch_end=on_epoch_end,
            recipe=recipe, killed=killed,
        )  # fmt: skip


def _fit(
    pipeline: nn.Module,
    train_set: Dataset[Any],
    val_set: Dataset[Any] | None,
    config: TrainConfig,
    run_dir: Path,
    dist_info: DistInfo,
    *,
    resume: bool,
    collate_fn: Collate | None,
    progress: bool,
    on_epoch_end: EpochCallback | None,
    recipe: Mapping[str, Any] | None,
    killed: bool,
) -> FitResult:
    """:func:`fit` once the run's lock is held (rank 0). ``killed``: the run being resumed was
    left "running" by a process that died without writing anything."""
    trainer = _Trainer(
        pipeline,
        train_set,
        val_set,
        config,
        run_dir,
        normalise_recipe(recipe),
        collate_fn or collate_pairs,
        dist_info,
    )
    resumed: TrainingState | None = None
    if resume:
        resumed = load_checkpoint(trainer.checkpoint_path)
        check_resumable(
            resumed, config.to_dict(), trainer.recipe, dist_info.world_size, trainer.checkpoint_path
        )
        check_position(resumed, config.epochs, trainer.steps, trainer.checkpoint_path)
        trainer.restore(resumed)
        if killed:
            trainer.killed_note = (
                f"{run_dir} was interrupted: the process training it died without saving "
                "(killed, or it crashed)"
            )
    return trainer.run(resumed, progress, on_epoch_end)
