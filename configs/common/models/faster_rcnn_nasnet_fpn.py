# Beyond the paper: NASNet-A Mobile cells at strides 4..32 under Detectron2's FPN, with the
# standard FPN RPN and box head, as a LazyConfig model (the network of
# COCO-Detection/faster_rcnn_nasnet_a_mobile_FPN_1x.yaml).
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.proposal_generator import RPN, StandardRPNHead
from detectron2.modeling.roi_heads import (
    FastRCNNConvFCHead,
    StandardROIHeads,
)

from nasnet_det.detection.backbone import nasnet_backbone

from .faster_rcnn_nasnet_c4 import model as _c4

# The box predictor of the C4 model (thresholds, box coding), on the FPN box head's 1024 dims.
_box_predictor = _c4.roi_heads.box_predictor
_box_predictor.input_shape = ShapeSpec(channels=1024)

model = L(GeneralizedRCNN)(
    backbone=L(FPN)(
        bottom_up=L(nasnet_backbone)(
            nasnet=_c4.backbone.nasnet,  # the same network settings as the C4 model
            out_features=["c2", "c3", "c4", "c5"],  # last cell output at stride 4..32
            freeze_at=0,
            norm="FrozenBN",
        ),
        in_features=["c2", "c3", "c4", "c5"],
        out_channels=256,
        norm="",
        top_block=L(LastLevelMaxPool)(),
        fuse_type="sum",
    ),
    proposal_generator=L(RPN)(
        in_features=["p2", "p3", "p4", "p5", "p6"],
        head=L(StandardRPNHead)(in_channels=256, num_anchors=3),
        anchor_generator=L(DefaultAnchorGenerator)(
            sizes=[[32], [64], [128], [256], [512]],
            aspect_ratios=[[0.5, 1.0, 2.0]],
            strides=[4, 8, 16, 32, 64],
            offset=0.0,
        ),
        anchor_matcher=_c4.proposal_generator.anchor_matcher,
        box2box_transform=_c4.proposal_generator.box2box_transform,
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=(2000, 1000),
        post_nms_topk=(1000, 1000),
        nms_thresh=0.7,
    ),
    roi_heads=L(StandardROIHeads)(
        num_classes=80,
        batch_size_per_image=512,
        positive_fraction=0.25,
        proposal_matcher=_c4.roi_heads.proposal_matcher,
        box_in_features=["p2", "p3", "p4", "p5"],
        box_pooler=L(ROIPooler)(
            output_size=7,
            scales=(1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32),
            sampling_ratio=0,
            pooler_type="ROIAlignV2",
        ),
        box_head=L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[],
            fc_dims=[1024, 1024],
        ),
        box_predictor=_box_predictor,
    ),
    pixel_mean=[127.5, 127.5, 127.5],
    pixel_std=[127.5, 127.5, 127.5],
    input_format="RGB",
)
