"""NASNet ROI heads (the paper's second stage) and one training step of the whole detector."""

import math

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from nasnet_det.detection import model_zoo, set_drop_path_progress


def tiny_cfg(tiny_detector_cfg):
    cfg = tiny_detector_cfg(NORM="BN")
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 10
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    return cfg


def instances(size, boxes, classes):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.gt_classes = torch.tensor(classes)
    return inst


def test_roi_heads_finite_losses_on_fake_stride16_features(tiny_detector_cfg):
    cfg = tiny_cfg(tiny_detector_cfg)
    # NASNet-A, N=1, F=8: the concat is reduction_cell_0 (4 x 16) + cell_1 (6 x 16).
    shape = {"nasnet_16": ShapeSpec(channels=64 + 96, stride=16)}
    heads = build_roi_heads(cfg, shape).train()
    # Last stack at 4 x 8 = 32 filters, 6 states -> 192 features into the box predictor.
    assert heads.second_stage.out_channels == 192
    assert heads.box_predictor.cls_score.in_features == 192
    assert sorted(heads.second_stage.cells) == ["5", "6"]  # reduction_cell_1, cell_2
    features = {"nasnet_16": torch.randn(2, 160, 8, 10)}
    targets = [
        instances((128, 160), [[10, 10, 50, 60], [70, 20, 150, 100]], [1, 7]),
        instances((128, 160), [[30, 30, 90, 110]], [4]),
    ]
    proposals = []
    for t in targets:
        p = Instances(t.image_size)
        p.proposal_boxes = Boxes(
            torch.tensor([[0, 0, 64, 64], [60, 10, 140, 90], [5, 5, 120, 120]])
        )
        p.objectness_logits = torch.zeros(3)
        proposals.append(p)
    with EventStorage():
        _, losses = heads(None, features, proposals, targets)
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    # Fresh FastRCNNOutputLayers predict near-uniform scores: loss_cls ~ ln(10 + 1).
    assert abs(losses["loss_cls"].item() - math.log(11)) < 0.1
    sum(losses.values()).backward()
    assert heads.second_stage.cells["5"].pre0.conv.weight.grad is not None


def test_mobile_config_one_training_step_and_inference():
    cfg = model_zoo.get_config("COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml")
    # The real NASNet-A Mobile network; only the detector's sampling and crop are shrunk.
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    model = build_model(cfg)
    # Paper split: mobile backbone ends at cell_7, second stage = reduction_cell_1 + cell_8..11.
    assert model.backbone.cell_names[-1] == "cell_7"
    assert list(model.roi_heads.second_stage.cells) == [str(i) for i in range(11, 16)]
    assert model.backbone.output_shape()["nasnet_16"].channels == 1056
    image = torch.rand(3, 128, 160) * 255
    batch = [{"image": image, "instances": instances((128, 160), [[10, 10, 70, 90]], [3])}]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    assert set_drop_path_progress(model, 0.5) == 2  # backbone and second stage
    with EventStorage():
        losses = model(batch)
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model([{"image": image, "height": 256, "width": 320}])
    det = out[0]["instances"]
    assert det.image_size == (256, 320)  # rescaled to the requested output size
    assert det.pred_boxes.tensor.shape[1] == 4
    assert len(det) <= cfg.TEST.DETECTIONS_PER_IMAGE


def test_drop_path_schedule_reaches_second_stage_cells(tiny_detector_cfg):
    cfg = tiny_cfg(tiny_detector_cfg)
    cfg.MODEL.NASNET.DROP_PATH_KEEP_PROB = 0.6
    model = build_model(cfg)
    set_drop_path_progress(model, 1.0)
    # 7 cells in all (2 stem, 3 normal, 2 reduction); keep = 1 - (i + 1) / 7 * 0.4 at t = 1.
    last = model.roi_heads.second_stage.cells["6"]
    assert abs(last.drop_path_keep_prob - 0.6) < 1e-9
    first = model.backbone.cells[0]
    assert abs(first.drop_path_keep_prob - (1 - 1 / 7 * 0.4)) < 1e-9
    set_drop_path_progress(model, 0.0)
    assert last.drop_path_keep_prob == 1.0
