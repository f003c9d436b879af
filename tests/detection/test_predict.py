"""tools/predict.py: pictures and a COCO-results JSON from a folder, a drawn video, and ids that
let the dataset's own annotations score the JSON (tools/eval_coco.py)."""

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
from tiny_datasets import CONFIG, TINY, dataset_opts, write_coco, write_voc  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny COCO (ids 3, 7) and VOC datasets and the tiny detector's seeded random weights."""
    from tiny_datasets import random_checkpoint

    tmp = tmp_path_factory.mktemp("predict")
    coco, voc = write_coco(tmp / "coco"), write_voc(tmp / "voc")
    weights = random_checkpoint(tmp / "weights.pth", [])
    return tmp, coco, voc, weights


def _boxes(results: list[dict]) -> list[tuple]:
    return sorted((r["image_id"], r["category_id"], round(r["score"], 5),
                   *(round(v, 3) for v in r["bbox"])) for r in results)  # fmt: skip


@pytest.mark.parametrize("which", ["tc", "tv"])
def test_folder_gives_pictures_and_the_evaluators_json(setup, which):
    tmp, (ann, images), voc, weights = setup
    opts = [*TINY, *dataset_opts((ann, images), voc, which, which), "MODEL.WEIGHTS", str(weights)]
    out = tmp / f"pred_{which}"
    source = images if which == "tc" else voc / "JPEGImages"
    r = run_tool("predict.py", "--config-file", CONFIG, "--input", str(source), "--output",
                 str(out), "--dataset", which, *opts, cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    assert "predict: 100%" in r.stderr and "4/4" in r.stderr  # progress with the real total
    for p in sorted(source.glob("*.jpg")):
        drawn = cv2.imread(str(out / p.name))
        # 96 px enlarged to 512 (--scale auto), ground truth beside (--dataset), under titles.
        assert cv2.imread(str(p)).shape == (96, 96, 3)
        assert drawn is not None and drawn.shape == (28 + 512, 512 + 8 + 512, 3)
    ours = json.loads((out / "coco_instances_results.json").read_text())
    assert ours, "random weights still give detections above SCORE_THRESH_TEST"
    gt = ann if which == "tc" else out / "tv_coco_format.json"
    assert f"--gt {gt}" in r.stdout
    m = tmp / f"metrics_{which}.json"
    r3 = run_tool("eval_coco.py", "--gt", str(gt), "--dt", str(out / "coco_instances_results.json"),
                  "--out", str(m), "--backend", "pycocotools", cwd=REPO)  # fmt: skip
    assert r3.rc == 0, r3.stderr[-3000:]
    if which == "tv":
        return
    # Detectron2's own evaluator on the same weights: identical detections, image and category
    # ids (COCO's 3/7 mapped back), so the same AP from the dataset's own annotation file.
    ev = tmp / f"eval_{which}"
    r2 = run_tool("train_net.py", "--config-file", CONFIG, "--eval-only", *opts, "OUTPUT_DIR",
                  str(ev), cwd=REPO)  # fmt: skip
    assert r2.rc == 0, r2.stderr[-3000:]
    theirs = json.loads((ev / "inference" / "coco_instances_results.json").read_text())
    assert _boxes(ours) == _boxes(theirs)
    ap = json.loads((ev / "coco_metrics.json").read_text())["bbox"]["AP"]
    assert json.loads(m.read_text())["AP"] == pytest.approx(ap, abs=1e-9)


def test_threshold_thins_the_picture_not_the_json(setup):
    tmp, (ann, images), voc, weights = setup
    opts = [*TINY, *dataset_opts((ann, images), None, "tc", "tc"), "MODEL.WEIGHTS", str(weights)]
    outs = {}
    for t in ("0", "1"):
        outs[t] = tmp / f"thr{t}"
        r = run_tool("predict.py", "--config-file", CONFIG, "--input", str(images / "img001.jpg"),
                     "--output", str(outs[t]), "--confidence-threshold", t, "--scale", "1",
                     *opts, cwd=REPO)  # fmt: skip
        assert r.rc == 0, r.stderr[-3000:]
        found = len(json.loads((outs[t] / "coco_instances_results.json").read_text()))
        note = f"img001.jpg: no detection scores >= 1 ({found} below it)"
        assert (note in r.stdout.splitlines()) == (t == "1")
    a, b = (json.loads((outs[t] / "coco_instances_results.json").read_text()) for t in "01")
    assert a == b and {d["image_id"] for d in a} == {1}  # no --dataset: ids are input positions
    plain = cv2.imread(str(images / "img001.jpg")).astype(int)
    none_drawn = cv2.imread(str(outs["1"] / "img001.jpg")).astype(int)
    all_drawn = cv2.imread(str(outs["0"] / "img001.jpg")).astype(int)
    # Threshold 1 draws nothing (only JPEG re-encoding differs); threshold 0 draws every box.
    assert np.abs(none_drawn - plain).mean() < 3
    assert np.abs(all_drawn - plain).mean() > np.abs(none_drawn - plain).mean() + 1


def test_video_is_drawn_frame_by_frame(setup):
    tmp, (ann, images), voc, weights = setup
    clip = tmp / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 96))
    frames = [cv2.imread(str(p)) for p in sorted(images.glob("*.jpg"))[:2]] * 2
    for f in frames:
        writer.write(f)
    writer.release()
    out = tmp / "video"
    r = run_tool("predict.py", "--config-file", CONFIG, "--input", str(clip), "--output", str(out),
                 *TINY, "MODEL.WEIGHTS", str(weights), "DATASETS.TEST", "()", cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    assert "4/4" in r.stderr  # progress with the real frame count
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(frames) == 4
    dets = json.loads((out / "clip.json").read_text())
    assert dets and {d["image_id"] for d in dets} <= set(range(1, 5))
    # Frames 1, 2 and 3, 4 are the same pictures: the same detections (MJPG decodes the same).
    first = _boxes([d for d in dets if d["image_id"] <= 2])
    second = _boxes([{**d, "image_id": d["image_id"] - 2} for d in dets if d["image_id"] > 2])
    assert first == second
    assert not list(out.glob(".*tmp*"))


@pytest.mark.parametrize("bad", ["0", "-2", "big", "inf"])
def test_bad_scale_is_one_line(tmp_path, bad):
    out = tmp_path / "out"
    r = run_tool("predict.py", "--config-file", CONFIG, "--input", str(tmp_path), "--output",
                 str(out), "--scale", bad, *TINY, cwd=REPO)  # fmt: skip
    assert r.rc == 2 and not out.exists()
    assert r.stderr.strip().splitlines() == [
        f"predict.py: error: --scale must be 'auto' or a positive number, got {bad!r}"
    ]
