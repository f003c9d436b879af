"""A small training loop with hooks, shaped like Detectron2's ``TrainerBase``/``HookBase``.

The loop counts optimiser steps. A subclass supplies :meth:`TrainerBase.run_step`; everything
around a step (checkpoints, weight EMA, evaluation, logging, the drop-path schedule) is a
:class:`HookBase` with four optional methods, called in registration order. The core package does
not import Detectron2, so this is our own few lines rather than Detectron2's class.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

__all__ = ["HookBase", "TrainerBase"]


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
