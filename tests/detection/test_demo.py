"""The detection demo: config, schedule, digit crops, pretraining transfer, and repeatability."""

import json
import math

import cv2
import numpy as np
import pytest
import torch

from nasnet_det.data import DigitsSpec
from nasnet_det.detection.datasets import register_nasnet_digits
from nasnet_det.detection.demo import (
    Pretrain,
    _classifier,
    _lr_factor,
    demo_config,
    digit_crops,
    load_pretrained,
    run_demo,
)

from .test_backbone import TOY

SMALL = DigitsSpec(num_train=12, num_val=4, num_val_mini=2)


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    """A 12-image train / 4-image val copy of the built-in dataset (``demo_test_digits_*``)."""
    root = tmp_path_factory.mktemp("digits")
    register_nasnet_digits("demo_test_digits", root=root, spec=SMALL)
    return root


def _opts(iters: int = 3, seed: int = 0) -> list[str]:
    return ["SOLVER.MAX_ITER", str(iters), "SEED", str(seed), "SOLVER.IMS_PER_BATCH", "2",
            "DATASETS.TRAIN", "('demo_test_digits_train',)",
            "DATASETS.TEST", "('demo_test_digits_val',)"]  # fmt: skip


def test_demo_config_takes_a_genotype_json(tmp_path):
    path = tmp_path / "searched.json"
    path.write_text(json.dumps(TOY))
    cfg = demo_config(str(path))
    assert cfg.MODEL.NASNET.GENOTYPE == str(path)
    assert cfg.MODEL.DEVICE == "cpu" and cfg.DATASETS.TEST == ("nasnet_digits_val",)
    with pytest.raises(ValueError, match="does not exist"):
        demo_config(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="unknown genotype"):
        demo_config("nasnet_z")
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER must be a positive integer"):
        demo_config("nasnet_a", ["SOLVER.MAX_ITER", "0"])


