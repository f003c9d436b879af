"""ImageNet pretraining with the NASNet paper's recipe (resumable, distributed) and evaluation of
imported weights. Entry points: :func:`train`, :func:`evaluate_weights`, :func:`load_config`."""

from nasnet_det.pretrain.config import apply_overrides, get_cfg, load_config
from nasnet_det.pretrain.engine import (
    CHECKPOINT_NAME,
    PretrainTrainer,
    build_model_from_config,
    train,
)
from nasnet_det.pretrain.evaluate import evaluate, evaluate_weights
from nasnet_det.pretrain.trainer import HookBase, TrainerBase

__all__ = [
    "CHECKPOINT_NAME",
    "HookBase",
    "PretrainTrainer",
    "TrainerBase",
    "apply_overrides",
    "build_model_from_config",
    "evaluate",
    "evaluate_weights",
    "get_cfg",
    "load_config",
    "train",
]
