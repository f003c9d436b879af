"""Detectron2 parts for NASNet; importing this package registers them.

Registers ``build_nasnet_backbone`` and ``build_nasnet_fpn_backbone`` in ``BACKBONE_REGISTRY``,
``NASNetROIHeads`` in ``ROI_HEADS_REGISTRY`` and the built-in ``nasnet_digits_train`` /
``nasnet_digits_val`` / ``nasnet_digits_val_mini`` datasets in ``DatasetCatalog``, as Detectron2
projects do on import of their own package. Everything that needs Detectron2 lives here.
"""

import warnings

with warnings.catch_warnings():
    # Detectron2 0.7.2 decorates functions with torch.jit.script, deprecated in this torch.
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script")
    import detectron2.modeling  # noqa: F401

from nasnet_det.detection import datasets  # noqa: F401  (registers the built-in datasets)
from nasnet_det.detection.backbone import (
    NASNetBackbone,
    build_nasnet_backbone,
    build_nasnet_fpn_backbone,
)
from nasnet_det.detection.checkpoint import NASNetCheckpointer, classification_to_detectron2
from nasnet_det.detection.config import add_nasnet_config, get_nasnet_cfg, nasnet_config_from_cfg
from nasnet_det.detection.hooks import DropPathHook, set_drop_path_progress
from nasnet_det.detection.roi_heads import NASNetROIHeads, NASNetSecondStage

__all__ = [
    "DropPathHook",
    "NASNetBackbone",
    "NASNetCheckpointer",
    "NASNetROIHeads",
    "NASNetSecondStage",
    "add_nasnet_config",
    "build_nasnet_backbone",
    "build_nasnet_fpn_backbone",
    "classification_to_detectron2",
    "get_nasnet_cfg",
    "nasnet_config_from_cfg",
    "set_drop_path_progress",
]
