# Faster R-CNN + NASNet-A Large (6@4032), LazyConfig form of faster_rcnn_nasnet_a_large_1x.yaml;
# the paper reports 40.7 mAP at 800x800. Channel counts follow from the network
# (nasnet_channels): the RPN reads Cell_10 + Cell_11 = 2016 + 2016 channels at stride 16.
from .faster_rcnn_nasnet_a_mobile_1x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.nasnet.update(
    preset="nasnet_a_large",
    num_cells=6,
    num_conv_filters=168,
    stem_multiplier=3.0,
    skip_reduction_layer_input=True,
    drop_path_keep_prob=0.7,  # the paper's schedule, ramped over train.max_iter
)
model.roi_heads.batch_size_per_image = 64

dataloader.train.mapper.augmentations[0].short_edge_length = (800,)
dataloader.train.total_batch_size = 8
optimizer.lr = 0.01
# 180k iterations at batch 8, x0.1 at 120k and 160k (Detectron2's "2x" shape).
lr_multiplier.scheduler.milestones = [120000, 160000, 180000]
lr_multiplier.warmup_length = 1000 / 180000
train.max_iter = 180000

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
