"""The built-in digits detection dataset: deterministic, valid COCO, registered splits."""

import hashlib
import json

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools.coco import COCO

from nasnet_det.data import CLASSES, DigitsSpec, build_digits_dataset
from nasnet_det.detection.datasets import register_nasnet_digits

SMALL = DigitsSpec(num_train=12, num_val=6, num_val_mini=2, image_size=96, digit_sizes=(16, 32))


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = build_digits_dataset(tmp_path / "a", SMALL)
    b = build_digits_dataset(tmp_path / "b", SMALL)
    c = build_digits_dataset(tmp_path / "c", DigitsSpec(**{**SMALL.__dict__, "seed": 1}))
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    # Written once: a second call keeps the files (and is cheap).
    before = (a / "train.json").stat().st_mtime_ns
    build_digits_dataset(a, SMALL)
    assert (a / "train.json").stat().st_mtime_ns == before
    assert not list(tmp_path.glob(".*tmp*"))  # no leftovers of the atomic write


def test_valid_coco_with_ten_digit_classes(tmp_path):
    root = build_digits_dataset(tmp_path / "d", SMALL)
    coco = COCO(str(root / "train.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [str(d) for d in range(10)]
    assert len(coco.getImgIds()) == 12
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 12  # at least one digit per image
    for a in anns:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96
        assert 4 <= max(w, h) <= 36  # pasted at 16 or 32 px (+-10%), strokes inside
        assert a["area"] == pytest.approx(w * h)
    img = coco.loadImgs(1)[0]
    assert (img["height"], img["width"]) == (96, 96)
    mini = json.loads((root / "val_mini.json").read_text())
    assert [im["id"] for im in mini["images"]] == [1, 2]


def test_other_spec_in_same_cache_is_refused(tmp_path):
    build_digits_dataset(tmp_path / "d", SMALL)
    with pytest.raises(ValueError, match="other settings"):
        build_digits_dataset(tmp_path / "d", DigitsSpec(**{**SMALL.__dict__, "num_train": 13}))
    with pytest.raises(ValueError, match="digit_sizes"):
        DigitsSpec(image_size=32, digit_sizes=(48,))


def test_registered_splits_load_through_detectron2(tmp_path):
    names = register_nasnet_digits("test_digits", root=tmp_path / "reg", spec=SMALL)
    assert names == ["test_digits_train", "test_digits_val", "test_digits_val_mini"]
    assert not (tmp_path / "reg").exists()  # lazy: nothing written before first use
    dicts = DatasetCatalog.get("test_digits_val")
    assert len(dicts) == 6
    meta = MetadataCatalog.get("test_digits_val")
    assert meta.thing_classes == CLASSES and meta.evaluator_type == "coco"
    classes = {a["category_id"] for d in dicts for a in d["annotations"]}
    assert classes <= set(range(10))  # contiguous ids 0..9
    assert "nasnet_digits_train" in DatasetCatalog.list()
    image = dicts[0]["file_name"]
    assert np.asarray(__import__("cv2").imread(image)).shape == (96, 96, 3)


def test_split_pools_are_disjoint_and_cover_scikit_learns_digits():
    from sklearn.datasets import load_digits

    from nasnet_det.data import digit_pool

    train, train_y = digit_pool(SMALL, "train")
    val, val_y = digit_pool(SMALL, "val")
    assert (len(train), len(val)) == (1437, 360)  # 80% / 20% of 1797
    everything = load_digits()
    rows = {(im.tobytes(), int(y)) for im, y in zip(everything.images / 16.0, everything.target)}
    ours = [(im.astype(np.float64).tobytes(), int(y)) for im, y in zip(train, train_y)]
    ours += [(im.astype(np.float64).tobytes(), int(y)) for im, y in zip(val, val_y)]
    assert set(ours) == rows
    train_rows = {r for r in ours[: len(train)]}
    assert not train_rows & {r for r in ours[len(train) :]}
    with pytest.raises(ValueError, match="unknown split 'test'"):
        digit_pool(SMALL, "test")


def test_digit_crops_repeat_from_the_rng_and_follow_the_input_scale():
    from nasnet_det.data import DigitCrops

    crops = DigitCrops(SMALL)
    a, ya = crops.sample(200, 32, np.random.default_rng(7))
    b, yb = crops.sample(200, 32, np.random.default_rng(7))
    assert a.shape == (200, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert set(ya.tolist()) == set(range(10))
    # At the detector's 1.5x input scale the window is 32 image px, shown at 48 px.
    big, yc = DigitCrops(SMALL, scale=1.5).sample(3, 48, np.random.default_rng(7))
    cv2 = __import__("cv2")
    assert np.array_equal(yc, ya[:3])
    for i in range(3):
        expected = cv2.resize(a[i], (48, 48), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(big[i], expected)
    # Centred on the digit: the middle of the window differs from its edges far more often.
    centre = a[:, 12:20, 12:20].astype(float).std(axis=(1, 2)).mean()
    edge = a[:, :4, :4].astype(float).std(axis=(1, 2)).mean()
    assert centre > edge