def test_lr_schedule_warmup_hold_then_cosine():
    assert _lr_factor(0.0, 0, 10) == pytest.approx(0.1)  # warmup: (it + 1) / 10
    assert _lr_factor(0.5, 100, 10) == pytest.approx(1.0)  # held until 60%
    assert _lr_factor(0.8, 100, 10) == pytest.approx(0.5)  # halfway down: cos(pi / 2) = 0
    assert _lr_factor(1.0, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert _lr_factor(0.7, 100, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_digit_crops_are_centred_on_the_annotated_digits(tiny_digits):
    x, y = digit_crops("demo_test_digits_val", crop=32)  # writes the dataset on first use
    coco = json.loads((tiny_digits / "val.json").read_text())
    assert x.shape == (len(coco["annotations"]), 3, 32, 32)
    # COCO category ids are digit + 1; Detectron2 maps them to contiguous ids 0..9.
    assert sorted(y.tolist()) == sorted(a["category_id"] - 1 for a in coco["annotations"])
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    a = coco["annotations"][0]
    rgb = cv2.imread(str(tiny_digits / files[a["image_id"]]))[:, :, ::-1].astype(np.float32)
    bx, by, bw, bh = a["bbox"]
    cx, cy = int(round(bx + bw / 2)), int(round(by + bh / 2))
    expected = (rgb[cy, cx] - 127.5) / 127.5
    assert torch.allclose(x[0, :, 16, 16], torch.from_numpy(expected))


def test_pretrained_classifier_weights_land_in_both_detector_halves():
    from detectron2.modeling import build_model

    cfg = demo_config("nasnet_a", ["MODEL.NASNET.NUM_CONV_FILTERS", "4"])
    detector = build_model(cfg)
    classifier = _classifier(cfg, 10)
    with torch.no_grad():
        for p in classifier.parameters():
            p.uniform_(-1, 1)
    n = load_pretrained(detector, classifier, cfg)
    det = detector.state_dict()
    clf = classifier.state_dict()
    assert n == len([k for k in clf if not k.startswith("classifier.")])
    assert torch.equal(det["backbone.stem.conv.weight"], clf["stem.conv.weight"])
    last = max(int(k.split(".")[1]) for k in clf if k.startswith("cells."))
    key = next(k for k in clf if k.startswith(f"cells.{last}.") and k.endswith("weight"))
    assert torch.equal(det["roi_heads.second_stage." + key], clf[key])


@pytest.mark.slow
def test_same_seed_same_ap_and_losses(tmp_path, tiny_digits):
    # The demo's budget is an iteration count: two runs from one seed must agree exactly
    # (losses, AP, pretraining accuracy); another seed must not give the same losses.
    spec = Pretrain(iters=2, batch_size=8, crop=32)
    runs = [
        run_demo(str(tmp_path / f"run{i}"), "nasnet_a", opts=_opts(3, seed), pretrain=spec,
                 progress=False)
        for i, seed in enumerate((0, 0, 1))
    ]  # fmt: skip
    a, b, c = runs
    assert a["train"]["iterations"] == 3
    assert json.dumps(a["metrics"], sort_keys=True) == json.dumps(b["metrics"], sort_keys=True)
    assert a["pretrain"]["val_accuracy"] == b["pretrain"]["val_accuracy"]
    losses = {k: v for k, v in a["train"].items() if k.startswith("loss")}
    assert losses and losses == {k: b["train"][k] for k in losses}
    assert losses != {k: c["train"][k] for k in losses}
    picture = cv2.imread(a["image"])
    assert picture.shape == (2 * 128 * 3, 2 * 128 * 3, 3)  # 4 val images, 2 x 2, drawn at 3x
    saved = json.loads((tmp_path / "run0" / "coco_metrics.json").read_text())
    assert saved["bbox"]["AP"] == pytest.approx(a["metrics"]["AP"], nan_ok=True)
    # The trained detector is kept in Detectron2's layout, loadable without pickle.
    weights = torch.load(tmp_path / "run0" / "model_final.pth", weights_only=True)["model"]
    other = torch.load(tmp_path / "run2" / "model_final.pth", weights_only=True)["model"]
    assert "roi_heads.box_predictor.cls_score.weight" in weights
    assert weights.keys() == other.keys()
    assert not torch.equal(weights["backbone.stem.conv.weight"], other["backbone.stem.conv.weight"])


def test_detections_are_drawn_from_the_test_time_resized_image(tmp_path, tiny_digits):
    # The picture must show what the evaluation scores: the model sees the image resized to
    # INPUT.MIN_SIZE_TEST (192 for the 128 px digits) and its boxes come back at 128 px.
    from detectron2.structures import Boxes, Instances

    from nasnet_det.detection.demo import save_detections

    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, batch):
            seen.append((tuple(batch[0]["image"].shape), batch[0]["height"], batch[0]["width"]))
            inst = Instances((batch[0]["height"], batch[0]["width"]))
            inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 40.0, 50.0]]))
            inst.scores = torch.tensor([0.9])
            inst.pred_classes = torch.tensor([3])
            return [{"instances": inst}]

    path = save_detections(
        Recorder(), "demo_test_digits_val", tmp_path / "a.png", num_images=2, resize=(192, 192)
    )
    assert seen == [((3, 192, 192), 128, 128)] * 2
    assert cv2.imread(path).shape == (128 * 3, 2 * 128 * 3, 3)
    seen.clear()
    save_detections(Recorder(), "demo_test_digits_val", tmp_path / "b.png", num_images=1)
    assert seen == [((3, 128, 128), 128, 128)]


def test_pretraining_renders_only_built_in_digits():
    from nasnet_det.detection.demo import _crop_source

    cfg = demo_config("nasnet_a", ["DATASETS.TRAIN", "('coco_2017_train',)"])
    with pytest.raises(ValueError, match="'coco_2017_train' is not a built-in digits dataset"):
        _crop_source(cfg)
    assert _crop_source(demo_config("nasnet_a")) == DigitsSpec()  # nasnet_digits_train
