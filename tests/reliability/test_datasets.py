"""Dataset checks before any output: train_net reads every annotation and
every image header of a config's datasets when it registers them, so a bad dataset is one line,
exit 2 and no OUTPUT_DIR, instead of a Detectron2 assertion, a ``TypeError`` or a
``SizeMismatchError`` found mid-training.

Each case is a small COCO or VOC dataset (tests/detection/tiny_datasets.py) with one defect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "detection"))
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402
from tiny_datasets import CLASSES, write_coco, write_voc  # noqa: E402

ROOT = HERE.parents[1]
INSTANT = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
COCO_1X = ROOT / "configs/COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml"
TINY = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8", "DATASETS.TEST", "()"]


def _coco(tmp: Path, name: str, edit) -> list[str]:
    """A COCO dataset in ``tmp/name`` changed by ``edit(gt, images_dir)``; its config opts."""
    ann, images = write_coco(tmp / name, num_images=2)
    gt = json.loads(ann.read_text())
    edit(gt, images)
    ann.write_text(json.dumps(gt))
    return ["DATASETS.COCO_JSON", f"[['bad', '{ann}', '{images}']]"]


def _voc(tmp: Path, name: str, edit) -> list[str]:
    """A VOC folder in ``tmp/name`` changed by ``edit(folder)``; its config opts."""
    folder = write_voc(tmp / name, num_images=2)
    edit(folder)
    return ["DATASETS.VOC", f"[['bad', '{folder}', 'train', '{','.join(CLASSES)}']]"]


def _set(key, value, where="annotations"):
    def edit(gt, images):
        gt[where][0][key] = value

    return edit


def _not_an_image(gt, images):
    (images / "img000.jpg").write_text("not a picture\n")


def _cut(path: Path) -> None:
    """A JPEG cut after its header: it opens (the header is whole), its pixels do not decode."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_jpeg(gt, images):
    _cut(images / "img001.jpg")


def _cut_voc_jpeg(folder):
    _cut(folder / "JPEGImages" / "000001.jpg")


def _outside(gt, images):
    (images.parent / "secret.jpg").write_bytes((images / "img000.jpg").read_bytes())
    gt["images"][0]["file_name"] = "../secret.jpg"


def _missing(gt, images):
    (images / "img001.jpg").unlink()


def _all_crowd(gt, images):
    for a in gt["annotations"]:
        a["iscrowd"] = 1  # Detectron2 drops crowd regions: no image left to train on


def _xml(field: str, value: str):
    def edit(folder):
        xml = folder / "Annotations" / "000001.xml"
        text = xml.read_text()
        xml.write_text(text.replace(f"<{field}>96</{field}>", f"<{field}>{value}</{field}>", 1))

    return edit


def _latin1_image_set(folder):
    (folder / "ImageSets/Main/train.txt").write_bytes("000000\n000001 caf\xe9\n".encode("latin-1"))


