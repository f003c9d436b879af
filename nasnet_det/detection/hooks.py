"""The engine's hooks inside Detectron2's trainer.

:class:`EngineHook` runs a :mod:`nasnet_det.engine` hook (the same four methods; Detectron2's
trainer has the ``iter``, ``start_iter``, ``max_iter`` and ``model`` they read) as a Detectron2
``HookBase``. :class:`DropPathHook` is the engine's drop-path hook so wrapped: the schedule's
progress ``t = min(1, iter / total_steps)`` on every :class:`~nasnet_det.cells.CellStack` of the
model (backbone, FPN bottom-up, second stage). :class:`ZeroLossHook` stops a run whose total
loss is exactly 0 from its start, as Detectron2 stops one whose loss is not finite.
"""

from __future__ import annotations

from detectron2.engine import HookBase

from nasnet_det import engine
from nasnet_det.cli import UserError
from nasnet_det.engine.hooks import set_drop_path_progress

__all__ = ["DropPathHook", "EngineHook", "ZeroLossError", "ZeroLossHook", "set_drop_path_progress"]


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


class ZeroLossError(UserError):
    """The training loss was exactly 0 from the start of a run: nothing to learn from."""


class ZeroLossHook(HookBase):
    """Stop a run whose total loss is exactly 0 at each of its first ``iters`` recorded
    iterations (from ``start_iter``; fewer when the run is shorter).

    Detectron2's trainer raises ``FloatingPointError`` for a loss that is not finite; a loss of
    exactly 0 is the silent twin: every gradient is 0 and the run "succeeds" without learning.
    A Faster R-CNN's RPN loss is never 0 on real images (background anchors always count), so a
    0 means every loss term is switched off or empty (e.g. ``MODEL.RPN.LOSS_WEIGHT 0`` with
    ``MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 0``). Reads ``total_loss`` from the event storage
    (the main process records it); raises :class:`ZeroLossError` before later hooks (put it
    first) write a checkpoint of that step."""

    def __init__(self, iters: int = 3) -> None:
        self.iters, self.zeros, self.done = iters, 0, False

    def after_step(self) -> None:
        if self.done:
            return
        it = self.trainer.iter
        value, at = self.trainer.storage.latest().get("total_loss", (None, None))
        if at != it:  # not recorded at this step (another process, a metric period)
            return
        if value != 0.0:
            self.done = True  # something to learn from
            return
        self.zeros += 1
        if self.zeros >= self.iters or it + 1 >= self.trainer.max_iter:
            start = self.trainer.start_iter
            steps = f"iteration {it}" if it == start else f"each of iterations {start} to {it}"
            raise ZeroLossError(
                f"the training loss is exactly 0 at {steps}: nothing to learn from (every "
                "loss term is 0; check the loss weights such as MODEL.RPN.LOSS_WEIGHT, "
                "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE and the objects in DATASETS.TRAIN)"
            )
