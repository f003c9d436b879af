"""tools/eval_coco.py and nasnet_det.evaluation (issue 6).

Covers: perfect detections give 100; hand-computed 101-point interpolated APs; agreement with
pycocotools called directly on random sets (both backends, one and several processes, bbox and
segm); every bad input of the issue via the real CLI (message, exit code 2, no metrics.json);
empty detections; Detectron2's coco_instances_results.json; metrics.json keys; PR plots.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from coco_synthetic import synthetic_coco
from harness import run_tool

import nasnet_det.evaluation as ce

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "eval_coco.py"
BACKENDS = ce.available_backends()


def _pycocotools_direct(gt_path, dt_path_or_list, iou_type="bbox"):
    """The reference: pycocotools used exactly as its README shows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(
            str(dt_path_or_list) if isinstance(dt_path_or_list, Path) else dt_path_or_list
        )
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _one_image_gt(boxes, cat_names=("cat",), size=(100, 100)):
    """One image (id 1); boxes: list of (category index, [x, y, w, h])."""
    h, w = size
    return {
        "images": [{"id": 1, "height": h, "width": w}],
        "categories": [{"id": 5 + 2 * i, "name": n} for i, n in enumerate(cat_names)],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 5 + 2 * c,
                "bbox": list(b),
                "area": float(b[2] * b[3]),
                "iscrowd": 0,
            }
            for i, (c, b) in enumerate(boxes)
        ],
    }


