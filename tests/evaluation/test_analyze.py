"""nasnet_det.evaluation.analyze (``tools/eval_coco.py --analyze``): the per-class table, the
confusion matrix and the COCO error breakdown on a hand-made scene whose every number is worked
out below by hand, plus pycocotools cross-checks on synthetic data."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from coco_reference import write_json
from coco_synthetic import synthetic_coco
from harness import run_tool

import nasnet_det.evaluation as ce
from nasnet_det.evaluation import analyze as an

CATS = [
    {"id": 1, "name": "cat", "supercategory": "animal"},
    {"id": 2, "name": "dog", "supercategory": "animal"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
]
# One 100x100 image; every box is 10x10 (area 100: 'small').
GT_BOXES = [
    (1, [0, 0, 10, 10]),  # g1 cat: found by d1
    (1, [0, 80, 10, 10]),  # g4 cat: only d6 at IoU 1/3
    (2, [50, 50, 10, 10]),  # g2 dog: d5 at IoU 2/3, and d2, a cat on it
    (3, [20, 20, 10, 10]),  # g3 car: only d3, a cat on it
    (3, [70, 70, 10, 10]),  # g7 car: found by d7
]
DETS = [
    (1, [80, 0, 10, 10], 0.95),  # d4 cat on background
    (1, [20, 20, 10, 10], 0.90),  # d3 cat on the car g3 (other supercategory)
    (1, [50, 50, 10, 10], 0.85),  # d2 cat on the dog g2 (same supercategory)
    (1, [0, 0, 10, 10], 0.80),  # d1 cat on g1, IoU 1
    (1, [5, 80, 10, 10], 0.70),  # d6 cat on g4, IoU 50/150
    (3, [90, 90, 10, 10], 0.65),  # d8 car on background
    (3, [70, 70, 10, 10], 0.60),  # d7 car on g7, IoU 1
    (2, [52, 50, 10, 10], 0.50),  # d5 dog on g2, IoU 80/120
]


def scene(crowd=()):
    boxes = GT_BOXES + list(crowd)
    gt = {
        "images": [{"id": 1, "height": 100, "width": 100}],
        "categories": [dict(c) for c in CATS],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": c,
                "bbox": list(b),
                "area": float(b[2] * b[3]),
                "iscrowd": int(i >= len(GT_BOXES)),
            }
            for i, (c, b) in enumerate(boxes)
        ],
    }
    dts = [{"image_id": 1, "category_id": c, "bbox": list(b), "score": s} for c, b, s in DETS]
    return gt, dts


# COCO's AP: 101 recall thresholds 0, .01, ..., 1, precision interpolated (max to the right).
# A curve that is p up to recall .5 and 0 beyond is 51 * p / 101.
HALF = 51 / 101
# Per category, AP of each step (0-1), worked out by hand:
#  cat (2 GT), by score: d4 FP(bg), d3 FP(car), d2 FP(dog), d1 TP, d6 (TP only at IoU .1)
#    C75 = C50: precision 1/4 at recall .5, nothing beyond     -> HALF / 4
#    Loc: d6 is a TP at IoU .1: precision 2/5 at recall 1      -> 0.4
#    Sim: d2 on the (ignored) dog is gone: 2/4 at recall 1     -> 0.5
#    Oth: d3 on the (ignored) car is gone too: 2/3 at recall 1 -> 2/3
#    BG: precision 1 wherever Oth reached                      -> 1
#  dog (1 GT): d5 at IoU 2/3 is FP at .75, TP at .5            -> C75 0, the rest 1
#  car (2 GT): d8 FP, d7 TP; g3 is never found by a car        -> 1/2 up to recall .5
#    C75 .. Oth = HALF / 2; BG = HALF; FN = 1
HAND = {
    "cat": {"C75": HALF / 4, "C50": HALF / 4, "Loc": 0.4, "Sim": 0.5, "Oth": 2 / 3, "BG": 1},
    "dog": {"C75": 0.0, "C50": 1.0, "Loc": 1.0, "Sim": 1.0, "Oth": 1.0, "BG": 1.0},
    "car": {
        "C75": HALF / 2,
        "C50": HALF / 2,
        "Loc": HALF / 2,
        "Sim": HALF / 2,
        "Oth": HALF / 2,
        "BG": HALF,
    },
}
LABELS = ["C75", "C50", "Loc", "Sim", "Oth", "BG", "FN"]


def test_error_breakdown_by_hand():
    gt, dts = scene()
    eb = an.error_breakdown(gt, dts, "bbox")
    assert eb.labels == LABELS
    for k, name in enumerate(eb.cat_names):
        for lab in LABELS:
            want = 1.0 if lab == "FN" else HAND[name][lab]
            assert eb.ap(lab, k) == pytest.approx(100 * want, abs=1e-9), (name, lab)
            assert eb.ap(lab, k, "small") == pytest.approx(100 * want, abs=1e-9)
            assert np.isnan(eb.ap(lab, k, "medium"))  # no medium GT: undefined, not 0
    for lab in LABELS:
        want = np.mean([1.0 if lab == "FN" else HAND[n][lab] for n in HAND])
        assert eb.ap(lab) == pytest.approx(100 * want, abs=1e-9), lab


def test_breakdown_without_supercategories_has_no_sim_step():
    gt, dts = scene()
    for c in gt["categories"]:
        del c["supercategory"]
    eb = an.error_breakdown(gt, dts, "bbox")
    assert eb.labels == ["C75", "C50", "Loc", "Oth", "BG", "FN"]
    assert eb.ap("Oth", 0) == pytest.approx(100 * 2 / 3)


def test_confusion_matrix_by_hand():
    gt, dts = scene()
    # Pass 1 (own class, by score): d1 -> g1, d7 -> g7, d5 -> g2. Pass 2 (other class): d3 ->
    # g3 (car row, cat column); d2 finds g2 taken. On background: d4, d2, d6 (cat), d8 (car).
    # Missed: g4 (cat).
    cm = an.confusion_matrix(gt, dts, "bbox", score_thr=0.3)
    assert cm.labels() == ["cat", "dog", "car", "background"]
    assert cm.matrix.tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 0], [3, 0, 1, 0]]
    # Above 0.68 only the five cats count: d2 now takes g2 in pass 2; g4 and g7 are missed.
    cm = an.confusion_matrix(gt, dts, "bbox", score_thr=0.68)
    assert cm.matrix.tolist() == [[1, 0, 0, 1], [1, 0, 0, 0], [1, 0, 0, 1], [2, 0, 0, 0]]
    assert cm.to_csv().splitlines()[0] == "gt \\ predicted,cat,dog,car,background"


def test_confusion_matrix_crowd_region():
    # A crowd cat region around d4: d4 is left out (not background), the crowd is never missed.
    gt, dts = scene(crowd=[(1, [75, 0, 20, 20])])
    cm = an.confusion_matrix(gt, dts, "bbox", score_thr=0.3)
    assert cm.matrix.tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 0], [2, 0, 1, 0]]


def test_per_class_rows_by_hand():
    gt, dts = scene()
    result = ce.evaluate(gt, dts, "bbox", "pycocotools")
    rows = {r[1]: r for r in an.per_class_rows(result, gt, dts)}
    # dog: d5 (IoU 2/3) is a TP at IoU .50 .. .65, 4 of the 10 thresholds.
    assert rows["dog"][2:5] == (1, 1, pytest.approx(40.0))
    assert rows["cat"][2:5] == (2, 5, pytest.approx(100 * HALF / 4))
    assert rows["car"][2:5] == (2, 2, pytest.approx(100 * HALF / 2))
    assert all(np.isnan(r[8]) and np.isnan(r[9]) for r in rows.values())  # no medium / large


@pytest.fixture(scope="module")
def synthetic():
    gt, dts = synthetic_coco(
        num_images=12, num_categories=4, gt_per_image=4, dt_per_image=12, seed=3
    )
    for c in gt["categories"]:
        c["supercategory"] = "even" if c["id"] % 2 == 0 else "odd"
    return gt, dts


def test_breakdown_matches_pycocotools_and_is_monotone(synthetic):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dts = synthetic
    eb = an.error_breakdown(gt, dts, "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(json.loads(json.dumps(dts))), "bbox")
        ev.params.iouThrs = np.array([0.1, 0.5, 0.75])
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][:, :, :, 0, -1]  # area all, maxDets 100
    for t, lab in enumerate(["Loc", "C50", "C75"]):
        assert eb.ap(lab) == pytest.approx(100 * p[t][p[t] > -1].mean(), abs=1e-9)
    for k in range(len(eb.cat_ids)):
        aps = [eb.ap(lab, k) for lab in eb.labels]
        assert aps == sorted(aps), aps  # removing errors never lowers AP
    assert eb.ap("C75") < eb.ap("C50") < eb.ap("FN") == 100.0


def test_confusion_matrix_sums(synthetic):
    gt, dts = synthetic
    cm = an.confusion_matrix(gt, dts, "bbox", score_thr=0.2)
    index = {c: k for k, c in enumerate(cm.cat_ids)}
    n_gt = np.zeros(len(index), int)
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            n_gt[index[a["category_id"]]] += 1
    n_dt = np.zeros(len(index), int)
    for d in dts:
        if d["score"] >= 0.2:
            n_dt[index[d["category_id"]]] += 1
    assert (cm.matrix[:-1].sum(axis=1) == n_gt).all()  # each GT in one cell of its row
    on_crowd = n_dt - cm.matrix[:, :-1].sum(axis=0)  # detections left out on crowd regions
    assert (on_crowd >= 0).all() and on_crowd.sum() < 0.1 * n_dt.sum()
    assert cm.matrix[-1, -1] == 0


def test_segm_breakdown_matches_mask_ap():
    gt, dts = synthetic_coco(
        num_images=4, num_categories=2, gt_per_image=3, dt_per_image=6, seed=1, iou_type="segm"
    )
    result = ce.evaluate(gt, dts, "segm", "pycocotools")
    eb = an.error_breakdown(gt, dts, "segm")
    assert eb.ap("C50") == pytest.approx(result.metrics()["AP50"], abs=1e-9)
    assert eb.ap("C75") == pytest.approx(result.metrics()["AP75"], abs=1e-9)
    cm = an.confusion_matrix(gt, dts, "segm", score_thr=0.0)
    assert cm.matrix.sum() > 0


def test_cli_analyze(tmp_path):
    gt, dts = scene()
    gt_path = write_json(tmp_path / "gt.json", gt)
    dt_path = write_json(tmp_path / "dt.json", dts)
    out = tmp_path / "analysis"
    res = run_tool(
        "eval_coco.py", "--gt", str(gt_path), "--dt", str(dt_path), "--analyze", str(out)
    )
    assert res.rc == 0, res.stderr
    # The 'all' row: the mean of the hand values above, on 0-100 with one decimal.
    row = next(line for line in res.stdout.splitlines() if line.startswith("all "))
    want = [np.mean([1.0 if lab == "FN" else HAND[n][lab] for n in HAND]) for lab in LABELS]
    assert [float(v) for v in row.split()[1:]] == [round(100 * w, 1) for w in want]
    assert "3 correct, 1 with the wrong class, 4 detections on background, 1 GT missed" in (
        res.stdout
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "error_breakdown.json",
        "errors_1_cat.png",
        "errors_2_dog.png",
        "errors_3_car.png",
        "errors_all.png",
        "per_class_ap.csv",
    ]
    saved = json.loads((out / "error_breakdown.json").read_text())
    assert saved["AP"]["all"]["cat"]["Oth"] == pytest.approx(100 * 2 / 3, abs=1e-4)
    assert saved["AP"]["medium"]["cat"]["C75"] is None
    assert (out / "per_class_ap.csv").read_text().splitlines()[2].startswith("2,dog,1,1,40.0000")


def test_cli_analyze_bad_score_leaves_nothing(tmp_path):
    gt, dts = scene()
    gt_path = write_json(tmp_path / "gt.json", gt)
    dt_path = write_json(tmp_path / "dt.json", dts)
    out = tmp_path / "analysis"
    res = run_tool(
        "eval_coco.py",
        "--gt",
        str(gt_path),
        "--dt",
        str(dt_path),
        "--analyze",
        str(out),
        "--confusion-score",
        "1.5",
    )
    assert res.rc == 2
    assert res.stderr.strip().splitlines() == [
        "eval_coco.py: error: --confusion-score must be in [0, 1], got 1.5"
    ]
    assert not out.exists()


def test_cli_analyze_draws_the_worst_images(tmp_path):
    import cv2

    gt, dts = scene()
    # A second image where the one cat is found: no error, so it is not drawn.
    gt["images"].append({"id": 2, "height": 100, "width": 100, "file_name": "b.png"})
    gt["images"][0]["file_name"] = "a.png"
    gt["annotations"].append({"id": 99, "image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20],
                              "area": 400.0, "iscrowd": 0})  # fmt: skip
    dts.append({"image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20], "score": 0.9})
    cm = an.confusion_matrix(gt, dts, "bbox", score_thr=0.3)
    # Image 1: d3 wrong class; d4, d2, d6, d8 on background; g4 missed.
    assert cm.errors_per_image == {1: (1, 4, 1), 2: (0, 0, 0)}
    assert cm.worst_images(5) == [1]
    root = tmp_path / "images"
    root.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(root / name), np.full((100, 100, 3), 128, np.uint8))
    gt_path = write_json(tmp_path / "gt.json", gt)
    dt_path = write_json(tmp_path / "dt.json", dts)
    out = tmp_path / "analysis"
    res = run_tool("eval_coco.py", "--gt", str(gt_path), "--dt", str(dt_path), "--analyze",
                   str(out), "--image-root", str(root))  # fmt: skip
    assert res.rc == 0, res.stderr
    assert f"wrote 1 pictures of the images with the most errors to {out / 'images'}" in res.stdout
    pic = cv2.imread(str(out / "images" / "00000_a.png"))
    assert pic.shape == (28 + 512, 512 + 8 + 512, 3)  # 100 px enlarged, GT on the right
    # Missing image files are refused before any picture is drawn.
    (root / "a.png").unlink()
    out2 = tmp_path / "analysis2"
    res = run_tool("eval_coco.py", "--gt", str(gt_path), "--dt", str(dt_path), "--analyze",
                   str(out2), "--image-root", str(root))  # fmt: skip
    assert res.rc == 2
    assert "image 1 ('a.png') is not a file under the image folder" in res.stderr
    assert not (out2 / "images").exists()
