"""The one training engine: a loop with hooks, the hooks, LR schedules and the weight EMA.

Torch-only (plus fvcore's parameter schedulers), so the core, the cell search and its spawned
workers use it without Detectron2. Every classification training of the package runs through
:class:`SimpleTrainer` (search children, the weight-sharing network, the demo's digit
pretraining) or a :class:`TrainerBase` subclass with its own step (ImageNet pretraining);
``tools/train_net.py`` keeps Detectron2's ``DefaultTrainer`` and runs these hooks inside it
through :class:`nasnet_det.detection.hooks.EngineHook`.
"""

from nasnet_det.engine.ema import ModelEma
from nasnet_det.engine.evaluate import top1_accuracy
from nasnet_det.engine.hooks import (
    DropPathHook,
    EMAHook,
    ProgressHook,
    StepCallbackHook,
    set_drop_path_progress,
)
from nasnet_det.engine.schedules import ExponentialWarmup, cosine, warmup_hold_cosine
from nasnet_det.engine.trainer import HookBase, SimpleTrainer, TrainerBase

__all__ = [
    "DropPathHook",
    "EMAHook",
    "ExponentialWarmup",
    "HookBase",
    "ModelEma",
    "ProgressHook",
    "SimpleTrainer",
    "StepCallbackHook",
    "TrainerBase",
    "cosine",
    "set_drop_path_progress",
    "top1_accuracy",
    "warmup_hold_cosine",
]
