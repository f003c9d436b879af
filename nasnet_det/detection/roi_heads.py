"""The paper's second stage: NASNet's last reduction cell and last stack run on ROI crops.

Registered beside Detectron2's ``Res5ROIHeads`` (which runs ResNet's res5 on the crops): crops
of the RPN map are split back into the hidden states they were concatenated from, fed to the
remaining cells of the same network as (previous, current) inputs, then ReLU, average
pooling and Detectron2's ``FastRCNNOutputLayers``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, ROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import ImageList, Instances
from torch import nn

from nasnet_det.detection.backbone import convert_norm
from nasnet_det.detection.config import nasnet_config_from_cfg
from nasnet_det.nasnet import NASNetConfig, build_cells, plan_nasnet

__all__ = ["NASNetROIHeads", "NASNetSecondStage"]


class NASNetSecondStage(nn.Module):
    """Cells ``start ..`` of a NASNet applied to crops of the first-stage concat.

    Only those cells are built (from ``cfg`` and the layout's split). ``forward`` maps crops
    ``[R, sum(channels), S, S]`` to ReLU'd features ``[R, num_features, ceil(S / 2),
    ceil(S / 2)]``. ``cells`` is keyed by the cells' indices in the classification model, so
    parameter names read ``cells.{i}.*`` there too.
    """

    def __init__(self, cfg: NASNetConfig) -> None:
        super().__init__()
        layout = plan_nasnet(cfg)
        split = layout.second_stage_split()
        self.inputs = split.inputs
        self.split_channels = list(split.channels)
        self.in_channels = sum(split.channels)
        self.out_channels = layout.num_features
        self.start = split.start
        self.cells = build_cells(cfg, layout, range(split.start, len(layout.cells)))
        self._last = len(layout.cells)  # output index of the last cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = dict(zip(self.inputs, torch.split(x, self.split_channels, dim=1)))
        return F.relu(self.cells(states)[self._last])


@ROI_HEADS_REGISTRY.register()
class NASNetROIHeads(ROIHeads):
    """ROI heads of the paper's NASNet Faster R-CNN (``MODEL.ROI_HEADS.NAME: NASNetROIHeads``).

    Like ``Res5ROIHeads``: one ROIAlign on the single stride-16 input feature, the shared
    per-region network (here :class:`NASNetSecondStage`), mean pooling, then the box predictor.
    Masks and keypoints are not supported.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: Sequence[str],
        pooler: ROIPooler,
        second_stage: NASNetSecondStage,
        box_predictor: nn.Module,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.in_features = list(in_features)
        self.pooler = pooler
        self.second_stage = second_stage
        self.box_predictor = box_predictor

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> dict:
        ret = super().from_config(cfg)
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        if cfg.MODEL.MASK_ON or cfg.MODEL.KEYPOINT_ON:
            raise ValueError("NASNetROIHeads supports boxes only: set MASK_ON and KEYPOINT_ON off")
        if len(in_features) != 1 or in_features[0] not in input_shape:
            raise ValueError(
                f"NASNetROIHeads needs one backbone feature in MODEL.ROI_HEADS.IN_FEATURES, "
                f"got {in_features} (backbone gives {sorted(input_shape)})"
            )
        shape = input_shape[in_features[0]]
        second_stage = NASNetSecondStage(nasnet_config_from_cfg(cfg))
        if shape.channels != second_stage.in_channels:
            raise ValueError(
                f"feature {in_features[0]!r} has {shape.channels} channels but the second stage "
                f"reads {second_stage.in_channels} (hidden states {second_stage.split_channels}); "
                "use MODEL.NASNET.OUT_FEATURES ['nasnet_16'] with the same MODEL.NASNET settings"
            )
        ret["in_features"] = in_features
        ret["pooler"] = ROIPooler(
            output_size=cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION,
            scales=(1.0 / shape.stride,),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        ret["second_stage"] = convert_norm(second_stage, cfg.MODEL.NASNET.NORM)
        ret["box_predictor"] = FastRCNNOutputLayers(
            cfg, ShapeSpec(channels=second_stage.out_channels, height=1, width=1)
        )
        return ret

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """See ``ROIHeads.forward``: losses in training, detections at inference."""
        del images
        if self.training:
            assert targets, "NASNetROIHeads needs targets in training"
            proposals = self.label_and_sample_proposals(proposals, targets)
        del targets
        boxes = [p.proposal_boxes for p in proposals]
        crops = self.pooler([features[f] for f in self.in_features], boxes)
        predictions = self.box_predictor(self.second_stage(crops).mean(dim=(2, 3)))
        if self.training:
            return [], self.box_predictor.losses(predictions, proposals)
        instances, _ = self.box_predictor.inference(predictions, proposals)
        return instances, {}
