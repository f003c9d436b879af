"""Ground truth under the detections: a missed object keeps a dashed white outline in the
detections panel (nasnet_det.detection.visualize.draw_over_ground_truth), as drawn by predict.py,
the demo's picture, visualize_json_results.py and eval_coco.py --analyze."""

import numpy as np
import torch
from detectron2.data.catalog import Metadata
from detectron2.structures import Boxes, BoxMode, Instances

from nasnet_det.detection import visualize as V

META = Metadata(name="__overlay_test__", thing_classes=["a", "b"])
GREY = 100


def _record(box_xywh):
    return {"annotations": [{"bbox": box_xywh, "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}]}


def _detections(boxes_xyxy):
    inst = Instances((128, 128))
    inst.pred_boxes = Boxes(torch.tensor(boxes_xyxy, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.full((len(boxes_xyxy),), 0.9)
    inst.pred_classes = torch.zeros(len(boxes_xyxy), dtype=torch.int64)
    return inst


def _white_on_edge(img, x0, x1, y, scale):
    """Share of near-white pixels on the scaled horizontal edge y between x0 and x1."""
    row = img[round(y * scale) - 1 : round(y * scale) + 2, round(x0 * scale) : round(x1 * scale)]
    return float((row.min(axis=2) > 200).any(axis=0).mean())


def test_a_miss_shows_a_dashed_outline_and_a_hit_its_detection():
    rgb = np.full((128, 128, 3), GREY, np.uint8)
    record = _record([20, 30, 40, 50])  # x 20..60, y 30..80
    missed = V.draw_over_ground_truth(rgb, _detections([]), record, META)
    plain = V.draw_instances(rgb, _detections([]), META)
    s = missed.shape[0] / 128  # drawn at a readable size: 512 px
    assert missed.shape == plain.shape == (512, 512, 3)
    top = _white_on_edge(missed, 20, 60, 30, s)
    assert 0.3 < top < 0.95  # white, and dashed: gaps along the edge
    assert _white_on_edge(plain, 20, 60, 30, s) == 0.0
    # Nothing drawn away from the outline.
    assert (missed[round(50 * s), round(100 * s)] == GREY).all()
    # A detection far from the truth is drawn too (its colour is not the background's).
    hit = V.draw_over_ground_truth(rgb, _detections([[80, 80, 120, 120]]), record, META)
    assert _white_on_edge(hit, 20, 60, 30, s) == top
    assert (
        np.abs(hit[round(80 * s) : round(120 * s), round(80 * s)].astype(int) - GREY) > 30
    ).any()


def test_beside_ground_truth_titles_and_panels():
    rgb = np.full((128, 128, 3), GREY, np.uint8)
    pic = V.beside_ground_truth(rgb, _detections([]), _record([20, 30, 40, 50]), META,
                                title="0 detections >= 0.5")  # fmt: skip
    assert pic.shape == (28 + 512, 512 + 8 + 512, 3)  # title bar, two panels, a gap
    left, right = pic[28:, :512], pic[28:, 520:]
    s = 4.0
    assert _white_on_edge(left, 20, 60, 30, s) > 0.3  # the outline under the detections
    # The right panel is the labelled ground truth (a coloured box, not a white dashed one).
    assert (np.abs(right[round(30 * s), round(40 * s)].astype(int) - GREY) > 30).any()
