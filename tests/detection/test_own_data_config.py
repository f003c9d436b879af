"""configs/Own-Data/faster_rcnn_nasnet_a_mobile_cpu_small.yaml: NASNet-A Mobile's detector
(the paper's split) at CPU size; it trains on a COCO-json dataset through tools/train_net.py, and
a relative _BASE_ resolves against the YAML that names it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "reliability"))
from harness import run_tool  # noqa: E402
from tiny_datasets import write_coco  # noqa: E402

from nasnet_det.detection.engine import load_config  # noqa: E402

REPO = HERE.parents[1]
SMALL = REPO / "configs" / "Own-Data" / "faster_rcnn_nasnet_a_mobile_cpu_small.yaml"
MOBILE = REPO / "configs" / "COCO-Detection" / "faster_rcnn_nasnet_a_mobile_1x.yaml"


def _params(cfg) -> tuple[int, int]:
    from detectron2.modeling import build_model

    model = build_model(cfg)
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trained


def test_same_network_as_mobile_less_work():
    small = load_config(str(SMALL))
    mobile = load_config(str(MOBILE), ["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.NUM_CLASSES", "2"])
    # The same NASNet-A Mobile detector (so its ImageNet weights load), at a CPU size.
    assert _params(small)[0] == _params(mobile)[0]
    assert small.MODEL.DEVICE == "cpu" and small.INPUT.MIN_SIZE_TRAIN == (256,)
    assert (
        small.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE * 8
        == mobile.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
    )
    total, trained = _params(small)
    assert 0 < trained < total  # the stem and the first stack are frozen


def test_trains_on_own_data_and_relative_base(tmp_path):
    ann, images = write_coco(tmp_path / "data")
    # The user's YAML in its own folder, _BASE_ relative to that folder.
    mine = tmp_path / "configs" / "shop.yaml"
    mine.parent.mkdir()
    base = os.path.relpath(SMALL, mine.parent)
    mine.write_text(
        f"_BASE_: {base!r}\nDATASETS:\n  COCO_JSON: [['shop', {str(ann)!r}, {str(images)!r}]]\n"
        "  TRAIN: ('shop',)\nSOLVER:\n  MAX_ITER: 1\n  WARMUP_ITERS: 0\n"
    )
    out = tmp_path / "out"
    r = run_tool("train_net.py", "--config-file", str(mine), "OUTPUT_DIR", str(out), cwd=REPO)
    assert r.rc == 0, r.stderr[-3000:]
    assert (out / "model_final.pth").is_file()
    # The same file copied elsewhere: its relative _BASE_ now points nowhere, one clear line.
    moved = tmp_path / "elsewhere" / "small.yaml"
    moved.parent.mkdir()
    moved.write_text(SMALL.read_text())
    r = run_tool("train_net.py", "--config-file", str(moved), "OUTPUT_DIR", str(out), cwd=REPO)
    assert r.rc == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "_BASE_" in last and "faster_rcnn_nasnet_a_mobile_1x.yaml' does not exist" in last