# (id, dataset maker, edit, message)
CASES = [
    ("coco-ignore-1", _coco, _set("ignore", 1),
     'annotation[0] (id 1) has "ignore": 1, which Detectron2 does not support'),
    ("coco-keypoints-string", _coco, _set("keypoints", "abc"),
     "has 'keypoints' 'abc', expected a list of numbers"),
    ("coco-segmentation-number", _coco, _set("segmentation", 5),
     "has 'segmentation' 5, expected polygons"),
    ("coco-rle-counts-float", _coco, _set("segmentation", {"size": [96, 96], "counts": [1.5]}),
     "expected polygons (lists of x, y numbers) or an RLE"),
    ("coco-box-outside", _coco, _set("bbox", [80, 10, 40, 20]),
     "annotation[0] (id 1) has box [x 80, y 10, w 40, h 20] outside its 96x96 image"),
    ("coco-size-mismatch", _coco, _set("width", 120, "images"),
     "images[0] (id 100) records 120x96 but its image"),
    ("coco-size-a-string", _coco, _set("height", "96", "images"),
     "has width/height 96x'96', expected positive integers"),
    ("coco-not-an-image", _coco, _not_an_image, "img000.jpg' is not a readable image"),
    ("coco-jpeg-cut", _coco, _cut_jpeg,
     "img001.jpg' cannot be decoded (image file is truncated"),
    ("coco-file-outside", _coco, _outside,
     "file_name '../secret.jpg' is outside the image folder"),
    ("coco-file-absolute", _coco, _set("file_name", "/etc/hostname", "images"),
     "file_name '/etc/hostname' is outside the image folder"),
    ("coco-image-missing", _coco, _missing, "img001.jpg' does not exist"),
    ("coco-every-object-a-crowd", _coco, _all_crowd,
     "none of the 2 images has an object that is not a crowd region"),
    ("voc-width-inf", _voc, _xml("width", "inf"), "<width> is 'inf', expected a finite number"),
    ("voc-width-1e400", _voc, _xml("width", "1e400"), "<width> is '1e400', expected a finite"),
    ("voc-height-nan", _voc, _xml("height", "NaN"), "<height> is 'NaN', expected a finite"),
    ("voc-size-mismatch", _voc, _xml("width", "97"), "records 97x96 but its image"),
    ("voc-jpeg-cut", _voc, _cut_voc_jpeg, "000001.jpg' cannot be decoded (image file is trunc"),
    ("voc-image-set-latin1", _voc, _latin1_image_set,
     "train.txt' is not UTF-8 text (byte 17); save it as UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize("make,edit,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_dataset_is_one_line_before_output_dir(tmp_path, make, edit, message):
    opts = make(tmp_path, "data", edit)
    out = tmp_path / "out"
    before = snapshot(tmp_path / "data")
    args = ["--config-file", str(INSTANT), "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), *TINY,
            *opts, "DATASETS.TRAIN", "('bad',)", "MODEL.ROI_HEADS.NUM_CLASSES", "2"]  # fmt: skip
    result = run_tool("train_net.py", *args, cwd=tmp_path)
    assert_clean_failure(result, message, before, tmp_path / "data")
    assert not out.exists()


def test_a_good_dataset_passes_the_same_checks(tmp_path):
    """The checks refuse only the defects: the unchanged datasets register (COCO and VOC)."""
    from nasnet_det.detection.datasets import register_coco_json, register_voc

    ann, images = write_coco(tmp_path / "coco", num_images=2)
    assert len(register_coco_json("h20_ok_coco", str(ann), str(images))) == 2
    folder = write_voc(tmp_path / "voc", num_images=2)
    records = register_voc("h20_ok_voc", str(folder), "train", ",".join(CLASSES))
    assert [(r["width"], r["height"]) for r in records] == [(96, 96), (96, 96)]


def test_exif_turned_image_is_compared_turned(tmp_path):
    """Detectron2's read_image applies the EXIF orientation: a 96x64 JPEG marked "rotate 90"
    is a 64x96 picture, so a record of 64x96 is right and 96x64 is refused."""
    from PIL import Image

    from nasnet_det.detection.datasets import _check_image

    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    Image.new("RGB", (96, 64)).save(path, exif=exif.tobytes())
    assert _check_image(path, {"width": 64, "height": 96}, "x") == (64, 96)
    with pytest.raises(ValueError, match="records 96x64 but its image"):
        _check_image(path, {"width": 96, "height": 64}, "x")


def test_coco_config_without_its_data_is_one_line(tmp_path):
    """The COCO config names Detectron2's coco_2017_train: without the files it is one line
    (before, Detectron2 printed ~1,300 lines of config and model and wrote OUTPUT_DIR first)."""
    out = tmp_path / "out"
    args = ["--config-file", str(COCO_1X), "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out)]
    result = run_tool("train_net.py", *args, cwd=tmp_path)  # no ./datasets/coco here
    assert_clean_failure(result, "names 'coco_2017_train', whose annotation file")
    assert "instances_train2017.json' does not exist" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert not out.exists()


def test_a_whole_image_with_data_after_its_end_passes_and_a_cut_png_does_not(tmp_path):
    """The end-marker shortcut decides nothing on its own: a JPEG with bytes appended after its
    end marker (some cameras do) is decoded and passes; a PNG cut short is refused."""
    from PIL import Image

    from nasnet_det.detection.datasets import _check_image

    pixels = Image.effect_noise((64, 48), 40).convert("RGB")
    jpeg, png = tmp_path / "tail.jpg", tmp_path / "cut.png"
    pixels.save(jpeg)
    jpeg.write_bytes(jpeg.read_bytes() + b"trailer" * 100)
    assert _check_image(jpeg, {"width": 64, "height": 48}, "x") == (64, 48)
    pixels.save(png)
    _cut(png)
    with pytest.raises(ValueError, match="cut.png' cannot be decoded .*truncated"):
        _check_image(png, {"width": 64, "height": 48}, "x")


def test_table_covers_the_issue_cases():
    assert len(CASES) >= 17 and len({c[0] for c in CASES}) == len(CASES)
