# Beyond the paper: NASNet-A Mobile under a lighter FPN (128 channels, 2x512 box head), the
# LazyConfig form of faster_rcnn_nasnet_a_mobile_FPN_lite_1x.yaml.
from detectron2.layers import ShapeSpec

from .faster_rcnn_nasnet_a_mobile_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

CHANNELS, FC_DIM = 128, 512
model.backbone.out_channels = CHANNELS
model.proposal_generator.head.in_channels = CHANNELS
model.roi_heads.box_head.input_shape = ShapeSpec(channels=CHANNELS, height=7, width=7)
model.roi_heads.box_head.fc_dims = [FC_DIM, FC_DIM]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=FC_DIM)

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
