"""Detectron2's built-in COCO datasets (``coco_2017_val`` under ``$DETECTRON2_DATASETS``) get
the checks of ``DATASETS.COCO_JSON`` before any output: Detectron2 loads them lazily, after
OUTPUT_DIR and the model exist, so a defect used to surface mid-training (an assertion about
``thing_classes``, a ``SizeMismatchError``, PIL's "image file is truncated").

Detectron2 registers each built-in COCO name with ``register_coco_instances(name,
_get_builtin_metadata("coco"), json, images)``; the table registers small synthetic datasets the
same way (in process, fast), and one case runs ``coco_2017_val`` itself in a fresh interpreter
with ``DETECTRON2_DATASETS`` pointing at a temporary COCO layout.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "detection"))
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402
from tiny_datasets import write_coco  # noqa: E402

ROOT = HERE.parents[1]
COCO_1X = ROOT / "configs/COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml"
TINY = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8", "DATASETS.TEST", "()"]


def _things() -> list[dict]:
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    return [{"id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]]


def write_coco_layout(annotations: Path, images: Path, edit=None) -> None:
    """A two-image dataset with COCO's 80 categories (ids 1..90 with gaps), as Detectron2's
    built-in metadata describes them, at ``annotations`` (the json) and ``images`` (the folder),
    changed by ``edit(gt, images)``."""
    scratch = annotations.parent / "scratch"
    ann, src = write_coco(scratch, num_images=2)
    images.parent.mkdir(parents=True, exist_ok=True)
    src.rename(images)
    gt = json.loads(ann.read_text())
    shutil.rmtree(scratch)
    gt["categories"] = _things()
    for a in gt["annotations"]:
        a["category_id"] = {3: 1, 7: 90}[a["category_id"]]  # person, toothbrush
    if edit is not None:
        edit(gt, images)
    annotations.write_text(json.dumps(gt))


def _cut(gt, images):
    data = (images / "img001.jpg").read_bytes()
    (images / "img001.jpg").write_bytes(data[: len(data) // 2])


def _two_categories(gt, images):
    gt["categories"] = [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}]


def _renumbered(gt, images):
    for k, c in enumerate(gt["categories"], start=1):
        c["id"] = k  # the same 80 names, ids 1..80
    for a in gt["annotations"]:
        a["category_id"] = 1


def _set(key, value, where="annotations"):
    def edit(gt, images):
        gt[where][0][key] = value

    return edit


def _box_outside(gt, images):
    gt["annotations"][0]["bbox"] = [80, 10, 40, 20]  # 96 px wide image


def _all_crowd(gt, images):
    for a in gt["annotations"]:
        a["iscrowd"] = 1


# (id, edit, extra opts, message)
CASES = [
    ("jpeg-cut", _cut, [], "img001.jpg' cannot be decoded (image file is truncated"),
    ("categories-not-cocos", _two_categories, [],
     "has categories ['person', 'toothbrush'], but Detectron2 registered this name with the 80"),
    ("category-ids-not-cocos", _renumbered, [],
     "category 'stop sign' has id 12 where Detectron2's metadata for this name has 13"),
    ("size-mismatch", _set("width", 120, "images"), [], "records 120x96 but its image"),
    ("box-outside", _box_outside, [], "outside its 96x96 image"),
    ("ignore-1", _set("ignore", 1), [], '"ignore": 1, which Detectron2 does not support'),
    ("file-outside", _set("file_name", "../x.jpg", "images"), [],
     "file_name '../x.jpg' is outside the image folder"),
    ("every-object-a-crowd", _all_crowd, [],
     "none of the 2 images has an object that is not a crowd region"),
    ("num-classes", None, ["MODEL.ROI_HEADS.NUM_CLASSES", "2"],
     "MODEL.ROI_HEADS.NUM_CLASSES is 2 but dataset 'h20_builtin_like' has 80 categories"),
]  # fmt: skip


@pytest.fixture
def builtin_like():
    """Register a name as Detectron2 registers ``coco_2017_val``; removed afterwards."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

    name = "h20_builtin_like"

    def register(json_file: Path, image_root: Path) -> str:
        register_coco_instances(name, _get_builtin_metadata("coco"), str(json_file),
                                str(image_root))  # fmt: skip
        return name

    yield register
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _train_args(out: Path, name: str, *opts: str) -> list[str]:
    return ["--config-file", str(COCO_1X), "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), *TINY,
            "DATASETS.TRAIN", f"('{name}',)", *opts]  # fmt: skip


@pytest.mark.parametrize("edit,opts,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_builtin_coco_dataset_is_one_line_before_output_dir(
    tmp_path, builtin_like, edit, opts, message
):
    data = tmp_path / "coco"
    write_coco_layout(data / "annotations" / "instances_val2017.json", data / "val2017", edit)
    name = builtin_like(data / "annotations" / "instances_val2017.json", data / "val2017")
    before, out = snapshot(data), tmp_path / "out"
    result = run_tool("train_net.py", *_train_args(out, name, *opts), cwd=tmp_path)
    assert_clean_failure(result, message, before, data)
    assert f"DATASETS.TRAIN '{name}'" in result.stderr or "NUM_CLASSES" in message
    assert not out.exists()


def test_a_good_builtin_coco_dataset_passes_and_loads_as_detectron2_loads_it(
    tmp_path, builtin_like
):
    """The unchanged layout passes the checks, and Detectron2's own lazy loader then reads it
    (its metadata assertions hold: the checks refuse only what it would refuse)."""
    from detectron2.data import DatasetCatalog

    from nasnet_det.detection.datasets import register_from_config
    from nasnet_det.detection.engine import load_config

    data = tmp_path / "coco"
    write_coco_layout(data / "annotations" / "instances_val2017.json", data / "val2017")
    name = builtin_like(data / "annotations" / "instances_val2017.json", data / "val2017")
    cfg = load_config(str(COCO_1X), [*TINY, "DATASETS.TRAIN", f"('{name}',)"])
    assert register_from_config(cfg) == []  # nothing registered by us; checked only
    records = DatasetCatalog.get(name)
    assert [len(r["annotations"]) for r in records] == [2, 2]
    assert {a["category_id"] for r in records for a in r["annotations"]} == {0, 79}


def test_coco_2017_val_under_detectron2_datasets_is_checked(tmp_path, monkeypatch):
    """Detectron2's own ``coco_2017_val``, read from a temporary ``$DETECTRON2_DATASETS`` (the
    variable is read when Detectron2 is imported, hence a fresh interpreter)."""
    root = tmp_path / "d2"
    write_coco_layout(root / "coco/annotations/instances_val2017.json", root / "coco/val2017", _cut)
    before, out = snapshot(root), tmp_path / "out"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    args = _train_args(out, "coco_2017_val")
    result = run_tool("train_net.py", *args, cwd=tmp_path, subprocess_=True)
    message = "img001.jpg' cannot be decoded (image file is truncated"
    assert_clean_failure(result, message, before, root)
    assert f"DATASETS.TRAIN 'coco_2017_val': {root}/coco/annotations/" in result.stderr
    assert not out.exists()
