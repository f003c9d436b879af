"""The detection demo's pieces: config, schedule, and a few-iteration end-to-end run."""

import json
import math

import cv2
import pytest

from nasnet_det import data
from nasnet_det.data import DigitsSpec
from nasnet_det.detection.demo import _lr_factor, demo_config, run_demo

from .test_backbone import TOY


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


def test_lr_schedule_warmup_hold_then_cosine():
    assert _lr_factor(0.0, 0, 10) == pytest.approx(0.1)  # warmup: (it + 1) / 10
    assert _lr_factor(0.5, 100, 10) == pytest.approx(1.0)  # held until 60%
    assert _lr_factor(0.8, 100, 10) == pytest.approx(0.5)  # halfway down: cos(pi / 2) = 0
    assert _lr_factor(1.0, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert _lr_factor(0.7, 100, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


@pytest.mark.slow
def test_run_demo_few_iterations(tmp_path):
    small = DigitsSpec(num_train=16, num_val=4, num_val_mini=2)
    data.register_nasnet_digits("demo_test_digits", root=tmp_path / "cache", spec=small)
    # A searched cell arrives as a JSON path (tools/demo.py passes the search's best genotype).
    geno = tmp_path / "searched.json"
    geno.write_text(json.dumps(TOY))
    out = run_demo(
        str(tmp_path / "out"),
        genotype=str(geno),
        max_minutes=3.0,
        opts=["SOLVER.MAX_ITER", "3", "DATASETS.TRAIN", "('demo_test_digits_train',)",
              "DATASETS.TEST", "('demo_test_digits_val',)"],
    )  # fmt: skip
    assert out["train"]["iterations"] == 3
    assert {"AP", "AP50", "AP75"} <= set(out["metrics"])
    assert out["image"].endswith(".png")
    picture = cv2.imread(out["image"])
    assert picture.shape == (2 * 128 * 3, 2 * 128 * 3, 3)  # 4 val images, 2 x 2, drawn at 3x
    saved = json.loads((tmp_path / "out" / "coco_metrics.json").read_text())
    assert saved["bbox"]["AP"] == pytest.approx(out["metrics"]["AP"])
