"""The two COCO backends, one interface: ``RUNNERS[name](gt, dts, iou_type, cat_ids)`` returns a
finished ``COCOeval`` (``evaluate()`` and ``accumulate()`` done) restricted to ``cat_ids``.

``pycocotools`` is the reference; ``faster-coco-eval`` is a C++ port of its per-image matching and
accumulation with the same numbers (checked to 1e-6 by tests/evaluation/test_coco_eval.py). Both
are imported only when a run needs them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings

from .inputs import EvalInputError

__all__ = ["BACKENDS", "RUNNERS", "available_backends", "check_backend", "default_backend"]

BACKENDS = ("pycocotools", "faster-coco-eval")

# Result of bench/coco_eval_speed.py (docs/BENCHMARKS.md): faster-coco-eval is the default backend
# only because it measured faster there. Set to False if a re-run ever shows otherwise.
FASTER_COCO_EVAL_MEASURED_FASTER = True


def available_backends() -> list[str]:
    """Backends installed in this environment, in ``BACKENDS`` order (found, not imported)."""
    found = []
    for name, module in (("pycocotools", "pycocotools"), ("faster-coco-eval", "faster_coco_eval")):
        try:
            if importlib.util.find_spec(module) is not None:
                found.append(name)
        except (ImportError, ValueError):
            pass
    return found


def default_backend() -> str:
    """faster-coco-eval when it is installed and measured faster (it is: docs/BENCHMARKS.md)."""
    if FASTER_COCO_EVAL_MEASURED_FASTER and "faster-coco-eval" in available_backends():
        return "faster-coco-eval"
    return "pycocotools"


def check_backend(backend: str) -> None:
    """Refuse an unknown or uninstalled backend with one line."""
    if backend not in BACKENDS:
        raise EvalInputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise EvalInputError(
            f"backend {backend} is not installed (pip install {backend}); installed: "
            + (", ".join(available_backends()) or "none")
        )


def prepare_segm_dts(dts: list, gt: dict) -> list:
    """Detectron2's convention for mask AP: drop 'bbox' so the mask area decides small/medium/
    large, and turn polygons / uncompressed RLE into compressed RLE (what pycocotools' loadRes
    accepts for results; annToRLE would do the same conversion for GT)."""
    from pycocotools import mask as mask_util

    hw = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    out = []
    for d in dts:
        d = {k: v for k, v in d.items() if k != "bbox"}
        seg = d["segmentation"]
        if type(seg) is list:
            h, w = hw[d["image_id"]]
            rle = mask_util.merge(mask_util.frPyObjects(seg, h, w))
        elif type(seg["counts"]) is list:
            h, w = seg["size"]
            rle = mask_util.frPyObjects(seg, h, w)
        else:
            rle = seg
        if isinstance(rle["counts"], bytes):
            rle = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
        d["segmentation"] = rle
        out.append(d)
    return out


def _results_coco(coco_cls, gt: dict, annotations: list):
    """A results ``COCO`` over GT's images and categories, built without ``loadRes``."""
    res = coco_cls()
    res.dataset = {
        "images": list(gt["images"]),
        "categories": list(gt["categories"]),
        "annotations": annotations,
    }
    res.createIndex()
    return res


def eval_pycocotools(gt: dict, dts: list, iou_type: str, cat_ids: list):
    """Plain pycocotools, restricted to ``cat_ids`` (all GT categories in a serial run)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        # loadRes cannot take an empty list.
        coco_dt = coco_gt.loadRes(dts) if dts else _results_coco(COCO, gt, [])
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
    return ev


def eval_faster(gt: dict, dts: list, iou_type: str, cat_ids: list):
    """faster-coco-eval (C++ matching and accumulation), restricted to ``cat_ids``."""
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO()
    coco_gt.dataset = gt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its annotation-id-0 warning: validate_gt has ours
        coco_gt.createIndex()
    if iou_type == "bbox" and dts:
        # What loadRes does for boxes, minus the unused polygon it would build for each
        # detection: area, a 1-based id (0 would read as 'unmatched'), iscrowd 0.
        for i, d in enumerate(dts, 1):
            b = d["bbox"]
            d["area"] = b[2] * b[3]
            d["id"] = i
            d["iscrowd"] = 0
        coco_dt = _results_coco(COCO, gt, dts)
    else:
        coco_dt = coco_gt.loadRes(dts)
    ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
    ev.params.catIds = list(cat_ids)
    ev.evaluate()
    ev.accumulate()
    return ev


RUNNERS = {"pycocotools": eval_pycocotools, "faster-coco-eval": eval_faster}
