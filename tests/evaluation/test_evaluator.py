"""nasnet_det.evaluation.evaluator and backends: exact values computed by hand and agreement
with pycocotools called directly (both backends, one and several processes, bbox and segm)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from coco_reference import dets, one_image_gt, pycocotools_direct, write_json
from coco_synthetic import synthetic_coco

import nasnet_det.evaluation as ce

BACKENDS = ce.available_backends()


# ------------------------------------------------------------------------------------------
# Exact values
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_detections_give_100(backend):
    gt, _ = synthetic_coco(num_images=30, num_categories=6, dt_per_image=0, seed=3)
    dts = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in gt["annotations"]
    ]
    r = ce.evaluate(gt, dts, backend=backend)
    m = r.metrics()
    # (AR1 and AR10 stay below 100: images hold more than one / ten objects.)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "ARs", "ARm", "ARl"):
        assert m[key] == pytest.approx(100.0, abs=1e-9), key
    for name in r.cat_names:
        assert m[f"AP-{name}"] == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_two_hits_one_false_positive(backend):
    # One image, one category, two 10x10 GT boxes (area 100: "small").
    # Detections by score: d1 = exact copy of g1 (TP), d2 = far away (FP), d3 = exact copy of g2
    # (TP); every IoU is 1 or 0, so all ten IoU thresholds give the same curve.
    #   after d1: precision 1/1, recall 1/2
    #   after d2: precision 1/2, recall 1/2
    #   after d3: precision 2/3, recall 2/2
    # Interpolated precision (max to the right): 1, 2/3, 2/3.
    # 101 recall points r = 0.00 .. 1.00: r <= 0.50 (51 points) -> 1; r >= 0.51 (50 points) -> 2/3.
    # AP = (51 * 1 + 50 * 2/3) / 101 = 0.834983...
    gt = one_image_gt([(0, [0, 0, 10, 10]), (0, [20, 0, 10, 10])])
    dts = dets([(0, [0, 0, 10, 10], 0.9), (0, [50, 50, 10, 10], 0.8), (0, [20, 0, 10, 10], 0.7)])
    r = ce.evaluate(gt, dts, backend=backend)
    ap = (51 * 1 + 50 * 2 / 3) / 101
    s = dict(zip(ce.STAT_KEYS, r.stats))
    assert s["AP"] == pytest.approx(ap, abs=1e-12)
    assert s["AP50"] == pytest.approx(ap, abs=1e-12)
    assert s["AP75"] == pytest.approx(ap, abs=1e-12)
    assert s["APs"] == pytest.approx(ap, abs=1e-12)
    assert s["APm"] == -1 and s["APl"] == -1  # no medium / large GT: undefined
    # AR: maxDets=1 keeps only d1 -> recall 1/2; 10 or 100 -> recall 1.
    assert s["AR1"] == pytest.approx(0.5, abs=1e-12)
    assert s["AR10"] == pytest.approx(1.0, abs=1e-12)
    assert s["AR100"] == pytest.approx(1.0, abs=1e-12)
    m = r.metrics()
    assert m["AP"] == pytest.approx(100 * ap, abs=1e-9)
    assert m["AP-cat"] == pytest.approx(100 * ap, abs=1e-9)
    assert math.isnan(m["APm"]) and math.isnan(m["APl"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_iou_dependent_match(backend):
    # One GT [0, 0, 10, 10], one detection [0, 0, 10, 7.8]: IoU = 78 / 100 = 0.78.
    # IoU thresholds 0.50, 0.55, ..., 0.75 (6 of 10) count it as a TP: precision 1 at recall 1,
    # so all 101 points are 1 -> AP 1. Thresholds 0.80 .. 0.95 (4 of 10): FP, recall 0 -> AP 0.
    # AP@[.5:.95] = 6/10 = 0.6; AP50 = AP75 = 1; AR100 = 6/10.
    gt = one_image_gt([(0, [0, 0, 10, 10])])
    dts = dets([(0, [0, 0, 10, 7.8], 0.5)])
    s = dict(zip(ce.STAT_KEYS, ce.evaluate(gt, dts, backend=backend).stats))
    assert s["AP"] == pytest.approx(0.6, abs=1e-12)
    assert s["AP50"] == pytest.approx(1.0, abs=1e-12)
    assert s["AP75"] == pytest.approx(1.0, abs=1e-12)
    assert s["AR100"] == pytest.approx(0.6, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_duplicate_and_miss_two_categories(backend):
    # Category "a": GT g1, g2. Detections: d1 = g1 (0.9, TP), d2 = g1 again (0.8, duplicate: FP).
    #   precision 1, 1/2 at recall 1/2, 1/2; recall never passes 1/2.
    #   101 points: r <= 0.50 (51 points) -> 1, r >= 0.51 -> 0.  AP_a = 51/101.
    # Category "b": GT g3. One detection of class "b" on g2's place (IoU 0 with g3): FP only.
    #   AP_b = 0.
    # A detection on g3's place but of class "a" is one more FP for "a" at score 0.1, below
    # every TP, so it does not change AP_a (interpolated precision at r <= 1/2 stays 1).
    # Mean over categories: AP = (51/101 + 0) / 2.
    gt = one_image_gt(
        [(0, [0, 0, 20, 20]), (0, [40, 40, 20, 20]), (1, [70, 0, 20, 20])], cat_names=("a", "b")
    )
    dts = dets(
        [
            (0, [0, 0, 20, 20], 0.9),
            (0, [0, 0, 20, 20], 0.8),
            (1, [40, 40, 20, 20], 0.7),
            (0, [70, 0, 20, 20], 0.1),
        ]
    )
    r = ce.evaluate(gt, dts, backend=backend)
    m = r.metrics()
    assert m["AP-a"] == pytest.approx(100 * 51 / 101, abs=1e-9)
    assert m["AP-b"] == pytest.approx(0.0, abs=1e-12)
    assert r.stats[0] == pytest.approx((51 / 101 + 0) / 2, abs=1e-12)


# ------------------------------------------------------------------------------------------
# Agreement with pycocotools called directly
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_bbox_set(tmp_path_factory):
    # score_decimals=2 makes many equal scores: tie-breaking must match pycocotools too.
    gt, dts = synthetic_coco(
        num_images=60, num_categories=12, gt_per_image=6, dt_per_image=40, seed=11, score_decimals=2
    )
    d = tmp_path_factory.mktemp("rand")
    gt_path, dt_path = write_json(d / "gt.json", gt), write_json(d / "dt.json", dts)
    ref = pycocotools_direct(gt_path, dt_path)
    return gt, dts, ref


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_random_set_matches_pycocotools(random_bbox_set, backend, workers):
    gt, dts, ref = random_bbox_set
    r = ce.evaluate(gt, dts, backend=backend, workers=workers)
    assert r.workers == workers
    diff = np.abs(r.stats - np.asarray(ref.stats))
    assert diff.max() <= 1e-6, diff
    if backend == "pycocotools":  # same code path: bit-identical
        assert np.array_equal(r.stats, np.asarray(ref.stats))
    assert np.abs(r.precision - ref.eval["precision"]).max() <= 1e-6
    assert np.abs(r.recall - ref.eval["recall"]).max() <= 1e-6
    # Per-category AP as Detectron2 derives it from the reference precision array.
    m = r.metrics()
    for k, name in enumerate(r.cat_names):
        p = ref.eval["precision"][:, :, k, 0, -1]
        p = p[p > -1]
        want = float(np.mean(p) * 100) if p.size else float("nan")
        got = m[f"AP-{name}"]
        assert (math.isnan(want) and math.isnan(got)) or abs(got - want) <= 1e-4


def test_parallel_is_bit_identical_to_serial(random_bbox_set):
    gt, dts, _ = random_bbox_set
    for backend in BACKENDS:
        a = ce.evaluate(gt, dts, backend=backend, workers=1)
        b = ce.evaluate(gt, dts, backend=backend, workers=3)
        assert b.workers == 3
        assert np.array_equal(a.stats, b.stats)
        assert np.array_equal(a.precision, b.precision)
        assert np.array_equal(a.recall, b.recall)


def test_backends_agree_on_a_second_seed():
    gt, dts = synthetic_coco(
        num_images=40, num_categories=5, dt_per_image=30, seed=5, score_decimals=1
    )
    stats = [ce.evaluate(gt, dts, backend=b).stats for b in BACKENDS]
    assert np.abs(stats[0] - stats[-1]).max() <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_segm_matches_pycocotools(tmp_path, backend):
    gt, dts = synthetic_coco(
        num_images=8,
        num_categories=3,
        gt_per_image=4,
        dt_per_image=12,
        seed=2,
        iou_type="segm",
        score_decimals=2,
    )
    gt_path = write_json(tmp_path / "gt.json", gt)
    # Detectron2's convention, which the tool follows: mask AP uses the mask area, so the box
    # is not given to loadRes.
    ref_dts = [{k: v for k, v in d.items() if k != "bbox"} for d in copy.deepcopy(dts)]
    ref = pycocotools_direct(gt_path, ref_dts, "segm")
    r = ce.evaluate(gt, dts, "segm", backend=backend)
    assert np.abs(r.stats - np.asarray(ref.stats)).max() <= 1e-6
    assert r.stats[0] > 0.05  # a real, non-trivial score


def test_default_backend_is_faster_coco_eval_when_installed():
    want = "faster-coco-eval" if "faster-coco-eval" in BACKENDS else "pycocotools"
    assert ce.default_backend() == want


def test_annotation_id_zero_warns_and_keeps_pycocotools_numbers(tmp_path):
    # pycocotools stores the matched GT's id as the match flag, so a perfect detection of the GT
    # with id 0 counts as a false positive: AP is not 100. The tool keeps pycocotools' number and
    # says why.
    gt = one_image_gt([(0, [0, 0, 10, 10]), (0, [20, 0, 10, 10])])
    gt["annotations"][0]["id"] = 0
    dts = dets([(0, [0, 0, 10, 10], 0.9), (0, [20, 0, 10, 10], 0.8)])
    ref = pycocotools_direct(write_json(tmp_path / "gt.json", gt), copy.deepcopy(dts))
    assert ref.stats[0] < 0.5
    for backend in BACKENDS:
        with pytest.warns(UserWarning, match="annotation with id 0"):
            r = ce.evaluate(gt, dts, backend=backend)
        assert np.abs(r.stats - np.asarray(ref.stats)).max() <= 1e-6
