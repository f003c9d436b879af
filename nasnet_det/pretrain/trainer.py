"""The loop and hook interface, now :mod:`nasnet_det.engine.trainer` (kept importable here)."""

from nasnet_det.engine.trainer import HookBase, TrainerBase

__all__ = ["HookBase", "TrainerBase"]
