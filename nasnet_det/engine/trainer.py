"""The training loop with hooks, shaped like Detectron2's ``TrainerBase``/``HookBase``.

The loop counts optimiser steps. A subclass supplies :meth:`TrainerBase.run_step`
(:class:`SimpleTrainer`: one batch, one loss, one optimiser step); everything around a step
(checkpoints, weight EMA, evaluation, logging, the drop-path schedule) is a :class:`HookBase`
with four optional methods, called in registration order. The core package does not import
Detectron2, so this is our own few lines rather than Detectron2's class; the interface is the
same, so :class:`nasnet_det.detection.hooks.EngineHook` runs these hooks in Detectron2's trainer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["HookBase", "SimpleTrainer", "TrainerBase"]


class HookBase:
    """Something to do around the steps of a :class:`TrainerBase`.

    ``self.trainer`` is set on registration (a weak reference, so a hook does not keep its
    trainer alive). In ``after_step`` ``trainer.iter`` is the index of the step just run, so
    ``trainer.iter + 1`` steps are done.
    """

    trainer: TrainerBase

    def before_train(self) -> None:
        """Once, before the first step (also when resuming)."""

    def after_train(self) -> None:
        """Once, after the last step, also when training stops with an exception."""

    def before_step(self) -> None:
        """Before every step."""

    def after_step(self) -> None:
        """After every step."""


class TrainerBase:
    """Run steps ``start_iter`` to ``max_iter - 1`` with hooks around them.

    Subclasses implement :meth:`run_step`. ``self.iter`` is the current step index; after a
    finished :meth:`train` it equals ``max_iter``.
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append hooks (``None`` entries are skipped); they run in this order."""
        for hook in hooks:
            if hook is None:
                continue
            hook.trainer = weakref.proxy(self)
            self._hooks.append(hook)

    @property
    def hooks(self) -> tuple[HookBase, ...]:
        return tuple(self._hooks)

    def train(self, start_iter: int, max_iter: int) -> None:
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        try:
            self.before_train()
            for self.iter in range(start_iter, max_iter):
                self.before_step()
                self.run_step()
                self.after_step()
            self.iter = max_iter
        finally:
            self.after_train()

    def _run_hooks(self, stage: str) -> None:
        for h in self._hooks:
            getattr(h, stage)()

    def before_train(self) -> None:
        self._run_hooks("before_train")

    def after_train(self) -> None:
        self._run_hooks("after_train")

    def before_step(self) -> None:
        self._run_hooks("before_step")

    def after_step(self) -> None:
        self._run_hooks("after_step")

    def run_step(self) -> None:
        raise NotImplementedError


class SimpleTrainer(TrainerBase):
    """One batch, one loss, one optimiser step per iteration.

    ``batches(iteration)`` returns the iteration's batch and ``loss_fn(model, batch)`` its
    scalar loss (default :func:`classification_loss`: cross entropy of ``model(x)`` against
    ``y``). ``lr``, an fvcore ``ParamScheduler`` over ``where = iter / max_iter``, sets every
    parameter group's learning rate before the step (None: the optimiser's own). ``clip_grad_norm``
    > 0 clips the norm of all gradients together. A loss that is not finite raises
    ``FloatingPointError`` before the step unless ``check_finite`` is off. ``last_loss`` holds
    the last step's loss (a detached tensor).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Callable[[int], Any],
        loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
        *,
        lr: Callable[[float], float] | None = None,
        clip_grad_norm: float = 0.0,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.loss_fn = loss_fn or classification_loss
        self.lr, self.clip_grad_norm, self.check_finite = lr, float(clip_grad_norm), check_finite
        self.last_loss: torch.Tensor | None = None

    def run_step(self) -> None:
        if self.lr is not None:
            value = self.lr(self.iter / self.max_iter)
            for group in self.optimizer.param_groups:
                group["lr"] = value
        loss = self.loss_fn(self.model, self.batches(self.iter))
        if self.check_finite and not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.iter}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        self.last_loss = loss.detach()


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross entropy of ``model(x)`` against the labels ``y`` of ``batch = (x, y)``."""
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)
