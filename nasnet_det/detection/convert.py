"""Classification weights to the NASNet Faster R-CNN (``convert_weights.py --for detectron2``).

The detection config says where the paper's split falls; the weights are checked against the
network that config describes (built on the meta device: shapes only, no memory) and renamed by
:func:`~nasnet_det.detection.checkpoint.classification_to_detectron2`.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from nasnet_det.convert import Converted, check_against_model
from nasnet_det.detection import model_zoo
from nasnet_det.detection.checkpoint import classification_to_detectron2
from nasnet_det.detection.config import get_nasnet_cfg, nasnet_config_from_cfg
from nasnet_det.genotypes import GENOTYPES
from nasnet_det.nasnet import NASNet, nasnet_config

__all__ = ["DETECTION_CONFIGS", "to_detectron2"]

#: The model-zoo detection config of each preset (``--for detectron2`` without ``--det-config``).
DETECTION_CONFIGS = {
    "nasnet_a_mobile": "COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml",
    "nasnet_a_large": "COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml",
}


def to_detectron2(conv: Converted, config_file: str | None = None):
    """Rename converted classification weights for the NASNet Faster R-CNN.

    Without ``config_file`` the preset's model-zoo config is used, with ``MODEL.NASNET`` set to
    the weights' N@F; with one, its ``MODEL.NASNET`` must describe the same network. Returns
    ``(state_dict, cfg)`` with the detector's names (backbone and second stage).
    """
    from nasnet_det.config import merge_config_file

    cfg = get_nasnet_cfg()
    if config_file is not None:
        merge_config_file(cfg, config_file, "detection config")
    else:
        if conv.preset not in DETECTION_CONFIGS:
            raise ValueError(
                f"no detection config for preset {conv.preset!r}; pass a Detectron2 config "
                "(--det-config)"
            )
        merge_config_file(cfg, model_zoo.get_config_file(DETECTION_CONFIGS[conv.preset]))
        cfg.MODEL.NASNET.PRESET = conv.preset
        _describe_weights(cfg, nasnet_config(conv.preset, **conv.overrides))
    trunk = {
        k: v for k, v in conv.state_dict.items() if not k.startswith(("classifier.", "aux_head."))
    }
    with torch.device("meta"):  # shapes only
        net = NASNet(replace(nasnet_config_from_cfg(cfg), num_classes=0, use_aux_head=False))
    check_against_model(trunk, net, "weights for the detection config")
    return classification_to_detectron2(conv.state_dict, cfg), cfg


def _describe_weights(cfg, c) -> None:
    """Set ``cfg.MODEL.NASNET`` to the network the weights were made for."""
    names = [n for n, g in GENOTYPES.items() if _cells(g) == _cells(c.genotype)]
    if not names:
        raise ValueError(
            "the weights use an unregistered genotype: pass a Detectron2 config whose "
            "MODEL.NASNET.GENOTYPE points to its .json file (--det-config)"
        )
    n = cfg.MODEL.NASNET
    n.GENOTYPE = names[0]
    n.NUM_CELLS, n.NUM_CONV_FILTERS = c.num_cells, c.num_conv_filters
    n.STEM_MULTIPLIER = float(c.stem_multiplier)
    n.SKIP_REDUCTION_LAYER_INPUT = bool(c.skip_reduction_layer_input)


def _cells(g):
    return (g.normal, g.normal_concat, g.reduce, g.reduce_concat)
