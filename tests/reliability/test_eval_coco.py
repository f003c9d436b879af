"""tools/eval_coco.py under hostile input and failing outputs.

Each case runs the real tool in-process and must fail cleanly: exit 2, one line on stderr that
names the problem, no traceback, and the working folder exactly as before, including a previous
``metrics.json`` and plot in the output folder (no new, changed, temporary or empty files).
Faults that cannot be made for real here are simulated: a full disk by an ``os.fsync`` that raises
ENOSPC (what a full disk does to a flushed write), a read-only folder for root (who may write
anywhere) by ``os.access`` answering "not writable" for it, as it does for other users.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

GT = {
    "images": [{"id": 1, "height": 100, "width": 100}],
    "categories": [{"id": 5, "name": "cat"}, {"id": 7, "name": "dog"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "area": 100.0},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [20, 0, 10, 10], "area": 100.0},
    ],
}
GT_SEGM = {**GT, "annotations": [{**a, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}
                                  for a in GT["annotations"]]}  # fmt: skip
DET = {"image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "score": 0.9}
DET_TEXT = json.dumps(DET)


def dt(**bad) -> list:
    """A good detection, then one with ``bad`` fields (the offending entry is detection[1])."""
    return [DET, {**DET, **bad}]


def segm_dt(rle: dict) -> list:
    """A good mask detection (a polygon), then one with ``rle`` (detection[1])."""
    square = [[0, 0, 10, 0, 10, 10, 0, 10]]
    return [{**DET, "segmentation": square}, {**DET, "segmentation": rle}]


FOLDER = "<a folder>"  # make a folder where the file is expected
MISSING = None  # no file at all

# Standard arguments: both inputs, both outputs into out/ (which holds a previous run).
STD = ("--gt", "{gt}", "--dt", "{dt}", "--out", "{out}/metrics.json", "--plot", "{out}/plots")
IN = ("--gt", "{gt}", "--dt", "{dt}")

# (id, GT content, DT content, arguments, substring of the one-line message, fault)
# Contents: a JSON-able object, raw text (str) or bytes written as they are, FOLDER or MISSING.
CASES = [
    # Numbers JSON can hold but a score or box cannot be.
    ("score_10e400_integer", GT, dt(score=10**400), STD, "non-finite or non-numeric score", None),
    ("score_1e400_float", GT, f"[{DET_TEXT[:-5]} 1e400}}]", STD, "non-finite or non-numeric", None),
    ("score_nan", GT, dt(score=float("nan")), STD, "non-finite or non-numeric score", None),
    ("score_string", GT, dt(score="high"), STD, "non-finite or non-numeric score", None),
    ("bbox_infinity", GT, dt(bbox=[0, 0, float("inf"), 1]), STD, "non-finite width", None),
    ("bbox_negative", GT, dt(bbox=[0, 0, -3, 10]), STD, "negative or non-finite", None),
    ("bbox_non_numeric", GT, dt(bbox=["a", 0, 1, 1]), STD, "not 4 finite numbers", None),
    ("bbox_three_numbers", GT, dt(bbox=[0, 0, 1]), STD, "not 4 finite numbers", None),
    ("bbox_10e400", GT, dt(bbox=[0, 0, 10**400, 1]), STD, "1 of 2 detections has a bbox", None),
    (
        "gt_area_nan",
        {**GT, "annotations": [{**GT["annotations"][0], "area": float("nan")}]},
        [DET],
        STD,
        "a finite 'area' >= 0",
        None,
    ),
    # Hostile JSON.
    ("dt_100000_nested", GT, "[" * 100_000 + "]" * 100_000, STD, "nested too deeply", None),
    (
        "gt_100000_nested",
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        [DET],
        STD,
        "nested too deeply",
        None,
    ),
    (
        "dt_5000_digit_integer",
        GT,
        f"[{DET_TEXT[:-5]} {'9' * 5000}}}]",
        STD,
        "a number has more than 4300 digits",
        None,
    ),
    ("gt_not_utf8", b'{"images": "\xff\xfe caf\xe9"}', [DET], STD, "not UTF-8", None),
    ("dt_not_utf8", GT, b"[\xe9\xe9]", STD, "not UTF-8", None),
    ("gt_truncated", json.dumps(GT)[:40], [DET], STD, "is not JSON", None),
    ("gt_empty_file", "", [DET], STD, "is empty", None),
    ("dt_whitespace_only", GT, "  \n", STD, "is empty", None),
    # Paths.
    ("gt_is_a_folder", FOLDER, [DET], STD, "is a folder", None),
    ("dt_is_a_folder", GT, FOLDER, STD, "is a folder", None),
    ("gt_missing", MISSING, [DET], STD, "does not exist", None),
    ("dt_missing", GT, MISSING, STD, "does not exist", None),
    # JSON that is not COCO: the missing key is named.
    ("gt_empty_object", {}, [DET], STD, "no 'images' list", None),
    (
        "gt_without_categories",
        {"images": [], "annotations": []},
        [DET],
        STD,
        "no 'categories' list",
        None,
    ),
    (
        "gt_annotations_not_list",
        {**GT, "annotations": {}},
        [DET],
        STD,
        "'annotations' is a JSON dict, not a list",
        None,
    ),
    ("gt_is_a_results_list", [DET], [DET], STD, "pass it with --dt", None),
    ("dt_is_a_gt_file", GT, GT, STD, "pass it with --gt", None),
    (
        "dt_missing_score",
        GT,
        [DET, {"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}],
        STD,
        "'score'",
        None,
    ),
    # Detections that do not belong to GT.
    ("dt_unknown_image", GT, dt(image_id=99), STD, "image_id that is not in GT", None),
    ("dt_image_id_true", GT, dt(image_id=True), STD, "an image_id that is true or false", None),
    (
        "gt_image_id_true",
        {**GT, "images": [{"id": True, "height": 100, "width": 100}]},
        [DET],
        STD,
        "1 of 1 image has no",
        None,
    ),
    ("dt_image_id_beyond_int64", GT, dt(image_id=2**70), STD, "image_id that is not in GT", None),
    ("dt_unknown_category", GT, dt(category_id=6), STD, "category_id that is not in GT", None),
    ("dt_category_id_string", GT, dt(category_id="5"), STD, "category_id that is not in GT", None),
    ("segm_without_masks", GT, [DET], (*STD, "--iou-type", "segm"), "no 'segmentation'", None),
    # Malformed RLEs: pycocotools decoded them past the mask's buffer (exit 0 or a hang).
    (
        "segm_rle_bad_characters",
        GT_SEGM,
        segm_dt({"size": [100, 100], "counts": "zzzz"}),
        (*STD, "--iou-type", "segm"),
        "an RLE whose runs do not add up to its height x width",
        None,
    ),
    (
        "segm_rle_open_run",
        GT_SEGM,
        segm_dt({"size": [100, 100], "counts": "PPP"}),
        (*STD, "--iou-type", "segm"),
        "a malformed 'counts'",
        None,
    ),
    (
        "segm_rle_runs_too_long",
        GT_SEGM,
        segm_dt({"size": [100, 100], "counts": [20000]}),
        (*STD, "--iou-type", "segm"),
        "a malformed 'counts'",
        None,
    ),
    (
        "segm_rle_runs_too_short",
        GT_SEGM,
        segm_dt({"size": [100, 100], "counts": [5, 3]}),
        (*STD, "--iou-type", "segm"),
        "a malformed 'counts'",
        None,
    ),
    ("workers_zero", GT, [DET], (*STD, "--workers", "0"), "workers must be a positive", None),
    # Outputs that cannot be written: one line naming the path and the cause, nothing written.
    ("out_is_a_folder", GT, [DET], (*IN, "--out", "{out}"), "is a folder, expected a file", None),
    (
        "out_parent_is_a_file",
        GT,
        [DET],
        (*IN, "--out", "{out}/metrics.json/m.json"),
        "is a file, expected a folder",
        None,
    ),
    (
        "out_read_only_folder",
        GT,
        [DET],
        (*IN, "--out", "{ro}/metrics.json"),
        "not writable: permission denied",
        "readonly",
    ),
    (
        "plot_is_a_file",
        GT,
        [DET],
        (*IN, "--plot", "{out}/metrics.json"),
        "is a file, expected a folder",
        None,
    ),
    ("out_disk_full", GT, [DET], STD, "no space left on the device", "enospc"),
    ("plot_disk_full", GT, [DET], (*IN, "--plot", "{out}/plots"), "no space left", "enospc"),
]


def _write(path: Path, content) -> None:
    if content is MISSING:
        return
    if content is FOLDER:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))


def _tree(folder: Path) -> list[str]:
    """Every entry below ``folder``, folders included (a new empty folder is debris too)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _read_only(monkeypatch, folder: Path) -> None:
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: answer for the folder as for another user
        real_access = os.access

        def access(path, mode, *args, **kw):
            if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kw)

        monkeypatch.setattr(os, "access", access)


