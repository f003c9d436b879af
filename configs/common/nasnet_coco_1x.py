# COCO training and evaluation of the NASNet detectors for tools/lazyconfig_train_net.py: the
# SOLVER / INPUT / DATASETS settings of Base-NASNet-C4.yaml (Detectron2's common COCO loader,
# optimizer, "1x" schedule and train dict, with NASNet's RGB input and gradient clipping).
import torch
from detectron2.config import LazyCall as L
from detectron2.model_zoo import get_config
from detectron2.solver.build import get_default_optimizer_params

from nasnet_det.detection.lazy import clipped_optimizer

dataloader = get_config("common/data/coco.py").dataloader
dataloader.train.mapper.image_format = "RGB"  # the ImageNet weights (TF-slim) are RGB
dataloader.train.mapper.use_instance_mask = False  # boxes only
dataloader.train.total_batch_size = 16
dataloader.evaluator.use_fast_impl = False  # pycocotools: this Detectron2 has no compiled ops

optimizer = L(clipped_optimizer)(
    optimizer_class=torch.optim.SGD,
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
    clip_type="norm",  # the TF reference clips the gradient norm at 10
    clip_value=10.0,
)

# 90k iterations at batch 16, x0.1 at 60k and 80k, 1000 warm-up iterations from 0.001.
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_1x

train = get_config("common/train.py").train
train.max_iter = 90000
train.init_checkpoint = ""  # an ImageNet NASNet checkpoint (nasnet://...) or a converted file
# ScheduledDropPath ramps over this many iterations (0: train.max_iter).
train.drop_path_total_steps = 0
