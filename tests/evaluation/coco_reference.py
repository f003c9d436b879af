"""Reference helpers for the evaluation tests: pycocotools called as its README shows, and
small hand-made COCO inputs. Importable as ``coco_reference`` (see conftest.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path


def pycocotools_direct(gt_path, dt_path_or_list, iou_type="bbox"):
    """The reference: pycocotools used exactly as its README shows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(
            str(dt_path_or_list) if isinstance(dt_path_or_list, Path) else dt_path_or_list
        )
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def one_image_gt(boxes, cat_names=("cat",), size=(100, 100)):
    """One image (id 1); boxes: list of (category index, [x, y, w, h])."""
    h, w = size
    return {
        "images": [{"id": 1, "height": h, "width": w}],
        "categories": [{"id": 5 + 2 * i, "name": n} for i, n in enumerate(cat_names)],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 5 + 2 * c,
                "bbox": list(b),
                "area": float(b[2] * b[3]),
                "iscrowd": 0,
            }
            for i, (c, b) in enumerate(boxes)
        ],
    }


def dets(items):
    """items: (category index, [x, y, w, h], score) on image 1."""
    return [
        {"image_id": 1, "category_id": 5 + 2 * c, "bbox": list(b), "score": s} for c, b, s in items
    ]


GOOD_GT = one_image_gt([(0, [0, 0, 10, 10]), (0, [20, 0, 10, 10])])
GOOD_DET = {"image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "score": 0.9}
