# Beyond the paper: NASNet-A Mobile under Detectron2's FPN, the LazyConfig form of
# faster_rcnn_nasnet_a_mobile_FPN_1x.yaml.
from ..common.models.faster_rcnn_nasnet_fpn import model
from ..common.nasnet_coco_1x import dataloader, lr_multiplier, optimizer, train

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
