# NASNet-A Mobile with 50 first-stage proposals at inference (TF's lowproposals variant), the
# LazyConfig form of faster_rcnn_nasnet_a_mobile_lowproposals.yaml. Evaluate the weights trained
# with faster_rcnn_nasnet_a_mobile_1x.py.
from .faster_rcnn_nasnet_a_mobile_1x import dataloader, lr_multiplier, model, optimizer, train

model.proposal_generator.post_nms_topk = (500, 50)  # (train, test); TF: first_stage_max_proposals

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
