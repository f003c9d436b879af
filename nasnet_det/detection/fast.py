"""The detector every inference entry point runs: BN folded, channels_last where it pays.

``tools/predict.py`` (:class:`~nasnet_det.detection.predict.Predictor`), ``tools/train_net.py
--eval-only``, the evaluation during training (raw and EMA weights) and ``tools/export_model.py``
call :func:`inference_model`, so the fast path is what users get without asking. With
``MODEL.NASNET.FAST_INFERENCE False`` they run the model as built. The detections equal the plain
path's up to float rounding (``tests/detection/test_fast_inference.py``).

In training, the trained model is never touched: evaluation runs a folded copy
(``copy=True``), which is thrown away afterwards.
"""

from __future__ import annotations

import copy as copy_module

from detectron2.config import CfgNode
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nasnet_det.fuse import fast_inference

__all__ = ["fast_inference_enabled", "inference_model"]


def fast_inference_enabled(cfg: CfgNode) -> bool:
    """``MODEL.NASNET.FAST_INFERENCE`` (True when a config predates the key)."""
    node = cfg.MODEL.get("NASNET")
    value = node.get("FAST_INFERENCE", True) if node is not None else True
    if not isinstance(value, bool):
        raise ValueError(f"MODEL.NASNET.FAST_INFERENCE must be True or False, got {value!r}")
    return value


def inference_model(
    model: nn.Module, cfg: CfgNode, *, copy: bool = False, channels_last: bool | None = None
) -> nn.Module:
    """``model`` for inference as ``cfg`` asks: with ``MODEL.NASNET.FAST_INFERENCE`` (the
    default) its batch norms folded and, on CPU, channels_last (:func:`nasnet_det.fuse.
    fast_inference`); otherwise ``model`` itself, unchanged.

    ``copy=True`` folds a copy (without gradients) and leaves ``model`` as it was: what the
    evaluation during training needs, since folding a trainable conv changes what it trains. A
    ``DistributedDataParallel`` wrapper is looked through. A model already made fast is
    returned as it is. ``channels_last``: as :func:`~nasnet_det.fuse.fast_inference` (None:
    where it pays).
    """
    if isinstance(model, DistributedDataParallel):
        model = model.module
    if not fast_inference_enabled(cfg) or getattr(model, "fast_inference", False):
        return model
    if copy:
        model = copy_module.deepcopy(model)
        for p in model.parameters():
            p.grad = None
            p.requires_grad_(False)
    return fast_inference(model, channels_last=channels_last)