def _disk_full(monkeypatch) -> None:
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize(
    "gt, dts, args, message, fault", [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_bad_input_fails_cleanly(request, tmp_path, monkeypatch, gt, dts, args, message, fault):
    _write(tmp_path / "gt.json", gt)
    _write(tmp_path / "dt.json", dts)
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "metrics.json").write_text('{"AP": 12.5}\n')  # a previous run's outputs
    (out / "plots" / "pr_all.png").write_bytes(b"\x89PNG previous plot")
    ro = tmp_path / "ro"
    ro.mkdir()
    names = {"gt": tmp_path / "gt.json", "dt": tmp_path / "dt.json", "out": out, "ro": ro}
    argv = [a.format(**names) for a in args]
    before, tree = snapshot(tmp_path), _tree(tmp_path)
    if fault == "readonly":
        _read_only(monkeypatch, ro)
    elif fault == "enospc":
        _disk_full(monkeypatch)
    try:
        result = run_tool("eval_coco.py", *argv, cwd=tmp_path)
    finally:
        monkeypatch.undo()
        ro.chmod(0o755)
    assert_clean_failure(result, message, before, tmp_path)
    assert _tree(tmp_path) == tree  # no new folder, no temporary file
    if fault != "enospc":  # a full disk shows only when writing, after the report
        assert "Average Precision" not in result.stdout  # refused before any evaluation work
    if not request.node.callspec.id.startswith(("out_", "plot_")):
        return
    # An output failure names the path that could not be written.
    flag = "--out" if "--out" in argv else "--plot"
    target = Path(argv[argv.index(flag) + 1])
    assert str(target) in result.stderr or str(target.parent) in result.stderr, result.stderr


def test_at_least_twenty_cases_and_unique_ids():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)


