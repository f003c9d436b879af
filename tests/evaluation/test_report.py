"""nasnet_det.evaluation.report through the real CLI: pycocotools' twelve lines, the per-category
table, metrics.json with Detectron2's names, PR plots; Detectron2's results file; empty DT."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from coco_reference import GOOD_GT, pycocotools_direct, write_json
from coco_synthetic import synthetic_coco
from harness import run_tool

import nasnet_det.evaluation as ce

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "eval_coco.py"
BACKENDS = ce.available_backends()


def _run_tool(args):
    """The real CLI, in this process (harness.run_tool: runpy, stdout/stderr captured)."""
    return run_tool("eval_coco.py", *map(str, args), cwd=REPO)


def test_detectron2_results_file_via_cli(tmp_path):
    # Detectron2's COCOEvaluator writes coco_instances_results.json: a results list whose
    # entries also carry an RLE 'segmentation' (counts as str) for instance segmentation models.
    gt, dts = synthetic_coco(
        num_images=6, num_categories=3, gt_per_image=3, dt_per_image=8, seed=4, iou_type="segm"
    )
    gt_path = write_json(tmp_path / "instances_val.json", gt)
    inference = tmp_path / "output" / "inference"
    inference.mkdir(parents=True)
    dt_path = write_json(inference / "coco_instances_results.json", dts)
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
        ref = pycocotools_direct(gt_path, ref_dts, iou_type)
        got = json.loads(out.read_text())
        assert got["AP"] == pytest.approx(ref.stats[0] * 100, abs=1e-4)
        assert got["AR100"] == pytest.approx(ref.stats[8] * 100, abs=1e-4)


def test_empty_detection_list_gives_zeros_and_warning(tmp_path):
    gt_path = write_json(tmp_path / "gt.json", GOOD_GT)
    dt_path = write_json(tmp_path / "dt.json", [])
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
            r = ce.evaluate(GOOD_GT, [], backend=backend)
        assert r.stats[0] == 0.0 and r.stats[8] == 0.0


def test_cli_outputs_metrics_table_and_plots(tmp_path):
    gt, dts = synthetic_coco(num_images=10, num_categories=3, dt_per_image=20, seed=8)
    gt["categories"][1]["name"] = "traffic light"
    gt_path, dt_path = write_json(tmp_path / "gt.json", gt), write_json(tmp_path / "dt.json", dts)
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
    ref = pycocotools_direct(gt_path, dt_path)
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