def _dets(items):
    """items: (category index, [x, y, w, h], score) on image 1."""
    return [
        {"image_id": 1, "category_id": 5 + 2 * c, "bbox": list(b), "score": s} for c, b, s in items
    ]


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
    gt = _one_image_gt([(0, [0, 0, 10, 10]), (0, [20, 0, 10, 10])])
    dts = _dets([(0, [0, 0, 10, 10], 0.9), (0, [50, 50, 10, 10], 0.8), (0, [20, 0, 10, 10], 0.7)])
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
    gt = _one_image_gt([(0, [0, 0, 10, 10])])
    dts = _dets([(0, [0, 0, 10, 7.8], 0.5)])
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
    gt = _one_image_gt(
        [(0, [0, 0, 20, 20]), (0, [40, 40, 20, 20]), (1, [70, 0, 20, 20])], cat_names=("a", "b")
    )
    dts = _dets(
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
    gt_path, dt_path = _write(d / "gt.json", gt), _write(d / "dt.json", dts)
    ref = _pycocotools_direct(gt_path, dt_path)
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
    gt_path = _write(tmp_path / "gt.json", gt)
    # Detectron2's convention, which the tool follows: mask AP uses the mask area, so the box
    # is not given to loadRes.
    ref_dts = [{k: v for k, v in d.items() if k != "bbox"} for d in copy.deepcopy(dts)]
    ref = _pycocotools_direct(gt_path, ref_dts, "segm")
    r = ce.evaluate(gt, dts, "segm", backend=backend)
    assert np.abs(r.stats - np.asarray(ref.stats)).max() <= 1e-6
    assert r.stats[0] > 0.05  # a real, non-trivial score


def test_detectron2_results_file_via_cli(tmp_path):
    # Detectron2's COCOEvaluator writes coco_instances_results.json: a results list whose
    # entries also carry an RLE 'segmentation' (counts as str) for instance segmentation models.
    gt, dts = synthetic_coco(
        num_images=6, num_categories=3, gt_per_image=3, dt_per_image=8, seed=4, iou_type="segm"
    )
    gt_path = _write(tmp_path / "instances_val.json", gt)
    inference = tmp_path / "output" / "inference"
    inference.mkdir(parents=True)
    dt_path = _write(inference / "coco_instances_results.json", dts)
    out = tmp_path / "metrics.json"
    for iou_type in ("bbox", "segm"):
        args = ["--gt", gt_path, "--dt", dt_path, "--iou-type", iou_type, "--out", out]
        if iou_type == "segm":  # once as a real process, as a user runs it
            p = subprocess.run(
                [sys.executable, str(TOOL), *map(str, args)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            rc, stderr = p.returncode, p.stderr
        else:
            res = _run_tool(args)
            rc, stderr = res.rc, res.stderr
        assert rc == 0, stderr
        ref_dts = copy.deepcopy(dts)
        if iou_type == "segm":
            ref_dts = [{k: v for k, v in d.items() if k != "bbox"} for d in ref_dts]
        ref = _pycocotools_direct(gt_path, ref_dts, iou_type)
        got = json.loads(out.read_text())
        assert got["AP"] == pytest.approx(ref.stats[0] * 100, abs=1e-4)
        assert got["AR100"] == pytest.approx(ref.stats[8] * 100, abs=1e-4)


# ------------------------------------------------------------------------------------------
# CLI: bad inputs (in-process through tests/reliability/harness.py)
# ------------------------------------------------------------------------------------------

_GOOD_GT = _one_image_gt([(0, [0, 0, 10, 10]), (0, [20, 0, 10, 10])])
_GOOD_DET = {"image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "score": 0.9}


def _dt_with(bad: dict, n_bad: int = 2, n_good: int = 3) -> list:
    """n_good good detections, then n_bad copies of _GOOD_DET updated with ``bad``: the first
    offending entry is detection[n_good]."""
    return [dict(_GOOD_DET) for _ in range(n_good)] + [{**_GOOD_DET, **bad} for _ in range(n_bad)]


# name -> (GT content, DT content, extra args, substrings the one-line error must contain).
# Contents are JSON-able objects, or str for raw file text; None means "no such file".
BAD_INPUTS = {
    "gt_missing_file": (None, [_GOOD_DET], [], ["GT file not found"]),
    "gt_not_json": ("{'images': [", [_GOOD_DET], [], ["GT file", "is not JSON", "line 1"]),
    "dt_not_json": (_GOOD_GT, "[1, 2,", [], ["DT file", "is not JSON"]),
    "gt_not_coco_list": (
        [_GOOD_DET],
        [_GOOD_DET],
        [],
        ["is not the COCO layout", "got a JSON list"],
    ),
    "gt_no_images": (
        {"annotations": [], "categories": []},
        [_GOOD_DET],
        [],
        ["is not the COCO layout", "no 'images' list"],
    ),
    "gt_bad_annotation": (
        {**_GOOD_GT, "annotations": _GOOD_GT["annotations"] + [{"id": 9}]},
        [_GOOD_DET],
        [],
        ["1 of 3 annotations has", "first: annotation[2]"],
    ),
    "dt_not_list": (
        _GOOD_GT,
        {"annotations": []},
        [],
        ["is not the COCO results layout", "expected a JSON list"],
    ),
    "dt_missing_key": (
        _GOOD_GT,
        _dt_with({"bbox": None}, 1) + [{"image_id": 1}],
        [],
        ["1 of 5 detections has", "not the COCO results layout", "first: detection[4]"],
    ),
    "dt_unknown_image": (
        _GOOD_GT,
        _dt_with({"image_id": 777}),
        [],
        [
            "2 of 5 detections have an image_id that is not in GT",
            "first: detection[3]",
            '"image_id": 777',
        ],
    ),
    "dt_unknown_category": (
        _GOOD_GT,
        _dt_with({"category_id": 6}, 4),
        [],
        ["4 of 7 detections have a category_id that is not in GT", "first: detection[3]"],
    ),
    "dt_negative_width": (
        _GOOD_GT,
        _dt_with({"bbox": [0, 0, -3, 10]}),
        [],
        [
            "2 of 5 detections have a bbox with negative or non-finite width/height",
            "first: detection[3]",
        ],
    ),
    "dt_nonfinite_height": (
        _GOOD_GT,
        _dt_with({"bbox": [0, 0, 3, float("nan")]}, 1),
        [],
        ["1 of 4 detections has a bbox with negative or non-finite", "first: detection[3]"],
    ),
    "dt_infinite_width": (
        _GOOD_GT,
        _dt_with({"bbox": [0, 0, float("inf"), 3]}, 3),
        [],
        ["3 of 6 detections have a bbox", "first: detection[3]"],
    ),
    "dt_nonfinite_score": (
        _GOOD_GT,
        _dt_with({"score": float("nan")}, 2),
        [],
        ["2 of 5 detections have a non-finite or non-numeric score", "first: detection[3]"],
    ),
    "dt_infinite_score": (
        _GOOD_GT,
        _dt_with({"score": float("inf")}, 1),
        [],
        ["1 of 4 detections has a non-finite", "first: detection[3]"],
    ),
    "segm_without_segmentation": (
        {
            **_GOOD_GT,
            "annotations": [
                {**a, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}
                for a in _GOOD_GT["annotations"]
            ],
        },
        [_GOOD_DET] * 3,
        ["--iou-type", "segm"],
        [
            "3 of 3 detections have no 'segmentation', but --iou-type segm was requested",
            "first: detection[0]",
        ],
    ),
    "segm_gt_without_segmentation": (
        _GOOD_GT,
        [_GOOD_DET],
        ["--iou-type", "segm"],
        ["2 of 2 annotations have no 'segmentation'"],
    ),
}


def _write_raw(path: Path, content) -> None:
    if content is None:
        return
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def _run_tool(args):
    """The real CLI, in this process (harness.run_tool: runpy, stdout/stderr captured)."""
    return run_tool("eval_coco.py", *map(str, args), cwd=REPO)


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad-input run; each test reads its own result."""
    root = tmp_path_factory.mktemp("bad")
    runs = {}
    for name, (gt, dt, extra, _) in BAD_INPUTS.items():
        d = root / name
        d.mkdir()
        _write_raw(d / "gt.json", gt)
        _write_raw(d / "dt.json", dt)
        args = ["--gt", d / "gt.json", "--dt", d / "dt.json", "--out", d / "metrics.json"]
        runs[name] = (d, _run_tool([*args, "--plot", d / "plots", *extra]))
    return runs


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exit_2_one_line_no_metrics(bad_runs, name):
    d, proc = bad_runs[name]
    assert proc.rc == 2, (proc.rc, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one clear line, no traceback
    assert lines[0].startswith("eval_coco.py: error: ")
    for part in BAD_INPUTS[name][3]:
        assert part in lines[0], (part, lines[0])
    assert not (d / "metrics.json").exists()
    assert not (d / "plots").exists()
    assert "Average Precision" not in proc.stdout


def test_empty_detection_list_gives_zeros_and_warning(tmp_path):
    gt_path = _write(tmp_path / "gt.json", _GOOD_GT)
    dt_path = _write(tmp_path / "dt.json", [])
    out = tmp_path / "m.json"
    proc = _run_tool(["--gt", str(gt_path), "--dt", str(dt_path), "--out", str(out)])
    assert proc.rc == 0, proc.stderr
    assert "warning: DT has no detections" in proc.stderr
    m = json.loads(out.read_text())
    for key in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs", "AP-cat"):
        assert m[key] == 0.0, key
    assert m["APm"] is None and m["APl"] is None  # no medium/large GT: undefined, as Detectron2
    for backend in BACKENDS:
        with pytest.warns(UserWarning, match="no detections"):
            r = ce.evaluate(_GOOD_GT, [], backend=backend)
        assert r.stats[0] == 0.0 and r.stats[8] == 0.0


def test_cli_outputs_metrics_table_and_plots(tmp_path):
    gt, dts = synthetic_coco(num_images=10, num_categories=3, dt_per_image=20, seed=8)
    gt["categories"][1]["name"] = "traffic light"
    gt_path, dt_path = _write(tmp_path / "gt.json", gt), _write(tmp_path / "dt.json", dts)
    out, plots = tmp_path / "out" / "metrics.json", tmp_path / "plots"
    proc = _run_tool(
        [
            "--gt",
            str(gt_path),
            "--dt",
            str(dt_path),
            "--out",
            str(out),
            "--per-category",
            "--plot",
            str(plots),
            "--backend",
            "pycocotools",
        ]
    )
    assert proc.rc == 0, proc.stderr
    ref = _pycocotools_direct(gt_path, dt_path)
    # The twelve lines exactly as pycocotools prints them.
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        ref.summarize()
    for line in buf.getvalue().splitlines():
        assert line in proc.stdout.splitlines()
    assert "traffic light" in proc.stdout  # per-category table
    m = json.loads(out.read_text())
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    assert list(m) == (
        ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        + [f"AP-{n}" for n in names]
        + ["AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    )
    for key, v in zip(ce.STAT_KEYS, ref.stats):
        assert m[key] == pytest.approx(v * 100, abs=1e-6)
    pngs = sorted(p.name for p in plots.iterdir())
    assert "pr_all.png" in pngs and len(pngs) == 1 + len(names)
    assert any("traffic_light" in p for p in pngs)
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_default_backend_is_faster_coco_eval_when_installed():
    want = "faster-coco-eval" if "faster-coco-eval" in BACKENDS else "pycocotools"
    assert ce.default_backend() == want


def test_annotation_id_zero_warns_and_keeps_pycocotools_numbers(tmp_path):
    # pycocotools stores the matched GT's id as the match flag, so a perfect detection of the GT
    # with id 0 counts as a false positive: AP is not 100. The tool keeps pycocotools' number and
    # says why.
    gt = _one_image_gt([(0, [0, 0, 10, 10]), (0, [20, 0, 10, 10])])
    gt["annotations"][0]["id"] = 0
    dts = _dets([(0, [0, 0, 10, 10], 0.9), (0, [20, 0, 10, 10], 0.8)])
    ref = _pycocotools_direct(_write(tmp_path / "gt.json", gt), copy.deepcopy(dts))
    assert ref.stats[0] < 0.5
    for backend in BACKENDS:
        with pytest.warns(UserWarning, match="annotation with id 0"):
            r = ce.evaluate(gt, dts, backend=backend)
        assert np.abs(r.stats - np.asarray(ref.stats)).max() <= 1e-6