def test_disk_full_after_a_good_run_keeps_the_previous_outputs(tmp_path, monkeypatch):
    """A good run writes metrics.json and plots; a second run on a full disk leaves them intact."""
    _write(tmp_path / "gt.json", GT)
    _write(tmp_path / "dt.json", [DET])
    args = ["--gt", "gt.json", "--dt", "dt.json", "--out", "o/metrics.json", "--plot", "o/p"]
    first = run_tool("eval_coco.py", *args, cwd=tmp_path)
    assert first.rc == 0, first.stderr
    pngs = sorted((tmp_path / "o" / "p").iterdir())
    assert [p.name for p in pngs] == ["pr_5_cat.png", "pr_7_dog.png", "pr_all.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    before = snapshot(tmp_path)
    for outputs in (args[4:], args[6:]):  # metrics and plots, then plots alone
        _disk_full(monkeypatch)
        result = run_tool("eval_coco.py", *args[:4], *outputs, cwd=tmp_path)
        monkeypatch.undo()
        assert_clean_failure(result, "no space left on the device", before, tmp_path)


def test_plot_of_a_400_character_category_name(tmp_path):
    """A file name holds at most 255 bytes: the plot of a category named with 400 characters
    used to fail ("File name too long") after the plots before it were written."""
    gt = {**GT, "categories": [{"id": 5, "name": "c" * 400}, {"id": 7, "name": "dog"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps([DET]))
    r = run_tool("eval_coco.py", "--gt", tmp_path / "gt.json", "--dt", tmp_path / "dt.json",
                 "--plot", tmp_path / "plots")  # fmt: skip
    assert r.rc == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["pr_5_" + "c" * 80 + ".png", "pr_7_dog.png", "pr_all.png"]
