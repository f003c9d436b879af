"""A trainer hook that advances ScheduledDropPath with the iteration count.

The schedule's progress is set explicitly, ``t = min(1, iter / total_steps)``, on every
:class:`~nasnet_det.cells.CellStack` of the model (backbone, FPN bottom-up, second stage).
"""

from __future__ import annotations

from detectron2.engine import HookBase
from torch import nn

from nasnet_det.cells import CellStack
from nasnet_det.drop_path import training_progress

__all__ = ["DropPathHook", "set_drop_path_progress"]


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
    """Before each step, set ``t = min(1, iter / total_steps)`` on the trainer's model."""

    def __init__(self, total_steps: int) -> None:
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.total_steps = int(total_steps)

    def before_step(self) -> None:
        set_drop_path_progress(
            self.trainer.model, training_progress(self.trainer.iter, self.total_steps)
        )
