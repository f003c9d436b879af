"""ImageNet pretraining with the NASNet paper's recipe (resumable, distributed) and evaluation of
imported weights. Entry points: :func:`train`, :func:`evaluate_weights`, :func:`load_config`."""

from nasnet_det.pretrain.config import apply_overrides, get_cfg, load_config
from nasnet_det.pretrain.engine import (
    CHECKPOINT_NAME,
    PretrainTrainer,
    build_model_from_config,
    train,
)
from nasnet_det.pretrain.evaluate import PREPROCESSING, evaluate, evaluate_weights, load_weights
from nasnet_det.pretrain.trainer import HookBase, TrainerBase

__all__ = [
    "CHECKPOINT_NAME",
    "PREPROCESSING",
    "HookBase",
    "PretrainTrainer",
    "TrainerBase",
    "apply_overrides",
    "build_model_from_config",
    "evaluate",
    "evaluate_weights",
    "get_cfg",
    "load_config",
    "load_weights",
    "train",
]
