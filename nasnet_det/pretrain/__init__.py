"""ImageNet pretraining with the NASNet paper's recipe (resumable, distributed) and evaluation of
imported weights. Entry points: :func:`train`, :func:`evaluate_weights`, :func:`load_config`."""

from nasnet_det.pretrain.config import DEFAULTS, apply_overrides, load_config
from nasnet_det.pretrain.engine import CHECKPOINT_NAME, build_model_from_config, evaluate, train
from nasnet_det.pretrain.evaluate import PREPROCESSING, evaluate_weights, load_weights

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULTS",
    "PREPROCESSING",
    "apply_overrides",
    "build_model_from_config",
    "evaluate",
    "evaluate_weights",
    "load_config",
    "load_weights",
    "train",
]
