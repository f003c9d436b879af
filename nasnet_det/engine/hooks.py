"""The engine's hooks: drop-path progress, weight EMA, a per-step callback and a progress bar.

Each reads what it needs from its trainer: ``iter``, ``start_iter``, ``max_iter``, ``model``
(and :class:`ProgressHook` ``last_loss`` when the trainer keeps one). Detectron2's trainer has
the same attributes, so ``tools/train_net.py`` runs these same hooks
(:class:`nasnet_det.detection.hooks.EngineHook`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from nasnet_det.cells import CellStack
from nasnet_det.drop_path import training_progress
from nasnet_det.engine.ema import ModelEma
from nasnet_det.engine.trainer import HookBase

__all__ = [
    "DropPathHook",
    "EMAHook",
    "ProgressHook",
    "StepCallbackHook",
    "set_drop_path_progress",
]


def set_drop_path_progress(model: nn.Module, progress: float) -> int:
    """Set ``progress`` on every :class:`~nasnet_det.cells.CellStack` (the modules that own the
    schedule) inside ``model``. Returns how many were updated (0 without NASNet parts)."""
    count = 0
    for m in model.modules():
        if isinstance(m, CellStack):
            m.set_drop_path_progress(progress)
            count += 1
    return count


class DropPathHook(HookBase):
    """ScheduledDropPath: before each step, ``t = min(1, iter / total_steps)`` on every
    :class:`~nasnet_det.cells.CellStack` of the trainer's model."""

    def __init__(self, total_steps: int) -> None:
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.total_steps = int(total_steps)

    def before_step(self) -> None:
        set_drop_path_progress(
            self.trainer.model, training_progress(self.trainer.iter, self.total_steps)
        )


class EMAHook(HookBase):
    """Update a :class:`~nasnet_det.engine.ModelEma` of the trainer's model after every step.

    With ``copy_at_start`` the average starts from the model's weights at the start of training
    (after a checkpoint was loaded into the model), unless :meth:`load_state_dict` restored it.
    A checkpointable: ``state_dict``/``load_state_dict``.
    """

    def __init__(self, ema: ModelEma, copy_at_start: bool = True) -> None:
        self.ema = ema
        self._copy = copy_at_start

    def before_train(self) -> None:
        if self._copy:
            self.ema.module.load_state_dict(self.trainer.model.state_dict())

    def after_step(self) -> None:
        self.ema.update(self.trainer.model)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.ema.state_dict(), "num_updates": self.ema.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.module.load_state_dict(state["model"])
        self.ema.num_updates = int(state["num_updates"])
        self._copy = False


class StepCallbackHook(HookBase):
    """Call ``fn(steps done)`` after every step (benchmarks time steps with it)."""

    def __init__(self, fn: Callable[[int], None]) -> None:
        self.fn = fn

    def after_step(self) -> None:
        self.fn(self.trainer.iter + 1)


class ProgressHook(HookBase):
    """A tqdm bar on ``stderr`` over the run's steps (``start_iter`` to ``max_iter``), with the
    trainer's ``last_loss`` every ``every`` steps when it keeps one; off unless ``enabled``."""

    def __init__(self, desc: str, enabled: bool = True, every: int = 25) -> None:
        self.desc, self.enabled, self.every = desc, enabled, max(1, int(every))
        self.bar = None

    def before_train(self) -> None:
        if self.enabled:
            from tqdm import tqdm

            t = self.trainer
            self.bar = tqdm(total=t.max_iter, initial=t.start_iter, unit="it", desc=self.desc,
                            file=sys.stderr, dynamic_ncols=True)  # fmt: skip

    def after_step(self) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        loss = getattr(self.trainer, "last_loss", None)
        it = self.trainer.iter
        if loss is not None and (it % self.every == 0 or it == self.trainer.max_iter - 1):
            self.bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
