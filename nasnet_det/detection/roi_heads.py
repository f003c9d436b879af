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
from detectron2.modeling.poolers import ROIPooler, convert_boxes_to_pooler_format
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, ROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from nasnet_det.detection.backbone import InputMemoryFormat, convert_norm
from nasnet_det.detection.config import nasnet_config_from_cfg
from nasnet_det.nasnet import NASNetConfig, build_cells, plan_nasnet

__all__ = ["NASNetROIHeads", "NASNetSecondStage", "nasnet_second_stage"]


class NASNetSecondStage(InputMemoryFormat, nn.Module):
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
        self.inputs = list(split.inputs)
        self.split_channels = list(split.channels)
        self.in_channels = sum(split.channels)
        self.out_channels = layout.num_features
        self.start = split.start
        self.cells = build_cells(cfg, layout, range(split.start, len(layout.cells)))
        self._last = len(layout.cells)  # output index of the last cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._formatted(x)
        parts = torch.split(x, self.split_channels, dim=1)
        states = {j: parts[k] for k, j in enumerate(self.inputs)}
        return F.relu(self.cells(states)[self._last])


def nasnet_second_stage(*, nasnet: NASNetConfig, norm: str = "FrozenBN") -> NASNetSecondStage:
    """A :class:`NASNetSecondStage` with its batch norms converted to ``norm``: what
    ``MODEL.NASNET`` builds, by keyword (the LazyConfig configs call it)."""
    return convert_norm(NASNetSecondStage(nasnet), norm)


@ROI_HEADS_REGISTRY.register()
class NASNetROIHeads(ROIHeads):
    """ROI heads of the paper's NASNet Faster R-CNN (``MODEL.ROI_HEADS.NAME: NASNetROIHeads``).

    Like ``Res5ROIHeads``: one ROIAlign on the single stride-16 input feature, the shared
    per-region network (here :class:`NASNetSecondStage`), mean pooling, then the box predictor.
    Masks and keypoints are not supported.

    Without gradients (inference) the regions go through ROIAlign and the second stage
    ``proposal_chunk`` at a time, so the crops and the cells' activations held at once are
    bounded by the chunk, not the proposal count (Large at 500 proposals would otherwise hold
    [500, 4032, 17, 17] crops, 2.3 GB); the results are the same as in one pass.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: Sequence[str],
        pooler: ROIPooler,
        second_stage: NASNetSecondStage,
        box_predictor: nn.Module,
        proposal_chunk: int = 64,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if proposal_chunk < 1:
            raise ValueError(f"proposal_chunk must be a positive integer, got {proposal_chunk}")
        self.in_features = list(in_features)
        self.pooler = pooler
        self.second_stage = second_stage
        self.box_predictor = box_predictor
        self.proposal_chunk = int(proposal_chunk)

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
        second_stage = nasnet_second_stage(
            nasnet=nasnet_config_from_cfg(cfg), norm=cfg.MODEL.NASNET.NORM
        )
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
        ret["second_stage"] = second_stage
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
        x = [features[f] for f in self.in_features]
        if torch.is_grad_enabled():
            pooled = self.second_stage(self.pooler(x, boxes)).mean(dim=(2, 3))
        else:
            pooled = self._pooled_in_chunks(x[0], boxes)
        predictions = self.box_predictor(pooled)
        if self.training:
            return [], self.box_predictor.losses(predictions, proposals)
        instances, _ = self.box_predictor.inference(predictions, proposals)
        return instances, {}

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """``GeneralizedRCNN.inference(detected_instances=...)``: boxes-only heads have nothing
        to add to given detections (``Res5ROIHeads`` runs its mask head here)."""
        del features
        assert not self.training
        return instances

    def _pooled_in_chunks(self, feature: torch.Tensor, boxes: list[Boxes]) -> torch.Tensor:
        """``second_stage(pooler(...)).mean`` over ``proposal_chunk`` regions at a time."""
        rois = convert_boxes_to_pooler_format(boxes)  # [R, 5]: image index, x0, y0, x1, y1
        align = self.pooler.level_poolers[0]  # one input feature, one level (checked at build)
        out: list[torch.Tensor] = []
        for start in range(0, max(len(rois), 1), self.proposal_chunk):
            crops = align(feature, rois[start : start + self.proposal_chunk])
            out.append(self.second_stage(crops).mean(dim=(2, 3)))
        return torch.cat(out) if len(out) > 1 else out[0]
