"""The detection demo: config, schedule, digit crops, pretraining transfer, repeatability, and
that it is train_net (the same trained weights and AP from tools/train_net.py's path)."""

import contextlib
import io
import json
import math
import re

import cv2
import numpy as np
import pytest
import torch

from nasnet_det.data import DigitsSpec
from nasnet_det.detection.config import nasnet_config_from_cfg
from nasnet_det.detection.datasets import register_nasnet_digits
from nasnet_det.detection.demo import Pretrain, demo_config, digit_crops, run_demo
from nasnet_det.genotypes import Genotype, get_genotype

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
    path.unlink()  # read once, in demo_config: the config carries the cell from then on
    assert nasnet_config_from_cfg(cfg).genotype == Genotype.from_dict(TOY)
    assert get_genotype(cfg.MODEL.NASNET.GENOTYPE) == Genotype.from_dict(TOY)
    # A Genotype object (the transfer study's) is taken as it is.
    cfg = demo_config(Genotype.from_dict(TOY))
    assert nasnet_config_from_cfg(cfg).genotype == Genotype.from_dict(TOY)
    assert cfg.MODEL.DEVICE == "cpu" and cfg.DATASETS.TEST == ("nasnet_digits_val",)
    with pytest.raises(ValueError, match="does not exist"):
        demo_config(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="unknown genotype"):
        demo_config("nasnet_z")
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER must be a positive integer"):
        demo_config("nasnet_a", ["SOLVER.MAX_ITER", "0"])


def _lr_factor(progress: float, it: int, warmup: int, hold: float = 0.6) -> float:
    # The demo's schedule written out: linear warmup, held, then a cosine over the rest.
    warm = min(1.0, (it + 1) / warmup) if warmup > 0 else 1.0
    p = min(1.0, max(0.0, (progress - hold) / (1.0 - hold)))
    return warm * 0.5 * (1.0 + math.cos(math.pi * p))


def test_lr_schedule_warmup_hold_then_cosine():
    # The config's WarmupHoldCosineLR through train_net's scheduler, iteration by iteration,
    # against the closed form (warm-up factor 1 / WARMUP_ITERS at iteration 0).
    from nasnet_det.detection.training import build_lr_scheduler

    cfg = demo_config("nasnet_a", ["SOLVER.MAX_ITER", "100", "SOLVER.WARMUP_ITERS", "10",
                                   "SOLVER.WARMUP_FACTOR", "0.1"])  # fmt: skip
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    sched = build_lr_scheduler(cfg, opt)
    seen = []
    for _ in range(100):
        seen.append(opt.param_groups[0]["lr"] / cfg.SOLVER.BASE_LR)
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.1)  # warmup: (it + 1) / 10
    assert seen[5] == pytest.approx(0.1 + 0.9 * 0.5)  # linear from the factor to 1
    for it in range(10, 100):
        assert seen[it] == pytest.approx(_lr_factor(it / 100, it, 10), abs=1e-12)
    assert seen[50] == pytest.approx(1.0) and seen[80] == pytest.approx(0.5)  # held, halfway
    assert _lr_factor(0.7, 100, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_full_model_clipping_clips_the_whole_gradient_norm():
    from nasnet_det.detection.training import build_optimizer

    cfg = demo_config("nasnet_a", ["SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "1.0"])
    model = torch.nn.Linear(3, 2)
    ref = torch.nn.Linear(3, 2)
    ref.load_state_dict(model.state_dict())
    opt = build_optimizer(cfg, model)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=cfg.SOLVER.BASE_LR,
                                weight_decay=cfg.SOLVER.WEIGHT_DECAY)  # fmt: skip
    x = torch.randn(4, 3) * 100
    for m in (model, ref):
        m(x).square().sum().backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)  # torch's reference: all together
    opt.step()
    ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)


def test_channels_last_and_grid_sample_pooler_are_config_keys():
    from nasnet_det.detection.engine import Trainer
    from nasnet_det.detection.pooling import GridSampleROIAlign

    cfg = demo_config("nasnet_a", ["MODEL.NASNET.NUM_CONV_FILTERS", "4"])
    model = Trainer.build_model(cfg)
    assert any(isinstance(m, GridSampleROIAlign) for m in model.modules())
    conv = model.backbone.stem.conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    cfg.MODEL.ROI_BOX_HEAD.POOLER_IMPL, cfg.MODEL.CHANNELS_LAST = "roi_align", False
    plain = Trainer.build_model(cfg)
    assert not any(isinstance(m, GridSampleROIAlign) for m in plain.modules())
    cfg.MODEL.ROI_BOX_HEAD.POOLER_IMPL = "fast"
    with pytest.raises(ValueError, match="POOLER_IMPL must be one of roi_align, grid_sample"):
        Trainer.build_model(cfg)


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


