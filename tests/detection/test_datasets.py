"""Datasets named in the config (DATASETS.COCO_JSON / DATASETS.VOC): training, evaluation and
bad input through tools/train_net.py, with no Python of the user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from detectron2.data import DatasetCatalog, MetadataCatalog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "reliability"))
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402
from tiny_datasets import (  # noqa: E402
    CONFIG,
    TINY,
    dataset_opts,
    voc_xml,
    write_coco,
    write_voc,
)

from nasnet_det.detection.datasets import register_coco_json, register_voc  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture
def data(tmp_path):
    return write_coco(tmp_path / "coco"), write_voc(tmp_path / "voc")


def test_coco_ids_need_not_be_contiguous(data):
    (ann, images), voc = data
    records = register_coco_json("t_coco_ids", str(ann), str(images))
    meta = MetadataCatalog.get("t_coco_ids")
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}
    assert meta.thing_classes == ["square", "bar"]
    assert {a["category_id"] for r in records for a in r["annotations"]} == {0, 1}
    # The VOC copy of the same objects gives the same boxes once VOC's 1-based pixels are undone.
    voc_records = register_voc("t_voc_ids", str(voc), "train", "square,bar")
    assert len(voc_records) == len(records) == 4
    for a, b in zip(records, voc_records):
        boxes_coco = sorted((x["category_id"], *x["bbox"]) for x in a["annotations"])
        boxes_voc = sorted((x["category_id"], *x["bbox"]) for x in b["annotations"])
        for p, q in zip(boxes_coco, boxes_voc):  # COCO is XYWH, VOC XYXY
            assert p[:3] == pytest.approx(q[:3]) and p[3:] == pytest.approx(
                [q[3] - q[1], q[4] - q[2]]
            )
    # Registering again (a second run in one process) replaces, never duplicates.
    register_voc("t_voc_ids", str(voc), "train", "square,bar")
    assert DatasetCatalog.list().count("t_voc_ids") == 1


@pytest.mark.slow
def test_coco_and_voc_train_one_iteration_and_evaluate(data, tmp_path):
    (ann, images), voc = data
    out = tmp_path / "out"
    opts = dataset_opts((ann, images), voc, "tc", "tc")
    opts += ["DATASETS.TEST", "('tc', 'tv')"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", CONFIG, *TINY,
         *opts, "SOLVER.MAX_ITER", "1", "OUTPUT_DIR", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "coco_metrics.json").read_text())
    # Same images and boxes in two formats: the evaluator maps COCO's ids 3/7 back and VOC's
    # contiguous ids through its converted json, so every number must agree.
    assert set(metrics) == {"tc", "tv"}
    assert metrics["tc"]["bbox"].keys() == metrics["tv"]["bbox"].keys() >= {"AP-square", "AP-bar"}
    for key, value in metrics["tc"]["bbox"].items():
        assert metrics["tv"]["bbox"][key] == pytest.approx(value, abs=1e-9), key
    # The run's config.yaml carries the dataset entries: it alone re-creates the run.
    dumped = yaml.safe_load((out / "config.yaml").read_text())["DATASETS"]
    assert dumped["COCO_JSON"] == [["tc", str(ann), str(images)]]
    assert dumped["VOC"] == [["tv", str(voc), "train", "square,bar"]]
    again = run_tool("train_net.py", "--config-file", str(out / "config.yaml"), "--eval-only",
                     "MODEL.WEIGHTS", str(out / "model_final.pth"), "OUTPUT_DIR",
                     str(tmp_path / "again"), cwd=REPO)  # fmt: skip
    assert again.rc == 0, again.stderr[-3000:]
    redo = json.loads((tmp_path / "again" / "coco_metrics.json").read_text())
    assert redo["tc"]["bbox"]["AP"] == pytest.approx(metrics["tc"]["bbox"]["AP"], abs=1e-9)


def _break(kind: str, tmp: Path, ann: Path, images: Path, voc: Path) -> None:
    """Damage the test data in one way (the table below names the way)."""
    gt = json.loads(ann.read_text())
    if kind == "json-list":
        ann.write_text(json.dumps(gt["annotations"]))
    elif kind == "json-text":
        ann.write_text("{images: oops")
    elif kind == "json-empty":
        ann.write_text(
            json.dumps({"images": [], "annotations": [], "categories": gt["categories"]})
        )
    elif kind == "json-no-anns":
        ann.write_text(json.dumps({**gt, "annotations": []}))
    elif kind == "json-bad-cat":
        gt["annotations"][2]["category_id"] = 5
        ann.write_text(json.dumps(gt))
    elif kind == "json-box-outside":
        im = next(i for i in gt["images"] if i["id"] == gt["annotations"][1]["image_id"])
        gt["annotations"][1]["bbox"] = [im["width"] - 10.0, 5.0, 12.0, 8.0]  # 2 px past x: > 1
        ann.write_text(json.dumps(gt))
    elif kind == "image-missing":
        (images / "img002.jpg").unlink()
    elif kind == "voc-outside":
        xml = voc_xml("000001.jpg", 96, [("square", [10, 10, 40, 40]), ("bar", [50, 50, 97, 90])])
        (voc / "Annotations" / "000001.xml").write_text(xml)
    elif kind == "voc-label":
        xml = voc_xml("000002.jpg", 96, [("dog", [10, 10, 40, 40])])
        (voc / "Annotations" / "000002.xml").write_text(xml)
    elif kind == "voc-no-xml":
        (voc / "Annotations" / "000003.xml").unlink()
    elif kind == "voc-empty":
        (voc / "ImageSets" / "Main" / "train.txt").write_text("\n")
    elif kind == "voc-no-objects":
        for i in range(4):
            (voc / "Annotations" / f"{i:06d}.xml").write_text(voc_xml(f"{i:06d}.jpg", 96, []))
    elif kind == "voc-bad-xml":
        (voc / "Annotations" / "000000.xml").write_text("<annotation><size>")


CJ, VOC, NC = "DATASETS.COCO_JSON", "DATASETS.VOC", "MODEL.ROI_HEADS.NUM_CLASSES"
# (damage, dataset used (c: COCO json "tc", v: VOC "tv"), extra overrides, expected message)
CASES = [
    ("none", "c", [CJ, "[['tc', 'nope.json', 'nope']]"], "'nope.json' does not exist"),
    ("none", "c", [CJ, "[['tc', '{ann}', 'nope']]"], "image folder 'nope' does not exist"),
    ("json-list", "c", [], "is not the COCO layout"),
    ("json-text", "c", [], "is not JSON"),
    ("json-empty", "c", [], "has no images (an empty dataset)"),
    ("json-no-anns", "c", [], "has no annotations (an empty dataset)"),
    ("json-bad-cat", "c", [], "a 'category_id' that is not in 'categories'"),
    ("image-missing", "c", [], "images[2] (id 102): image"),
    ("json-box-outside", "c", [], "has box [x 86, y 5, w 12, h 8] outside its 96x96 image"),
    ("none", "v", [VOC, "[['tv', 'nope', 'train', 'a']]"], "folder 'nope' does not exist"),
    ("voc-outside", "v", [],
     "000001.xml' object 2 (bar) has box [xmin 50, ymin 50, xmax 97, ymax 90] outside the 96x96"),
    ("voc-label", "v", [], "000002.xml' object 1 has label 'dog', which is not in the class list"),
    ("voc-no-xml", "v", [], "000003.xml' does not exist"),
    ("voc-empty", "v", [], "lists no images (an empty dataset)"),
    ("voc-no-objects", "v", [], "have no objects (an empty dataset)"),
    ("voc-bad-xml", "v", [], "000000.xml' is not valid XML"),
    ("none", "v", [VOC, "[['tv', '{voc}', 'train', '']]"], "labels.txt' does not exist"),
    ("none", "c", [NC, "10"], f"{NC} is 10 but dataset 'tc' has 2 categories (square, bar); set"),
    ("none", "c", ["DATASETS.TEST", "('gone',)"], "DATASETS.TEST names 'gone', which is not regis"),
    ("none", "c", [CJ, "[['tc', '{ann}']]"], f"{CJ}[0] must be [name, annotation json, image"),
    ("none", "c", [CJ, "[['nasnet_digits_val', '{ann}', '{images}']]"], "already registered"),
]  # fmt: skip


@pytest.mark.parametrize("damage, which, extra, message", CASES, ids=[
    f"{c[0]}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_bad_dataset_fails_cleanly_before_output(data, tmp_path, damage, which, extra, message):
    (ann, images), voc = data
    _break(damage, tmp_path, ann, images, voc)
    name = "tc" if which == "c" else "tv"
    opts = dataset_opts((ann, images), voc, name, name)
    subs = {"{ann}": str(ann), "{images}": str(images), "{voc}": str(voc)}
    for k, v in subs.items():
        extra = [e.replace(k, v) for e in extra]
    out = tmp_path / "out"
    before = snapshot(out)
    r = run_tool("train_net.py", "--config-file", str(REPO / CONFIG), *TINY, *opts, *extra,
                 "OUTPUT_DIR", str(out), cwd=tmp_path)  # fmt: skip
    assert_clean_failure(r, message, before, out)
    assert not out.exists()  # not even an empty folder
