"""One optimisation step, identical on every rank.

forward under autocast -> agree across ranks on the mean loss and on a pending stop request (one
small all-reduce; every rank then takes the same branch, so none waits forever in a collective)
-> :class:`TrainingError` if the loss is not finite, before any weight changes -> backward ->
unscale and clip the gradients -> optimiser step (skipped by the GradScaler on inf/nan gradients
under AMP) -> scheduler step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from downsizenet_hub.engine import distributed
from downsizenet_hub.engine.config import TrainingError
from downsizenet_hub.engine.loaders import move_to_device


def loss_of(output: object) -> Tensor:
    """The scalar ``output["loss"]``; TypeError naming what the pipeline returned instead."""
    loss = output.get("loss") if isinstance(output, Mapping) else None
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        found = sorted(output) if isinstance(output, Mapping) else type(output).__name__
        raise TypeError(
            f"A pipeline must return a dict with a scalar 'loss' tensor in train mode; got {found}."
        )
    return loss.reshape(())


class StepRunner:
    """Runs training steps of ``model`` (the pipeline, or its DDP wrapper)."""

    def __init__(
        self,
        model: nn.Module,
        trainable: list[nn.Parameter],
        optimizer: Optimizer,
        scheduler: LRScheduler,
        scaler: torch.amp.GradScaler,
        *,
        device: torch.device,
        amp: bool,
        grad_clip: float | None,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.model, self.trainable = model, trainable
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.device, self.amp = device, amp
        self.max_norm = grad_clip if grad_clip is not None else math.inf
        # Read after the forward pass, so a Ctrl-C during it counts for this step.
        self.stop_requested = stop_requested

    def agree(self, loss: Tensor) -> tuple[float, bool]:
        """The loss averaged over ranks, and whether any rank asked to stop."""
        stop_requested = self.stop_requested()
        if not distributed.is_distributed():
            return float(loss.item()), stop_requested
        flag = torch.tensor(float(stop_requested), device=loss.device)
        packed = torch.stack([loss.float(), flag])
        distributed.all_reduce_sum(packed)
        return float(packed[0].item()) / distributed.world_size(), bool(packed[1].item() > 0)

    def __call__(self, images: Any, targets: Any, *, where: str) -> tuple[float, bool]:
        """One step on a batch; returns (mean loss over ranks, whether every rank stops now).

        ``where`` (e.g. ``"epoch 2, step 5"``) goes into the error message.
        """
        images = move_to_device(images, self.device)
        targets = move_to_device(targets, self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            loss = loss_of(self.model(images, targets))
        loss_value, stop_now = self.agree(loss.detach())
        if not math.isfinite(loss_value):
            raise TrainingError(f"Non-finite loss ({loss_value}) at {where}: training stopped")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.max_norm)
        # Under AMP the scaler skips steps with inf/nan gradients by design; without it they would
        # poison the weights. Gradients are all-reduced, so every rank sees the same norm.
        if not self.amp and not math.isfinite(float(norm.item())):
            raise TrainingError(f"Non-finite gradient norm at {where}: training stopped")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss_value, stop_now
