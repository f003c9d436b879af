# Smoke test, the LazyConfig form of faster_rcnn_nasnet_a_mobile_instant_test.yaml: the NASNet-A
# Mobile detector trains a few iterations on the built-in digits dataset (128 px images) and is
# evaluated with COCOEvaluator on 16 validation images. Weights start random, so the cells use
# trainable BN. CPU: add train.device=cpu.
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from fvcore.common.param_scheduler import LinearParamScheduler

from ..common.models.faster_rcnn_nasnet_c4 import model
from ..common.nasnet_coco_1x import dataloader, optimizer, train

model.backbone.norm = "BN"
model.proposal_generator.anchor_generator.sizes = [[16, 32, 64]]
model.proposal_generator.head.num_anchors = 9
model.proposal_generator.post_nms_topk = (100, 50)
model.roi_heads.num_classes = 10
model.roi_heads.batch_size_per_image = 32
model.roi_heads.pooler.output_size = 7

dataloader.train.dataset.names = "nasnet_digits_train"
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(128,), max_size=128, sample_style="choice"),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "nasnet_digits_val_mini"
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=128, max_size=128)
]
dataloader.test.num_workers = 0

optimizer.lr = 0.005
lr_multiplier = L(LinearParamScheduler)(start_value=1.0, end_value=1.0)  # constant, no warm-up

train.max_iter = 4
train.checkpointer.period = 1000000
train.eval_period = 0  # evaluate once, at the end
train.log_period = 1

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
