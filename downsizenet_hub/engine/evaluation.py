"""Evaluation: the pipeline's metric over a dataset, reduced across processes.

The metric comes from ``pipeline.build_metric()``: a torchmetrics ``Metric`` (or anything with
``update(preds, targets)``, ``compute()``, ``reset()``). Each rank evaluates its own shard; a
torchmetrics metric gathers its states from every rank inside ``compute()`` when a process group
is initialised, so every rank returns the metric of the whole dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from downsizenet_hub.engine.config import TrainConfig
from downsizenet_hub.engine.devices import resolve_amp, resolve_device
from downsizenet_hub.engine.distributed import init_from_env
from downsizenet_hub.engine.loaders import Collate, collate_pairs, eval_loader, move_to_device


class MetricLike(Protocol):
    """What ``pipeline.build_metric()`` returns."""

    def update(self, preds: Any, targets: Any) -> None: ...

    def compute(self) -> Any: ...

    def reset(self) -> None: ...


def build_metric(pipeline: nn.Module, device: torch.device) -> MetricLike:
    """``pipeline.build_metric()``, on ``device`` when it is a module (torchmetrics metrics are)."""
    builder = getattr(pipeline, "build_metric", None)
    if not callable(builder):
        raise TypeError(
            f"{type(pipeline).__name__} has no build_metric() method; a pipeline evaluated by the "
            "engine must return its metric from build_metric()."
        )
    metric = builder()
    if isinstance(metric, nn.Module):
        metric.to(device)
    return metric


def metric_values(computed: object) -> dict[str, float]:
    """Scalar entries of ``metric.compute()`` as floats; non-scalar ones (per-class vectors, class
    ids) are left out: report them under their own scalar keys if they matter."""
    if not isinstance(computed, Mapping):
        raise TypeError(
            "The pipeline's metric must compute() a mapping of names to values (e.g. a "
            f"torchmetrics MetricCollection); got {type(computed).__name__}."
        )
    values: dict[str, float] = {}
    for name, value in computed.items():
        if isinstance(value, Tensor):
            if value.numel() == 1:
                values[str(name)] = float(value.item())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[str(name)] = float(value)
    return values


def preds_of(output: object) -> Any:
    if not isinstance(output, Mapping) or "preds" not in output:
        raise TypeError(
            "A pipeline must return a dict with 'preds' in eval mode; got "
            f"{sorted(output) if isinstance(output, Mapping) else type(output).__name__}."
        )
    return output["preds"]


class EvaluationStopped(Exception):
    """``stop()`` said to stop after ``batches`` batches of an evaluation (see
    :func:`run_evaluation`)."""

    def __init__(self, batches: int) -> None:
        super().__init__(f"evaluation stopped after {batches} batch(es)")
        self.batches = batches


def run_evaluation(
    pipeline: nn.Module,
    loader: torch.utils.data.DataLoader[Any],
    metric: MetricLike,
    device: torch.device,
    amp: bool,
    *,
    stop: Callable[[], bool] | None = None,
    rounds: int | None = None,
) -> dict[str, float]:
    """Eval mode, no gradients: update ``metric`` on every batch of ``loader``, then compute.

    ``stop`` is asked after every batch; when it says so, :class:`EvaluationStopped` is raised
    at once (an evaluation can take minutes, and a scheduler's SIGKILL follows its SIGTERM
    after 30 s). Under torchrun ``stop`` must agree across ranks (a collective) and ``rounds``
    is the most batches any rank has: a rank with fewer still asks ``stop`` that many times, so
    every rank takes part in every collective and all stop after the same round.
    """
    pipeline.eval()
    metric.reset()
    done = 0
    with torch.no_grad():
        for images, targets in loader:
            images = move_to_device(images, device)
            targets = move_to_device(targets, device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                output = pipeline(images, targets)
            metric.update(preds_of(output), targets)
            done += 1
            if stop is not None and stop():
                raise EvaluationStopped(done)
        for extra in range(done, rounds or 0):  # this rank's share ran out before the others'
            if stop is not None and stop():
                raise EvaluationStopped(extra + 1)
    return metric_values(metric.compute())


def evaluation_rounds(dataset_size: int, batch_size: int, world_size: int) -> int:
    """Batches of the rank with the most (rank 0) in :func:`~.loaders.eval_loader`'s split."""
    largest_share = -(-dataset_size // world_size)
    return -(-largest_share // batch_size)


def evaluate(
    pipeline: nn.Module,
    dataset: Dataset[Any],
    config: TrainConfig,
    collate_fn: Collate | None = None,
) -> dict[str, float]:
    """The pipeline's metric on ``dataset`` (``config`` gives batch size, workers, device, AMP).

    Under torchrun each rank evaluates a shard and every rank returns the whole-dataset values.
    Leaves the pipeline on the device, in eval mode.
    """
    dist_info = init_from_env()
    device = resolve_device(config.device, dist_info)
    amp = resolve_amp(config.amp, device)
    pipeline.to(device)
    metric = build_metric(pipeline, device)
    loader = eval_loader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
        collate_fn=collate_fn or collate_pairs,
        pin_memory=device.type == "cuda",
    )
    return run_evaluation(pipeline, loader, metric, device, amp)
