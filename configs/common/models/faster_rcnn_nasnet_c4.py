# The paper's Faster R-CNN with NASNet (TF Object Detection API, no FPN), as a LazyConfig model:
# the same network as Base-NASNet-C4.yaml with NASNet-A Mobile (4@1056). The first stage ends at
# the last normal cell of the middle stack and feeds the RPN the concat of that stack's last two
# cells (stride 16); the second reduction cell and the last stack run on ROI crops.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.proposal_generator import RPN, StandardRPNHead
from detectron2.modeling.roi_heads import FastRCNNOutputLayers

from nasnet_det.detection.backbone import nasnet_backbone
from nasnet_det.detection.lazy import nasnet_channels
from nasnet_det.detection.roi_heads import NASNetROIHeads, nasnet_second_stage
from nasnet_det.nasnet import nasnet_config

model = L(GeneralizedRCNN)(
    backbone=L(nasnet_backbone)(
        # The network (MODEL.NASNET.*); both detector halves and the channel counts read it.
        nasnet=L(nasnet_config)(
            preset="nasnet_a_mobile",  # stem type, BN epsilon, average-pool padding
            genotype="nasnet_a",  # a registered name or a genotype .json path
            num_cells=4,  # N: normal cells per stack
            num_conv_filters=44,  # TF-slim num_conv_filters (F = 24 x this for NASNet-A)
            stem_multiplier=1.0,
            skip_reduction_layer_input=False,
            drop_path_keep_prob=1.0,  # ScheduledDropPath's final keep probability
            bn_momentum=0.1,  # for norm "BN" / "SyncBN"
            num_classes=0,  # no classifier
            use_aux_head=False,
        ),
        out_features=["nasnet_16"],  # the paper's RPN map
        freeze_at=0,
        norm="FrozenBN",  # the paper keeps the ImageNet checkpoint's moving averages
    ),
    proposal_generator=L(RPN)(
        in_features=["nasnet_16"],
        head=L(StandardRPNHead)(
            in_channels=L(nasnet_channels)(nasnet="${model.backbone.nasnet}", name="nasnet_16"),
            num_anchors=12,
            conv_dims=[512],  # TF's first_stage_box_predictor_depth
        ),
        # TF reference: scales 0.25, 0.5, 1, 2 of a 256 base, ratios 0.5 / 1 / 2, stride 16.
        anchor_generator=L(DefaultAnchorGenerator)(
            sizes=[[64, 128, 256, 512]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[16], offset=0.0
        ),
        anchor_matcher=L(Matcher)(
            thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True
        ),
        box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=(12000, 6000),
        post_nms_topk=(500, 500),  # the paper's 500 proposals (train, test)
        nms_thresh=0.7,
    ),
    roi_heads=L(NASNetROIHeads)(
        num_classes=80,
        # Every sampled ROI runs a whole NASNet stack: 128 per image keeps training in memory.
        batch_size_per_image=128,
        positive_fraction=0.25,
        proposal_matcher=L(Matcher)(
            thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False
        ),
        in_features=["nasnet_16"],
        pooler=L(ROIPooler)(
            output_size=17,  # TF reference crop size
            scales=(1.0 / 16,),
            sampling_ratio=0,
            pooler_type="ROIAlignV2",
        ),
        second_stage=L(nasnet_second_stage)(
            nasnet="${model.backbone.nasnet}", norm="${model.backbone.norm}"
        ),
        box_predictor=L(FastRCNNOutputLayers)(
            input_shape=L(ShapeSpec)(
                channels=L(nasnet_channels)(nasnet="${model.backbone.nasnet}", name="second_stage")
            ),
            box2box_transform=L(Box2BoxTransform)(weights=(10, 10, 5, 5)),
            num_classes="${..num_classes}",
            test_score_thresh=0.05,
            test_nms_thresh=0.5,
            test_topk_per_image=100,
        ),
    ),
    # The ImageNet weights (TF-slim) expect RGB scaled to [-1, 1].
    pixel_mean=[127.5, 127.5, 127.5],
    pixel_std=[127.5, 127.5, 127.5],
    input_format="RGB",
)
