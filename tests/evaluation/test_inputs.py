"""nasnet_det.evaluation.inputs through the real CLI: every bad input gives exit code
2, one line naming the first offending entry and how many share the problem, and no output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coco_reference import GOOD_DET, GOOD_GT
from harness import run_tool

REPO = Path(__file__).resolve().parents[2]


def _run_tool(args):
    """The real CLI, in this process (harness.run_tool: runpy, stdout/stderr captured)."""
    return run_tool("eval_coco.py", *map(str, args), cwd=REPO)


# ------------------------------------------------------------------------------------------
# CLI: bad inputs (in-process through tests/reliability/harness.py)
# ------------------------------------------------------------------------------------------


def _dt_with(bad: dict, n_bad: int = 2, n_good: int = 3) -> list:
    """n_good good detections, then n_bad copies of GOOD_DET updated with ``bad``: the first
    offending entry is detection[n_good]."""
    return [dict(GOOD_DET) for _ in range(n_good)] + [{**GOOD_DET, **bad} for _ in range(n_bad)]


# name -> (GT content, DT content, extra args, substrings the one-line error must contain).
# Contents are JSON-able objects, or str for raw file text; None means "no such file".
BAD_INPUTS = {
    "gt_missing_file": (None, [GOOD_DET], [], ["GT file", "does not exist"]),
    "gt_not_json": ("{'images': [", [GOOD_DET], [], ["GT file", "is not JSON", "line 1"]),
    "dt_not_json": (GOOD_GT, "[1, 2,", [], ["DT file", "is not JSON"]),
    "gt_not_coco_list": (
        [GOOD_DET],
        [GOOD_DET],
        [],
        ["is not the COCO layout", "got a JSON list"],
    ),
    "gt_no_images": (
        {"annotations": [], "categories": []},
        [GOOD_DET],
        [],
        ["is not the COCO layout", "no 'images' list"],
    ),
    "gt_bad_annotation": (
        {**GOOD_GT, "annotations": GOOD_GT["annotations"] + [{"id": 9}]},
        [GOOD_DET],
        [],
        ["1 of 3 annotations has", "first: annotation[2]"],
    ),
    "dt_not_list": (
        GOOD_GT,
        {"annotations": []},
        [],
        ["is not the COCO results layout", "expected a JSON list"],
    ),
    "dt_missing_key": (
        GOOD_GT,
        _dt_with({"bbox": None}, 1) + [{"image_id": 1}],
        [],
        ["1 of 5 detections has", "not the COCO results layout", "first: detection[4]"],
    ),
    "dt_unknown_image": (
        GOOD_GT,
        _dt_with({"image_id": 777}),
        [],
        [
            "2 of 5 detections have an image_id that is not in GT",
            "first: detection[3]",
            '"image_id": 777',
        ],
    ),
    "dt_unknown_category": (
        GOOD_GT,
        _dt_with({"category_id": 6}, 4),
        [],
        ["4 of 7 detections have a category_id that is not in GT", "first: detection[3]"],
    ),
    "dt_negative_width": (
        GOOD_GT,
        _dt_with({"bbox": [0, 0, -3, 10]}),
        [],
        [
            "2 of 5 detections have a bbox with negative or non-finite width/height",
            "first: detection[3]",
        ],
    ),
    "dt_nonfinite_height": (
        GOOD_GT,
        _dt_with({"bbox": [0, 0, 3, float("nan")]}, 1),
        [],
        ["1 of 4 detections has a bbox with negative or non-finite", "first: detection[3]"],
    ),
    "dt_infinite_width": (
        GOOD_GT,
        _dt_with({"bbox": [0, 0, float("inf"), 3]}, 3),
        [],
        ["3 of 6 detections have a bbox", "first: detection[3]"],
    ),
    "dt_nonfinite_score": (
        GOOD_GT,
        _dt_with({"score": float("nan")}, 2),
        [],
        ["2 of 5 detections have a non-finite or non-numeric score", "first: detection[3]"],
    ),
    "dt_infinite_score": (
        GOOD_GT,
        _dt_with({"score": float("inf")}, 1),
        [],
        ["1 of 4 detections has a non-finite", "first: detection[3]"],
    ),
    "segm_without_segmentation": (
        {
            **GOOD_GT,
            "annotations": [
                {**a, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}
                for a in GOOD_GT["annotations"]
            ],
        },
        [GOOD_DET] * 3,
        ["--iou-type", "segm"],
        [
            "3 of 3 detections have no 'segmentation', but --iou-type segm was requested",
            "first: detection[0]",
        ],
    ),
    "segm_gt_without_segmentation": (
        GOOD_GT,
        [GOOD_DET],
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


def test_rle_string_totals_match_pycocotools_encodings():
    """Every RLE string pycocotools' encoder writes sums to its mask's height x width (the
    reference: pycocotools.mask.encode, and its own area for the foreground runs); damaged or
    foreign strings are refused (-1) instead of being decoded past the buffer."""
    import numpy as np
    from pycocotools import mask as M

    from nasnet_det.evaluation.inputs import rle_string_totals

    rng = np.random.default_rng(0)
    strings, areas = [], []
    for t in range(200):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        m[:] = 0 if t % 5 == 0 else (1 if t % 7 == 0 else m)
        rle = M.encode(np.asfortranarray(m))
        strings.append(rle["counts"].decode())
        areas.append(h * w)
    assert rle_string_totals(strings).tolist() == areas
    assert rle_string_totals(["zzzz", "PPP", "caf\u00e9", "0"]).tolist() == [-1, -1, -1, 0]


def test_memory_error_while_parsing_names_the_file(tmp_path, monkeypatch):
    """Parsing can need several times the file's size: running out is one line naming the file
    (it was a bare 'MemoryError')."""
    import nasnet_det.evaluation.inputs as inputs

    f = tmp_path / "gt.json"
    f.write_text('{"images": []}')

    def no_memory(*a, **k):
        raise MemoryError

    monkeypatch.setattr(inputs.json, "loads", no_memory)
    with pytest.raises(inputs.EvalInputError, match=r"gt\.json \(0\.0 MB\) does not fit in memory"):
        inputs.load_json_file(f, "GT")
