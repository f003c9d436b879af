# NASNet-A Large with 50 first-stage proposals at inference (TF's
# faster_rcnn_nas_lowproposals_coco), the LazyConfig form of
# faster_rcnn_nasnet_a_large_lowproposals.yaml. Evaluate the weights of
# faster_rcnn_nasnet_a_large_1x.py.
from .faster_rcnn_nasnet_a_large_1x import dataloader, lr_multiplier, model, optimizer, train

model.proposal_generator.post_nms_topk = (500, 50)  # (train, test)

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