def test_pretrained_classifier_weights_land_in_both_detector_halves(tmp_path):
    # The demo's pretraining checkpoint, read as MODEL.WEIGHTS by train_net's checkpointer.
    import dataclasses

    from detectron2.modeling import build_model

    from nasnet_det.detection.checkpoint import NASNetCheckpointer
    from nasnet_det.detection.config import nasnet_config_from_cfg
    from nasnet_det.nasnet import NASNet
    from nasnet_det.pretrain.digits import save_classifier

    cfg = demo_config("nasnet_a", ["MODEL.NASNET.NUM_CONV_FILTERS", "4"])
    detector = build_model(cfg)
    classifier = NASNet(dataclasses.replace(nasnet_config_from_cfg(cfg), num_classes=10))
    with torch.no_grad():
        for p in classifier.parameters():
            p.uniform_(-1, 1)
    path = save_classifier(classifier, tmp_path / "pretrain.pth")
    NASNetCheckpointer(detector, cfg=cfg).load(path)
    det = detector.state_dict()
    clf = classifier.state_dict()
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
    assert {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    assert losses and losses == {k: b["train"][k] for k in losses}
    assert losses != {k: c["train"][k] for k in losses}
    picture = cv2.imread(a["image"])
    # 4 val images, 2 x 2, each drawn at 3x (384 px) beside its ground truth (8 px gap) under a
    # 28 px title bar.
    assert picture.shape == (2 * (28 + 384), 2 * (384 + 8 + 384), 3)
    saved = json.loads((tmp_path / "run0" / "coco_metrics.json").read_text())
    assert saved["bbox"]["AP"] == pytest.approx(a["metrics"]["AP"], nan_ok=True)
    # The trained detector is kept in Detectron2's layout, loadable without pickle.
    weights = torch.load(tmp_path / "run0" / "model_final.pth", weights_only=True)["model"]
    other = torch.load(tmp_path / "run2" / "model_final.pth", weights_only=True)["model"]
    assert "roi_heads.box_predictor.cls_score.weight" in weights
    assert weights.keys() == other.keys()
    assert not torch.equal(weights["backbone.stem.conv.weight"], other["backbone.stem.conv.weight"])


def test_pretraining_renders_only_built_in_digits():
    from nasnet_det.detection.demo import _crop_source

    cfg = demo_config("nasnet_a", ["DATASETS.TRAIN", "('coco_2017_train',)"])
    with pytest.raises(ValueError, match="'coco_2017_train' is not a built-in digits dataset"):
        _crop_source(cfg)
    assert _crop_source(demo_config("nasnet_a")) == DigitsSpec()  # nasnet_digits_train


@pytest.mark.slow
def test_train_net_on_the_demo_checkpoint_reproduces_the_demo(tmp_path, tiny_digits):
    # The demo's detector half is tools/train_net.py: its main() with the demo's config and
    # MODEL.WEIGHTS at the demo's pretraining checkpoint trains the same weights, same AP.
    from detectron2.engine import default_argument_parser

    from nasnet_det.detection import engine, model_zoo

    spec = Pretrain(iters=2, batch_size=8, crop=32)
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal):
        demo = run_demo(str(tmp_path / "demo"), "nasnet_a", opts=_opts(3), pretrain=spec,
                        progress=False)  # fmt: skip
    # What train_net logs (environment, the whole config) goes to log.txt, not the terminal.
    printed = terminal.getvalue()
    assert "detector:" in printed and "Environment info" not in printed
    assert "Full config saved" not in printed and "MIN_SIZE_TRAIN" not in printed
    assert "Environment info" in (tmp_path / "demo" / "log.txt").read_text()
    # A classifier has no RPN and no box predictor: one line says so instead of fvcore's list
    # of their tensors (log.txt keeps the list).
    line = r"detector: \d+ tensors from pretrain\.pth; 10 start at random: "
    line += r"proposal_generator\.rpn_head, roi_heads\.box_predictor\n"
    assert re.search(line, printed)
    assert "not found in the checkpoint" not in printed
    assert "not found in the checkpoint" in (tmp_path / "demo" / "log.txt").read_text()
    cfg_file = model_zoo.get_config_file("Demo/faster_rcnn_nasnet_a_digits_cpu.yaml")
    weights = str(tmp_path / "demo" / "pretrain.pth")
    args = default_argument_parser().parse_args(
        ["--config-file", cfg_file, *_opts(3), "MODEL.WEIGHTS", weights,
         "OUTPUT_DIR", str(tmp_path / "train_net")]
    )  # fmt: skip
    torch.set_num_threads(1)  # as run_demo trains: the same float sums
    results = engine.main(args)
    assert json.dumps(results["bbox"], sort_keys=True) == json.dumps(
        demo["metrics"], sort_keys=True
    )
    a = torch.load(tmp_path / "demo" / "model_final.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "train_net" / "model_final.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
