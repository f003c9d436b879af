"""Detectron2 parts for NASNet; importing this package registers them.

Registers ``build_nasnet_backbone`` and ``build_nasnet_fpn_backbone`` in ``BACKBONE_REGISTRY``
and ``NASNetROIHeads`` in ``ROI_HEADS_REGISTRY``, and the built-in ``nasnet_digits_train`` /
``nasnet_digits_val`` datasets in ``DatasetCatalog``.
"""

import nasnet_det.data  # noqa: F401  (registers the built-in datasets)
from nasnet_det.detection.backbone import (
    NASNetBackbone,
    build_nasnet_backbone,
    build_nasnet_fpn_backbone,
    second_stage_layout,
)
from nasnet_det.detection.checkpoint import NASNetCheckpointer, classification_to_detectron2
from nasnet_det.detection.config import add_nasnet_config, get_nasnet_cfg
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
    "second_stage_layout",
    "set_drop_path_progress",
]
