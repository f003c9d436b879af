"""The engine's hooks inside Detectron2's trainer.

:class:`EngineHook` runs a :mod:`nasnet_det.engine` hook (the same four methods; Detectron2's
trainer has the ``iter``, ``start_iter``, ``max_iter`` and ``model`` they read) as a Detectron2
``HookBase``. :class:`DropPathHook` is the engine's drop-path hook so wrapped: the schedule's
progress ``t = min(1, iter / total_steps)`` on every :class:`~nasnet_det.cells.CellStack` of the
model (backbone, FPN bottom-up, second stage).
"""

from __future__ import annotations

from detectron2.engine import HookBase

from nasnet_det import engine
from nasnet_det.engine.hooks import set_drop_path_progress

__all__ = ["DropPathHook", "EngineHook", "set_drop_path_progress"]


class EngineHook(HookBase):
    """A :class:`nasnet_det.engine.HookBase` run by Detectron2's trainer."""

    def __init__(self, hook: engine.HookBase) -> None:
        self.hook = hook

    def before_train(self) -> None:
        self.hook.trainer = self.trainer  # Detectron2 set self.trainer (a weak proxy)
        self.hook.before_train()

    def after_train(self) -> None:
        self.hook.after_train()

    def before_step(self) -> None:
        self.hook.before_step()

    def after_step(self) -> None:
        self.hook.after_step()


class DropPathHook(EngineHook):
    """Before each step, set ``t = min(1, iter / total_steps)`` on the trainer's model."""

    def __init__(self, total_steps: int) -> None:
        super().__init__(engine.DropPathHook(total_steps))
