"""The optimiser and the per-step learning-rate schedule a :class:`TrainConfig` asks for."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn
from torch.optim import SGD, AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from downsizenet_hub.engine.config import Schedule, TrainConfig


def build_optimizer(parameters: list[nn.Parameter], config: TrainConfig) -> Optimizer:
    """AdamW, or SGD with momentum, over ``parameters`` (the trainable ones only)."""
    if config.optimizer == "sgd":
        return SGD(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(schedule: Schedule, total_steps: int) -> Callable[[int], float]:
    """The factor applied to the peak learning rate after ``t`` of ``total_steps`` steps."""
    if schedule == "cosine":
        return lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total_steps) / total_steps))
    if schedule == "poly":
        return lambda t: max(0.0, 1.0 - t / total_steps) ** 0.9
    return lambda t: 1.0


def build_scheduler(optimizer: Optimizer, config: TrainConfig, total_steps: int) -> LambdaLR:
    """Stepped once per optimiser step; its state_dict holds only counters (checkpoint-safe)."""
    return LambdaLR(optimizer, lr_factor(config.schedule, total_steps))
