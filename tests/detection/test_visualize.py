"""nasnet_det.detection.visualize through tools/visualize_data.py and
tools/visualize_json_results.py: pictures of COCO-json, VOC and built-in datasets, as stored and
after the training loader, detections beside ground truth, and readable sizes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "reliability"))
from harness import run_tool  # noqa: E402
from tiny_datasets import COLOURS, CONFIG, TINY, dataset_opts, write_coco, write_voc  # noqa: E402

from nasnet_det.detection import visualize as V  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vis")
    return tmp, write_coco(tmp / "coco"), write_voc(tmp / "voc")


def test_readable_scale():
    assert V.readable_scale(128, 128) == 4.0  # the digits: drawn at 512 px
    assert V.readable_scale(96, 200) == pytest.approx(512 / 200)
    assert V.readable_scale(800, 1333) == 1.0  # never shrinks
    assert V.readable_scale(800, 1333, 0.5) == 0.5
    with pytest.raises(ValueError, match="positive"):
        V.readable_scale(10, 10, 0)
    assert V.parse_scale("auto") is None and V.parse_scale("2.5") == 2.5
    for bad in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(
            ValueError, match=f"--scale must be 'auto' or a positive number, got '{bad}'"
        ):
            V.parse_scale(bad)


def _box_pixels(img: np.ndarray, bgr: tuple) -> int:
    return int((np.abs(img.astype(int) - np.array(bgr)).sum(axis=2) < 30).sum())


@pytest.mark.parametrize("which", ["tc", "tv"])
def test_visualize_data_annotation(data, which):
    tmp, (ann, images), voc = data
    out = tmp / f"ann_{which}"
    opts = [*TINY, *dataset_opts((ann, images), voc, which, which)]
    r = run_tool("visualize_data.py", "--config-file", CONFIG, "--source", "annotation",
                 "--output-dir", str(out), "--num-images", "3", *opts, cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    assert f"wrote 3 pictures of {which} (annotation)" in r.stdout
    pics = sorted(out.iterdir())
    stems = ["img000", "img001", "img002"] if which == "tc" else ["000000", "000001", "000002"]
    assert [p.name for p in pics] == [f"{i:05d}_{s}.png" for i, s in enumerate(stems)]
    for p in pics:
        img = cv2.imread(str(p))
        assert img.shape == (512, 512, 3)  # 96 px enlarged to a readable size
    # The drawn picture differs from the plain enlarged image where the boxes and labels are.
    folder = images if which == "tc" else voc / "JPEGImages"
    plain = cv2.resize(cv2.imread(str(folder / f"{stems[0]}.jpg")), (512, 512))
    drawn = cv2.imread(str(pics[0]))
    assert (np.abs(drawn.astype(int) - plain).sum(axis=2) > 60).mean() > 0.003


def test_visualize_data_dataloader_and_builtin(data):
    tmp, coco, voc = data
    out = tmp / "dl"
    r = run_tool("visualize_data.py", "--config-file", CONFIG, "--source", "dataloader",
                 "--output-dir", str(out), "--num-images", "2", "--scale", "1", *TINY,
                 *dataset_opts(coco, None, "tc", "tc"), "INPUT.MIN_SIZE_TRAIN", "(160,)",
                 "INPUT.MAX_SIZE_TRAIN", "160", cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    pics = sorted(out.iterdir())
    assert len(pics) == 2
    assert all(cv2.imread(str(p)).shape == (160, 160, 3) for p in pics)  # after the resize
    # The built-in digits, with no dataset in the config at all.
    out2 = tmp / "digits"
    r = run_tool("visualize_data.py", "--config-file", CONFIG, "--source", "annotation",
                 "--output-dir", str(out2), "--num-images", "1", "--dataset",
                 "nasnet_digits_val_mini", *TINY, cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    assert cv2.imread(str(next(out2.iterdir()))).shape == (512, 512, 3)


def test_visualize_data_bad_input_is_one_line(data):
    tmp, coco, voc = data
    out = tmp / "bad"
    r = run_tool("visualize_data.py", "--config-file", CONFIG, "--source", "annotation",
                 "--output-dir", str(out), "--dataset", "nope", *TINY, cwd=REPO)  # fmt: skip
    assert r.rc == 2 and not out.exists()
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith("visualize_data.py: error: dataset 'nope' is not registered")
    )


def test_visualize_json_results_side_by_side(data):
    tmp, (ann, images), voc = data
    gt = json.loads(ann.read_text())
    # Image 100: its GT boxes shifted 2 px at score .9; image 101: one box at score .2 only.
    results = [
        {"image_id": 100, "category_id": a["category_id"],
         "bbox": [a["bbox"][0] + 2, *a["bbox"][1:]], "score": 0.9}
        for a in gt["annotations"] if a["image_id"] == 100
    ] + [{"image_id": 101, "category_id": 7, "bbox": [10, 10, 20, 20], "score": 0.2}]  # fmt: skip
    res = tmp / "results.json"
    res.write_text(json.dumps(results))
    cfg_file = tmp / "tc.yaml"
    cfg_file.write_text(f"_BASE_: {str(REPO / CONFIG)!r}\nDATASETS:\n"
                        f"  COCO_JSON: [['tc', {str(ann)!r}, {str(images)!r}]]\n")  # fmt: skip
    out = tmp / "vj"
    r = run_tool("visualize_json_results.py", "--input", str(res), "--output", str(out),
                 "--dataset", "tc", "--config-file", str(cfg_file), cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert lines[:3] == [
        "img001.jpg: no detection scores >= 0.5 (1 below it, 2 ground truth)",
        "img002.jpg: no detection scores >= 0.5 (0 below it, 2 ground truth)",
        "img003.jpg: no detection scores >= 0.5 (0 below it, 2 ground truth)",
    ]
    pic = cv2.imread(str(out / "00000_img000.png"))
    # Two 512 px panels, an 8 px gap, a 28 px title bar.
    assert pic.shape == (512 + 28, 2 * 512 + 8, 3)
    left, right = pic[28:, :512], pic[28:, 520:]
    # Both panels show the pasted objects' colours; the drawings over them differ.
    for panel in (left, right):
        assert _box_pixels(panel, COLOURS[0]) > 1000
    assert (np.abs(left.astype(int) - right).sum(axis=2) > 60).mean() > 0.003


def test_visualize_json_results_unknown_category(data):
    tmp, (ann, images), voc = data
    res = tmp / "bad_results.json"
    res.write_text(json.dumps([{"image_id": 100, "category_id": 5, "bbox": [0, 0, 5, 5],
                                "score": 0.1}]))  # fmt: skip
    cfg_file = tmp / "tc2.yaml"
    cfg_file.write_text(f"_BASE_: {str(REPO / CONFIG)!r}\nDATASETS:\n"
                        f"  COCO_JSON: [['tc', {str(ann)!r}, {str(images)!r}]]\n")  # fmt: skip
    out = tmp / "vj_bad"
    r = run_tool("visualize_json_results.py", "--input", str(res), "--output", str(out),
                 "--dataset", "tc", "--config-file", str(cfg_file), cwd=REPO)  # fmt: skip
    assert r.rc == 2 and not out.exists()
    assert "category_id 5 is not in the dataset" in r.stderr
