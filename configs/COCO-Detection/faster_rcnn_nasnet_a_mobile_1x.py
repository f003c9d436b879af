# Faster R-CNN + NASNet-A Mobile (4@1056), LazyConfig form of faster_rcnn_nasnet_a_mobile_1x.yaml
# (the same network: tests/detection/test_lazy.py); the paper reports 29.6 mAP on COCO minival.
#   python tools/lazyconfig_train_net.py \
#       --config-file configs/COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.py \
#       train.init_checkpoint=nasnet://ours/nasnet_a_mobile
from ..common.models.faster_rcnn_nasnet_c4 import model
from ..common.nasnet_coco_1x import dataloader, lr_multiplier, optimizer, train

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
