"""nasnet_det.torchvision: torchvision's FasterRCNN with the paper's NASNet split, against the
Detectron2 detector built from the same settings (the reference for the split), and its
references-style training and evaluation loops on the built-in digits."""

import math

import pytest
import torch
from detectron2.modeling import build_model

from nasnet_det.convert import save_checkpoint
from nasnet_det.data import DigitsSpec, build_digits_dataset
from nasnet_det.detection import NASNetCheckpointer, model_zoo
from nasnet_det.detection.config import get_nasnet_cfg, nasnet_config_from_cfg
from nasnet_det.nasnet import build_nasnet, nasnet_config
from nasnet_det.torchvision import (
    CocoDetection,
    NASNetBoxPredictor,
    collate,
    evaluate_coco,
    fasterrcnn_nasnet,
    train_one_epoch,
)

MOBILE = "COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml"


def d2_cfg(config=MOBILE, **nasnet):
    cfg = get_nasnet_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(config))
    cfg.MODEL.DEVICE = "cpu"
    for k, v in nasnet.items():
        cfg.MODEL.NASNET[k] = v
    return cfg


def torchvision_twin(cfg, **kw):
    """The torchvision detector with the Detectron2 config's settings."""
    return fasterrcnn_nasnet(
        nasnet_config_from_cfg(cfg),
        num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1,
        norm=cfg.MODEL.NASNET.NORM,
        anchor_sizes=cfg.MODEL.ANCHOR_GENERATOR.SIZES[0],
        aspect_ratios=cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0],
        rpn_conv_dim=cfg.MODEL.RPN.CONV_DIMS[0],
        pooler_resolution=cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION,
        class_agnostic_bbox_reg=cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG,
        **kw,
    )


def count(module):
    return sum(p.numel() for p in module.parameters())


def parts(d2, tv):
    return [
        (count(d2.backbone), count(tv.backbone)),
        (count(d2.proposal_generator), count(tv.rpn)),
        (count(d2.roi_heads), count(tv.roi_heads)),
    ]


@pytest.mark.parametrize(
    "config, nasnet",
    [
        (MOBILE, {}),  # NASNet-A Mobile 4@1056, FrozenBN, 80 classes
        (MOBILE, {"NUM_CELLS": 1, "NUM_CONV_FILTERS": 8, "NORM": "BN"}),
        # The demo: class-agnostic box deltas, its own anchors and RPN width.
        ("Demo/faster_rcnn_nasnet_a_digits_cpu.yaml", {"NUM_CONV_FILTERS": 8}),
    ],
)
def test_parameter_count_equals_detectron2s(config, nasnet):
    cfg = d2_cfg(config, **nasnet)
    d2, tv = build_model(cfg), torchvision_twin(cfg)
    assert count(tv) == count(d2)
    for a, b in parts(d2, tv):  # part by part: no difference hides in a compensating one
        assert a == b
    if not nasnet:  # Mobile: about the paper's 5.3M classifier network minus its classifier
        assert 4.0e6 < count(tv.backbone) + count(tv.roi_heads.box_head) < 5.3e6


