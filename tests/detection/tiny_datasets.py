"""Tiny detection datasets written by tests: COCO json + images, and a Pascal VOC folder.

Each image is a grey canvas with coloured filled rectangles (the objects), drawn with OpenCV.
Category ids in the COCO file are deliberately not contiguous (3 and 7), as users' files often
are; the VOC folder uses the same two classes by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("square", "bar")
COCO_IDS = (3, 7)  # not 1..K: Detectron2 maps them, its evaluator maps back
COLOURS = ((40, 40, 220), (220, 120, 30))  # BGR


def _objects(i: int, size: int) -> list[tuple[int, list[int]]]:
    """(class index, [x0, y0, x1, y1]) for image ``i``: one square and one bar, shifted."""
    s = size // 4
    ox, oy = (7 * i) % (size // 3), (11 * i) % (size // 3)
    bx, by = size // 2, size // 2 - oy // 2
    return [(0, [ox + 4, oy + 4, ox + 4 + s, oy + 4 + s]), (1, [bx, by, bx + s // 2, by + 2 * s])]


def _draw(i: int, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 128, np.uint8)
    img += np.random.default_rng(i).integers(0, 20, img.shape, dtype=np.uint8)
    for c, (x0, y0, x1, y1) in _objects(i, size):
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), COLOURS[c], thickness=-1)
    return img


def write_coco(root: Path, num_images: int = 4, size: int = 96) -> tuple[Path, Path]:
    """Images in ``root/images``, annotations in ``root/ann.json``; returns both paths."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        name = f"img{i:03d}.jpg"
        cv2.imwrite(str(images_dir / name), _draw(i, size))
        images.append({"id": 100 + i, "file_name": name, "height": size, "width": size})
        for c, (x0, y0, x1, y1) in _objects(i, size):
            w, h = x1 - x0, y1 - y0
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": COCO_IDS[c],
                         "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
    cats = [{"id": k, "name": n} for k, n in zip(COCO_IDS, CLASSES)]
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann, images_dir


def voc_xml(name: str, size: int, objects: list[tuple[str, list[float]]]) -> str:
    objs = "".join(
        f"<object><name>{label}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for label, b in objects
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{size}</width>"
        f"<height>{size}</height><depth>3</depth></size>{objs}</annotation>"
    )


def write_voc(root: Path, num_images: int = 4, size: int = 96, image_set: str = "train") -> Path:
    """A VOC folder (Annotations/, JPEGImages/, ImageSets/Main/<image_set>.txt); returns it."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(num_images):
        fileid = f"{i:06d}"
        ids.append(fileid)
        cv2.imwrite(str(root / "JPEGImages" / f"{fileid}.jpg"), _draw(i, size))
        # VOC pixel indices are 1-based: a box from pixel 0 has xmin 1.
        objs = [(CLASSES[c], [x0 + 1, y0 + 1, x1, y1]) for c, (x0, y0, x1, y1) in _objects(i, size)]
        (root / "Annotations" / f"{fileid}.xml").write_text(voc_xml(fileid + ".jpg", size, objs))
    (root / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(ids) + "\n")
    return root


CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
# The tool path is under test, not the network's size: one cell per stack, 8 filters.
TINY = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8",
        "MODEL.ROI_HEADS.NUM_CLASSES", "2"]  # fmt: skip


def dataset_opts(coco: tuple[Path, Path] | None, voc: Path | None, train: str, test: str) -> list:
    """KEY VALUE overrides registering ``tc`` (COCO) and/or ``tv`` (VOC) and using them."""
    opts = []
    if coco is not None:
        opts += ["DATASETS.COCO_JSON", repr([["tc", str(coco[0]), str(coco[1])]])]
    if voc is not None:
        opts += ["DATASETS.VOC", repr([["tv", str(voc), "train", ",".join(CLASSES)]])]
    return opts + ["DATASETS.TRAIN", repr((train,)), "DATASETS.TEST", repr((test,))]


def random_checkpoint(path: Path, opts: list) -> Path:
    """Save the seeded random weights of the tiny detector (a Detectron2 checkpoint)."""
    import torch
    from detectron2.modeling import build_model

    from nasnet_det.detection.engine import load_config

    cfg = load_config(CONFIG, TINY + opts)
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.save({"model": model.state_dict()}, path)
    return path
