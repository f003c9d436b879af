"""Deterministic synthetic COCO data for the evaluation tests and bench/coco_eval_speed.py.

Test data, not library code: tests/evaluation/conftest.py puts this folder on ``sys.path`` and the
benchmark does the same, so both import it as ``coco_synthetic``.
"""

from __future__ import annotations

import numpy as np


def octagon(x: float, y: float, w: float, h: float) -> list[list[float]]:
    """COCO polygon of an octagon inside the box: a mask that is not the box itself."""
    cx, cy = w * 0.25, h * 0.25
    xs = [x + cx, x + w - cx, x + w, x + w, x + w - cx, x + cx, x, x]
    ys = [y, y, y + cy, y + h - cy, y + h, y + h, y + h - cy, y + cy]
    return [[round(float(v), 2) for xy in zip(xs, ys) for v in xy]]


def _random_boxes(rng, n: int, w: int, h: int) -> np.ndarray:
    """``n`` boxes [x, y, w, h] inside the image, sides log-uniform from 4 px to the image size."""
    sides = np.exp(rng.uniform(np.log(4.0), np.log(min(w, h)), size=(n, 2)))
    xy = rng.uniform(0, 1, size=(n, 2)) * (np.array([w, h]) - sides)
    return np.concatenate([xy, sides], axis=1)


def _image_gt(rng, img_id, w, h, cat_arr, gt_per_image, segm, next_id):
    """GT annotations of one image (2% crowd); returns (annotations, boxes, categories)."""
    n_gt = int(rng.poisson(gt_per_image))
    sides_xy = _random_boxes(rng, n_gt, w, h)
    gcat = cat_arr[rng.integers(0, len(cat_arr), n_gt)]
    crowd = rng.uniform(size=n_gt) < 0.02
    fill = rng.uniform(0.5, 1.0, n_gt)
    boxes = np.round(sides_xy, 2)
    anns = []
    for j, box in enumerate(boxes.tolist()):
        a = {
            "id": next_id + j,
            "image_id": img_id,
            "category_id": int(gcat[j]),
            "bbox": box,
            "iscrowd": int(crowd[j]),
        }
        if segm:
            from pycocotools import mask as mask_util

            a["segmentation"] = octagon(*box)
            rle = mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))
            a["area"] = float(mask_util.area(rle))
        else:
            a["area"] = round(float(box[2] * box[3] * fill[j]), 2)
        anns.append(a)
    return anns, boxes, gcat


def _image_dts(rng, img_id, w, h, boxes, gcat, cat_arr, dt_per_image, score_decimals, segm):
    """0-3 jittered copies per GT (85% right class, high scores), then random boxes (low
    scores), ``dt_per_image`` in all."""
    n_gt = len(boxes)
    copies = np.repeat(np.arange(n_gt), rng.integers(0, 4, n_gt))[:dt_per_image]
    n_true, n_rand = len(copies), dt_per_image - len(copies)
    tb = boxes[copies]
    jit = rng.normal(0, 0.08, size=(n_true, 2)) * tb[:, 2:]
    scale = np.exp(rng.normal(0, 0.12, size=(n_true, 2)))
    true_boxes = np.concatenate([tb[:, :2] + jit, tb[:, 2:] * scale], axis=1)
    true_cat = np.where(
        rng.uniform(size=n_true) < 0.85,
        gcat[copies],
        cat_arr[rng.integers(0, len(cat_arr), n_true)],
    )
    true_score = rng.beta(5, 2, n_true)
    rand_boxes = _random_boxes(rng, n_rand, w, h)
    rand_cat = cat_arr[rng.integers(0, len(cat_arr), n_rand)]
    rand_score = rng.beta(1.2, 5, n_rand)
    all_boxes = np.round(np.concatenate([true_boxes, rand_boxes]), 2)
    all_cat = np.concatenate([true_cat, rand_cat]).astype(int)
    all_score = np.round(np.concatenate([true_score, rand_score]), score_decimals)
    dts = []
    for box, c, s in zip(all_boxes.tolist(), all_cat.tolist(), all_score.tolist()):
        d = {"image_id": img_id, "category_id": c, "bbox": box, "score": s}
        if segm:
            from pycocotools import mask as mask_util

            x, y, bw, bh = box
            rle = mask_util.merge(
                mask_util.frPyObjects(octagon(max(x, 0.0), max(y, 0.0), bw, bh), h, w)
            )
            d["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        dts.append(d)
    return dts


def synthetic_coco(
    num_images: int = 5000,
    num_categories: int = 80,
    gt_per_image: float = 7.0,
    dt_per_image: int = 100,
    seed: int = 0,
    iou_type: str = "bbox",
    score_decimals: int = 4,
) -> tuple[dict, list]:
    """A deterministic random GT dict and results list shaped like COCO val.

    Non-contiguous image and category ids; GT boxes from 4 px to the image size (all three area
    ranges), 2% crowd; detections are jittered GT copies (mostly right class, high scores) padded
    with random boxes (low scores) to exactly ``dt_per_image`` per image. Rounded scores create
    ties, which the backends must break the same way. With ``iou_type="segm"`` GT gets polygon
    masks and detections get RLE masks (as Detectron2 writes them), areas from the masks.
    """
    rng = np.random.default_rng(seed)
    cat_ids = sorted(
        rng.choice(np.arange(1, 2 * num_categories + 1), num_categories, replace=False).tolist()
    )
    cat_arr = np.asarray(cat_ids)
    segm = iou_type == "segm"
    images, anns, dts = [], [], []
    for i in range(num_images):
        img_id = 10 + 3 * i
        w, h = int(rng.integers(320, 641)), int(rng.integers(240, 641))
        images.append({"id": img_id, "width": w, "height": h, "file_name": f"{img_id:012d}.jpg"})
        a, boxes, gcat = _image_gt(rng, img_id, w, h, cat_arr, gt_per_image, segm, len(anns) + 1)
        anns += a
        dts += _image_dts(
            rng, img_id, w, h, boxes, gcat, cat_arr, dt_per_image, score_decimals, segm
        )
    gt = {
        "info": {"description": f"synthetic COCO-like set, seed {seed}"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in cat_ids],
    }
    return gt, dts