def test_any_genotype_same_count_as_detectron2(random_genotype, tiny_detector_cfg):
    import random

    cfg = tiny_detector_cfg(GENOTYPE=random_genotype(random.Random(3)).inline())
    d2, tv = build_model(cfg), torchvision_twin(cfg)
    assert parts(d2, tv) == [(a, a) for a, _ in parts(d2, tv)]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A tiny classification checkpoint with non-trivial BN statistics."""
    torch.manual_seed(1)
    net = build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=8)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    meta = {"preset": "nasnet_a_mobile", "overrides": {"num_cells": 1, "num_conv_filters": 8}}
    save_checkpoint(path, net.state_dict(), meta)
    return path


def test_same_weights_same_features_as_detectron2(weights_file, tiny_detector_cfg):
    cfg = tiny_detector_cfg()
    d2 = build_model(cfg).eval()
    NASNetCheckpointer(d2, cfg=cfg).load(str(weights_file))
    tv = torchvision_twin(cfg, weights=str(weights_file)).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        first_d2 = d2.backbone(x)["nasnet_16"]
        first_tv = tv.backbone(x)["0"]
        crops = torch.randn(5, first_tv.shape[1], 17, 17)
        head_d2 = d2.roi_heads.second_stage(crops).mean(dim=(2, 3))
        head_tv = tv.roi_heads.box_head(crops)
    assert first_tv.shape == (2, tv.backbone.out_channels, 6, 8)  # stride 16
    torch.testing.assert_close(first_tv, first_d2, rtol=0, atol=1e-5)
    torch.testing.assert_close(head_tv, head_d2, rtol=0, atol=1e-5)
    # The weights did land: a random network's features differ.
    fresh = torchvision_twin(cfg).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.backbone(x)["0"], first_tv, atol=1e-3)


def test_weights_of_another_network_are_one_clear_error(weights_file):
    with pytest.raises(ValueError, match="do not fit the network"):
        fasterrcnn_nasnet(nasnet_config(num_cells=1, num_conv_filters=12), num_classes=3,
                          weights=str(weights_file))  # fmt: skip


def test_config_none_takes_the_weights_network(weights_file):
    tv = fasterrcnn_nasnet(num_classes=3, weights=str(weights_file))
    # One cell per stack: reduction_cell_1 reads cell_1 (6 states x 16 filters) and
    # reduction_cell_0 (4 states x 16).
    assert tv.backbone.out_channels == 6 * 16 + 4 * 16


def test_bad_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match="norm must be 'FrozenBN' or 'BN'"):
        fasterrcnn_nasnet(nasnet_config(num_cells=1, num_conv_filters=8), num_classes=3, norm="GN")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        NASNetBoxPredictor(8, 1)


def test_predictor_layout_is_torchvisions():
    p = NASNetBoxPredictor(6, 4, class_agnostic=True)
    logits, deltas = p(torch.randn(3, 6))
    assert logits.shape == (3, 4) and deltas.shape == (3, 16)
    assert torch.equal(deltas[:, :4], torch.zeros(3, 4))  # background: never read
    assert torch.equal(deltas[:, 4:8], deltas[:, 12:16])  # one shared set per class


def test_box_head_in_chunks_gives_the_one_pass_features():
    tv = fasterrcnn_nasnet(nasnet_config(num_cells=1, num_conv_filters=8), num_classes=3).eval()
    head = tv.roi_heads.box_head
    crops = torch.randn(7, head.in_channels, 9, 9)
    with torch.no_grad():
        head.proposal_chunk = 3
        chunked = head(crops)
        head.proposal_chunk = 64
        whole = head(crops)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    spec = DigitsSpec(num_train=8, num_val=4, num_val_mini=2, image_size=96, digit_sizes=(16, 32))
    root = build_digits_dataset(tmp_path_factory.mktemp("digits"), spec)
    return (CocoDetection(root / "train.json", root),
            CocoDetection(root / "val.json", root))  # fmt: skip


def small_detector():
    torch.manual_seed(0)
    return fasterrcnn_nasnet(
        nasnet_config(num_cells=1, num_conv_filters=8), num_classes=11, norm="BN",
        anchor_sizes=(16, 32, 64), rpn_conv_dim=32, pooler_resolution=7, min_size=96,
        max_size=96, rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=64,
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=32, box_batch_size_per_image=16,
        box_score_thresh=0.0,
    )  # fmt: skip


def test_dataset_targets_are_the_coco_boxes(digits):
    train, _ = digits
    image, target = train[0]
    ann = [a for a in train.gt["annotations"] if a["image_id"] == target["image_id"]]
    assert image.shape == (3, 96, 96) and 0.0 <= image.min() and image.max() <= 1.0
    x, y, w, h = ann[0]["bbox"]
    assert target["boxes"][0].tolist() == pytest.approx([x, y, x + w, y + h])
    assert target["labels"][0].item() == ann[0]["category_id"]  # digits: ids 1..10 = labels


def test_short_training_loop_and_coco_evaluation(digits):
    train, val = digits
    model = small_detector()
    loader = torch.utils.data.DataLoader(train, batch_size=2, shuffle=True, collate_fn=collate)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train_one_epoch(model, opt, loader, max_iters=2)
    assert len(history) == 2
    assert set(history[0]) == {"loss_classifier", "loss_box_reg", "loss_objectness",
                               "loss_rpn_box_reg", "loss"}  # fmt: skip
    assert all(math.isfinite(v) for h in history for v in h.values())
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("roi_heads.box_head.cells.") for k in changed)
    metrics = evaluate_coco(model, torch.utils.data.DataLoader(val, 2, collate_fn=collate), val)
    assert list(metrics)[:6] == ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    assert "AP-0" in metrics and 0.0 <= metrics["AP50"] <= 100.0


class _Oracle(torch.nn.Module):
    """Returns each image's ground truth as its detections (the evaluation's golden case)."""

    def __init__(self, dataset):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.by_size = {}
        self.dataset = dataset

    def forward(self, images):
        outs = []
        for im in images:
            _, t = next(item for item in self.dataset if torch.equal(item[0], im))
            n = len(t["boxes"])
            outs.append({"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(n)})
        return outs


def test_evaluation_of_the_ground_truth_is_ap_100(digits):
    _, val = digits
    loader = torch.utils.data.DataLoader(val, batch_size=2, collate_fn=collate)
    metrics = evaluate_coco(_Oracle(val), loader, val)
    # pycocotools' AP of a perfect detector: 100 (boxes converted back to x, y, w, h exactly).
    assert metrics["AP"] == pytest.approx(100.0) and metrics["AP75"] == pytest.approx(100.0)
