"""Learning-rate schedules: fvcore parameter schedulers for the cosine shapes, and TF's staircase.

:func:`cosine` and :func:`warmup_hold_cosine` return fvcore ``ParamScheduler`` s (a value per
``where`` in [0, 1], the fraction of training done): :class:`~nasnet_det.engine.SimpleTrainer`
reads them as learning rates, ``tools/train_net.py`` as Detectron2 ``LRMultiplier``
multipliers (``SOLVER.LR_SCHEDULER_NAME: WarmupHoldCosineLR``). :class:`ExponentialWarmup` is
the paper's ImageNet schedule (stepped, with a state dict for resuming).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    ParamScheduler,
)

__all__ = ["ExponentialWarmup", "cosine", "warmup_hold_cosine"]


def cosine(start: float, end: float = 0.0) -> ParamScheduler:
    """``end + (start - end) / 2 * (1 + cos(pi * where))`` (SGDR without restarts)."""
    return CosineParamScheduler(start, end)


def warmup_hold_cosine(
    warmup: float, hold: float, warmup_factor: float, warmup_method: str = "linear"
) -> ParamScheduler:
    """A multiplier: 1 until ``hold``, then a cosine to 0 at the end, times a warm-up factor
    over the first ``warmup`` of training (both fractions of training): rising linearly from
    ``warmup_factor`` to 1, or ("constant") ``warmup_factor`` throughout.

    From scratch a classifier sits on a plateau for hundreds of steps before digit identity is
    learned; holding the full rate gets it off sooner than a cosine from the start (the CPU
    demo's schedule)."""
    if not (0.0 <= warmup <= 1.0 and 0.0 <= hold < 1.0):
        raise ValueError(
            f"warm-up must be in [0, 1] and hold in [0, 1) (fractions of training), got warmup "
            f"{warmup}, hold {hold}"
        )
    if warmup_method not in ("linear", "constant"):
        raise ValueError(f"warm-up method must be 'linear' or 'constant', got {warmup_method!r}")
    decay: ParamScheduler = CosineParamScheduler(1.0, 0.0)
    if hold > 0:
        decay = CompositeParamScheduler(
            [ConstantParamScheduler(1.0), decay],
            lengths=[hold, 1.0 - hold],
            interval_scaling=["rescaled", "rescaled"],
        )
    return _Warmup(decay, warmup, warmup_factor, warmup_method == "linear")


class _Warmup(ParamScheduler):
    """``schedule(where)`` times the warm-up factor (1 from ``length`` on)."""

    def __init__(self, schedule: ParamScheduler, length: float, factor: float, linear: bool):
        self.schedule, self.length, self.factor, self.linear = schedule, length, factor, linear

    def __call__(self, where: float) -> float:
        value = self.schedule(where)
        if where >= self.length:
            return value
        if self.linear:
            return value * (self.factor + (1.0 - self.factor) * where / self.length)
        return value * self.factor


class ExponentialWarmup:
    """``lr * decay ** floor(epoch / decay_epochs)`` after a linear warm-up from ``warmup_lr``.

    Stepped once per optimiser step; ``epoch`` is fractional (``step / steps_per_epoch``).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr: float,
        steps_per_epoch: int,
        decay: float = 0.97,
        decay_epochs: float = 2.4,
        warmup_epochs: float = 0.0,
        warmup_lr: float = 1e-6,
    ) -> None:
        self.optimizer = optimizer
        self.base_lr, self.steps_per_epoch = lr, steps_per_epoch
        self.decay, self.decay_epochs = decay, decay_epochs
        self.warmup_epochs, self.warmup_lr = warmup_epochs, warmup_lr
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        epoch = step / self.steps_per_epoch
        if epoch < self.warmup_epochs:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * epoch / self.warmup_epochs
        return self.base_lr * self.decay ** math.floor(epoch / self.decay_epochs)

    def _apply(self) -> None:
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> float:
        return self.lr_at(self.step_count)

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self._apply()
