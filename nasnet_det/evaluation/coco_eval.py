"""COCO detection / instance-segmentation evaluation, as ``tools/eval_coco.py`` runs it.

What it does, in order:

1. Loads GT (a COCO annotation file) and DT (a COCO results list, e.g. Detectron2's
   ``coco_instances_results.json``) and checks both *before any evaluation work*. Every problem is
   reported as one line naming the first offending entry and how many entries share the problem
   (:class:`EvalInputError`).
2. Runs the standard COCO protocol through one of two backends that give the same numbers:
   ``pycocotools`` (the reference) or ``faster-coco-eval`` (a C++ port of the per-image matching
   and accumulation; equality to 1e-6 is checked by tests/evaluation/test_coco_eval.py).
3. Reports the twelve pycocotools numbers, Detectron2's metric names (``AP``, ``AP50``, ...,
   ``AP-<category>``) on a 0-100 scale plus ``AR1 AR10 AR100 ARs ARm ARl``, a per-category table,
   and optional precision-recall plots.

Conventions copied from Detectron2's ``COCOEvaluator`` so that numbers match ``train_net.py``:
for ``segm``, the ``bbox`` field of each detection is dropped before loading, so that the area used
for the small/medium/large split is the mask area rather than the box area; an undefined metric
(no GT in that category or area range) is NaN (written as ``null`` in metrics.json, which stays
strict JSON).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import multiprocessing as mp
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BACKENDS = ("pycocotools", "faster-coco-eval")
IOU_TYPES = ("bbox", "segm")
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
AR_KEYS = ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
STAT_KEYS = AP_KEYS + AR_KEYS

# Result of bench/coco_eval_speed.py (docs/BENCHMARKS.md): faster-coco-eval is the default backend
# only because it measured faster there. Set to False if a re-run ever shows otherwise.
FASTER_COCO_EVAL_MEASURED_FASTER = True

# The twelve lines of COCOeval.summarize(): (is_ap, iou label, area, maxDets).
_SUMMARY_ROWS = (
    (True, "0.50:0.95", "all", 100),
    (True, "0.50", "all", 100),
    (True, "0.75", "all", 100),
    (True, "0.50:0.95", "small", 100),
    (True, "0.50:0.95", "medium", 100),
    (True, "0.50:0.95", "large", 100),
    (False, "0.50:0.95", "all", 1),
    (False, "0.50:0.95", "all", 10),
    (False, "0.50:0.95", "all", 100),
    (False, "0.50:0.95", "small", 100),
    (False, "0.50:0.95", "medium", 100),
    (False, "0.50:0.95", "large", 100),
)


class EvalInputError(ValueError):
    """A GT/DT input that cannot be evaluated. ``str(err)`` is a single line for the user."""


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Loading and input checks
# --------------------------------------------------------------------------------------------


def load_json_file(path: str | os.PathLike, role: str) -> Any:
    """Parse a JSON file; any failure becomes a one-line :class:`EvalInputError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EvalInputError(f"{role} file not found: {path}")
    if os.path.isdir(path):
        raise EvalInputError(f"{role} path is a directory, not a JSON file: {path}")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise EvalInputError(
            f"{role} file {path} is not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except UnicodeDecodeError as e:
        raise EvalInputError(
            f"{role} file {path} is not JSON: not UTF-8 text ({e.reason})"
        ) from None
    except OSError as e:
        raise EvalInputError(f"{role} file {path} cannot be read: {e.strerror}") from None


def _short(obj: Any, limit: int = 160) -> str:
    """One-line, length-limited rendering of an offending entry for error messages."""
    try:
        text = json.dumps(obj, separators=(", ", ": "), default=repr)
    except (TypeError, ValueError):
        text = repr(obj)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(label: str, items: list, bad: list[int], noun: str, problem: str) -> None:
    """Raise the standard message for ``bad`` (indices into ``items``) if it is non-empty."""
    if not bad:
        return
    i = bad[0]
    plural = noun if len(items) == 1 else noun + "s"
    verb = "has" if len(bad) == 1 else "have"
    raise EvalInputError(
        f"{label}: {len(bad)} of {len(items)} {plural} {verb} {problem}; "
        f"first: {noun}[{i}] = {_short(items[i])}"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int)  # JSON integers (a bool is an int, as in numpy's fast path)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _bad_box(b: Any) -> bool:
    """True unless ``b`` is [x, y, w, h] with finite values and w, h >= 0."""
    return not (
        isinstance(b, (list, tuple))
        and len(b) == 4
        and _finite(b[0])
        and _finite(b[1])
        and _finite(b[2])
        and _finite(b[3])
        and b[2] >= 0
        and b[3] >= 0
    )


def _bad_segmentation(seg: Any, hw: tuple[int, int] | None) -> bool:
    """True unless ``seg`` is COCO polygons or an RLE (compressed or not) of the image's size."""
    if type(seg) is list:
        return not seg or any(
            type(p) is not list or len(p) < 6 or len(p) % 2 or not all(_finite(v) for v in p)
            for p in seg
        )
    if type(seg) is dict:
        size, counts = seg.get("size"), seg.get("counts")
        if type(size) is not list or len(size) != 2 or not all(_is_int(v) for v in size):
            return True
        if hw is not None and tuple(size) != tuple(hw):
            return True
        if type(counts) is list:
            return not all(_is_int(c) for c in counts)
        return type(counts) is not str
    return True


@dataclass
class GtIndex:
    """What the DT checks need to know about a validated GT."""

    image_ids: set
    image_hw: dict  # image id -> (height, width), for images that have both
    cat_ids: list  # sorted
    cat_names: dict  # id -> name
    warnings: list = field(default_factory=list)  # valid but suspicious input


def validate_gt(gt: Any, iou_type: str = "bbox", label: str = "GT") -> GtIndex:
    """Check that ``gt`` is a COCO annotation dict usable for ``iou_type``; raise on the first
    kind of problem found (layout first, then per-entry checks)."""
    if iou_type not in IOU_TYPES:
        raise EvalInputError(
            f"unknown iou type {iou_type!r}; expected one of {', '.join(IOU_TYPES)}"
        )
    if not isinstance(gt, dict):
        hint = " (a detections list? pass it with --dt)" if isinstance(gt, list) else ""
        raise EvalInputError(
            f"{label} is not the COCO layout: expected a JSON object with 'images', 'annotations' "
            f"and 'categories', got a JSON {type(gt).__name__}{hint}"
        )
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise EvalInputError(f"{label} is not the COCO layout: no '{key}' list")
        if not isinstance(gt[key], list):
            raise EvalInputError(
                f"{label} is not the COCO layout: '{key}' is a JSON {type(gt[key]).__name__}, "
                "not a list"
            )
    images, anns, cats = gt["images"], gt["annotations"], gt["categories"]

    need_hw = iou_type == "segm"
    bad = [
        i
        for i, im in enumerate(images)
        if type(im) is not dict
        or not _is_int(im.get("id"))
        or (need_hw and not (_is_int(im.get("height")) and _is_int(im.get("width"))))
    ]
    what = "an integer 'id'"
    if need_hw:
        what += " and integer 'height'/'width' (needed for segm)"
    _fail(f"{label} 'images'", images, bad, "image", f"no {what}")
    seen: set = set()
    dup = []
    for i, im in enumerate(images):
        if im["id"] in seen:
            dup.append(i)
        seen.add(im["id"])
    _fail(f"{label} 'images'", images, dup, "image", "an 'id' used by an earlier image")
    image_ids = seen
    image_hw = {
        im["id"]: (im["height"], im["width"])
        for im in images
        if _is_int(im.get("height")) and _is_int(im.get("width"))
    }

    bad = [
        i
        for i, c in enumerate(cats)
        if type(c) is not dict or not _is_int(c.get("id")) or type(c.get("name")) is not str
    ]
    _fail(f"{label} 'categories'", cats, bad, "category", "no integer 'id' and string 'name'")
    seen = set()
    dup = []
    for i, c in enumerate(cats):
        if c["id"] in seen:
            dup.append(i)
        seen.add(c["id"])
    _fail(f"{label} 'categories'", cats, dup, "category", "an 'id' used by an earlier category")
    cat_names = {c["id"]: c["name"] for c in cats}

    lab = f"{label} 'annotations'"
    bad = [
        i
        for i, a in enumerate(anns)
        if type(a) is not dict
        or not _is_int(a.get("id"))
        or "image_id" not in a
        or "category_id" not in a
        or not _finite(a.get("area"))
        or a["area"] < 0
        or a.get("iscrowd", 0) not in (0, 1)
    ]
    _fail(
        lab,
        anns,
        bad,
        "annotation",
        "not the COCO layout (needs integer 'id', 'image_id', 'category_id', a finite "
        "'area' >= 0 and 'iscrowd' 0 or 1)",
    )
    seen = set()
    dup = []
    for i, a in enumerate(anns):
        if a["id"] in seen:
            dup.append(i)
        seen.add(a["id"])
    _fail(lab, anns, dup, "annotation", "an 'id' used by an earlier annotation")
    bad = [
        i for i, a in enumerate(anns) if not (_is_int(a["image_id"]) and a["image_id"] in image_ids)
    ]
    _fail(lab, anns, bad, "annotation", "an 'image_id' that is not in 'images'")
    bad = [
        i
        for i, a in enumerate(anns)
        if not (_is_int(a["category_id"]) and a["category_id"] in cat_names)
    ]
    _fail(lab, anns, bad, "annotation", "a 'category_id' that is not in 'categories'")
    if iou_type == "bbox":
        bad = [i for i, a in enumerate(anns) if _bad_box(a.get("bbox"))]
        _fail(
            lab,
            anns,
            bad,
            "annotation",
            "no 'bbox' [x, y, width, height] with finite values and width/height >= 0",
        )
    else:
        bad = [i for i, a in enumerate(anns) if "segmentation" not in a]
        _fail(lab, anns, bad, "annotation", "no 'segmentation', needed for --iou-type segm")
        bad = [
            i
            for i, a in enumerate(anns)
            if _bad_segmentation(a["segmentation"], image_hw.get(a["image_id"]))
        ]
        _fail(
            lab,
            anns,
            bad,
            "annotation",
            "a 'segmentation' that is neither polygons nor an RLE of the image's size",
        )
    notes = []
    if 0 in seen:
        notes.append(
            f"{label} has an annotation with id 0: pycocotools (and faster-coco-eval, which "
            "copies it) store the matched GT id as the match flag, so a detection matched to "
            "it counts as a false positive; number annotation ids from 1"
        )
    if not anns:
        notes.append(f"{label} has no annotations: every metric is undefined")
    return GtIndex(image_ids, image_hw, sorted(cat_names), cat_names, notes)


def _bad_indices(values: list, kinds: str, vector_ok, scalar_bad) -> list[int]:
    """Indices ``i`` with ``scalar_bad(values[i])``. When ``values`` form a numeric array (dtype
    kind in ``kinds``), ``vector_ok`` decides in one numpy pass instead (it may return None to
    fall back); the two predicates accept the same values."""
    if values:
        try:
            arr = np.array(values)
        except (ValueError, TypeError, OverflowError):
            arr = None
        if arr is not None and arr.dtype.kind in kinds and arr.shape[0] == len(values):
            ok = vector_ok(arr)
            if ok is not None:
                return np.flatnonzero(~ok).tolist()
    return [i for i, v in enumerate(values) if scalar_bad(v)]


def validate_dt(dts: Any, gt_index: GtIndex, iou_type: str = "bbox", label: str = "DT") -> None:
    """Check a COCO results list (Detectron2's coco_instances_results.json has the same layout)
    against the validated GT; raise on the first kind of problem found."""
    if not isinstance(dts, list):
        hint = ""
        if isinstance(dts, dict) and "annotations" in dts:
            hint = " (this looks like a GT annotation file; pass it with --gt)"
        raise EvalInputError(
            f"{label} is not the COCO results layout: expected a JSON list of detections "
            f"{{image_id, category_id, bbox, score}}, got a JSON {type(dts).__name__}{hint}"
        )
    keys = ("image_id", "category_id", "score") + (("bbox",) if iou_type == "bbox" else ())
    keyset = frozenset(keys)
    bad = [i for i, d in enumerate(dts) if type(d) is not dict or not d.keys() >= keyset]
    _fail(
        label,
        dts,
        bad,
        "detection",
        "not the COCO results layout (each needs " + ", ".join(f"'{k}'" for k in keys) + ")",
    )

    image_ids = gt_index.image_ids
    id_array = np.fromiter(image_ids, dtype=np.int64, count=len(image_ids))
    bad = _bad_indices(
        [d["image_id"] for d in dts],
        "i",
        lambda a: np.isin(a, id_array),
        lambda v: not (_is_int(v) and v in image_ids),
    )
    _fail(label, dts, bad, "detection", "an image_id that is not in GT")

    cats = gt_index.cat_names
    cat_array = np.asarray(gt_index.cat_ids, dtype=np.int64)
    bad = _bad_indices(
        [d["category_id"] for d in dts],
        "i",
        lambda a: np.isin(a, cat_array),
        lambda v: not (_is_int(v) and v in cats),
    )
    _fail(label, dts, bad, "detection", "a category_id that is not in GT")

    if iou_type == "bbox":
        bad = _bad_indices(
            [d["bbox"] for d in dts],
            "iuf",
            lambda a: (
                (np.isfinite(a).all(axis=1) & (a[:, 2] >= 0) & (a[:, 3] >= 0))
                if a.ndim == 2 and a.shape[1] == 4
                else None
            ),
            _bad_box,
        )
        _fail(
            label,
            dts,
            bad,
            "detection",
            "a bbox with negative or non-finite width/height (or not 4 finite numbers "
            "[x, y, width, height])",
        )

    bad = _bad_indices(
        [d["score"] for d in dts],
        "iuf",
        lambda a: np.isfinite(a) if a.ndim == 1 else None,
        lambda v: not _finite(v),
    )
    _fail(label, dts, bad, "detection", "a non-finite or non-numeric score")
    if iou_type == "segm":
        bad = [i for i, d in enumerate(dts) if "segmentation" not in d]
        _fail(label, dts, bad, "detection", "no 'segmentation', but --iou-type segm was requested")
        hw = gt_index.image_hw
        bad = [
            i
            for i, d in enumerate(dts)
            if _bad_segmentation(d["segmentation"], hw.get(d["image_id"]))
        ]
        _fail(
            label,
            dts,
            bad,
            "detection",
            "a 'segmentation' that is neither polygons nor an RLE of the image's size",
        )


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _mean_valid(a: np.ndarray) -> float:
    """pycocotools' convention: mean over entries > -1, or -1 if there are none."""
    v = a[a > -1]
    return float(np.mean(v)) if v.size else -1.0


def _pct(v: float) -> float:
    return float(v * 100) if v >= 0 else float("nan")


@dataclass
class CocoEvalResult:
    """Everything the CLI reports. ``stats``: pycocotools' twelve numbers (0-1, -1 = undefined)."""

    iou_type: str
    backend: str
    stats: np.ndarray
    precision: np.ndarray  # [T, R, K, A, M], as COCOeval.eval["precision"]
    recall: np.ndarray  # [T, K, A, M]
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    cat_ids: list
    cat_names: list
    num_images: int
    num_detections: int
    workers: int = 1
    seconds: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def category_ap(self, k: int, iou: float | None = None) -> float:
        """AP of category index ``k`` (area all, maxDets 100) on 0-1, -1 if undefined."""
        p = self.precision[:, :, k, 0, -1]
        if iou is not None:
            p = p[np.where(np.isclose(self.iou_thrs, iou))[0]]
        return _mean_valid(p)

    def metric_keys(self) -> list[str]:
        """``AP-<name>`` keys, made unique with the category id if two categories share a name."""
        counts: dict = {}
        for n in self.cat_names:
            counts[n] = counts.get(n, 0) + 1
        return [
            f"AP-{n}" if counts[n] == 1 else f"AP-{n} (id {c})"
            for c, n in zip(self.cat_ids, self.cat_names)
        ]

    def metrics(self) -> dict:
        """Detectron2's names and scale: AP..APl, AR1..ARl, AP-<category>; NaN when undefined."""
        out = {k: _pct(float(v)) for k, v in zip(STAT_KEYS, self.stats)}
        ordered = {k: out[k] for k in AP_KEYS}
        for k, key in enumerate(self.metric_keys()):
            ordered[key] = _pct(self.category_ap(k))
        ordered.update({k: out[k] for k in AR_KEYS})
        return ordered

    def summary_lines(self) -> list[str]:
        """The twelve lines exactly as pycocotools' COCOeval.summarize() prints them."""
        fmt = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
        lines = []
        for (is_ap, iou, area, md), v in zip(_SUMMARY_ROWS, self.stats):
            title, typ = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
            lines.append(fmt.format(title, typ, iou, area, md, float(v)))
        return lines

    def per_category_rows(self) -> list[tuple]:
        """(id, name, AP, AP50, AP75) per category on a 0-100 scale (NaN if no GT)."""
        return [
            (
                c,
                n,
                _pct(self.category_ap(k)),
                _pct(self.category_ap(k, 0.5)),
                _pct(self.category_ap(k, 0.75)),
            )
            for k, (c, n) in enumerate(zip(self.cat_ids, self.cat_names))
        ]

    def per_category_table(self) -> str:
        rows = self.per_category_rows()
        width = max([len("category")] + [len(r[1]) for r in rows])
        head = f"{'id':>6}  {'category':<{width}}  {'AP':>7}  {'AP50':>7}  {'AP75':>7}"
        lines = [head, "-" * len(head)]
        for c, n, ap, ap50, ap75 in rows:
            lines.append(f"{c:>6}  {n:<{width}}  {ap:7.3f}  {ap50:7.3f}  {ap75:7.3f}")
        return "\n".join(lines)

    def write_metrics(self, path: str | os.PathLike) -> None:
        """metrics.json: strict JSON, NaN written as null."""
        clean = {k: (None if math.isnan(v) else v) for k, v in self.metrics().items()}
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(clean, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _prepare_segm_dts(dts: list, gt: dict) -> list:
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


def _empty_results_coco(coco_cls, gt: dict):
    res = coco_cls()
    res.dataset = {
        "images": list(gt["images"]),
        "categories": list(gt["categories"]),
        "annotations": [],
    }
    res.createIndex()
    return res


def _eval_pycocotools(gt: dict, dts: list, iou_type: str, cat_ids: list):
    """Plain pycocotools, restricted to ``cat_ids`` (all GT categories in a serial run)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        # loadRes cannot take an empty list.
        coco_dt = coco_gt.loadRes(dts) if dts else _empty_results_coco(COCO, gt)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
    return ev


def _eval_faster(gt: dict, dts: list, iou_type: str, cat_ids: list):
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
        coco_dt = COCO()
        coco_dt.dataset = {
            "images": list(gt["images"]),
            "categories": list(gt["categories"]),
            "annotations": dts,
        }
        coco_dt.createIndex()
    else:
        coco_dt = coco_gt.loadRes(dts)
    ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
    ev.params.catIds = list(cat_ids)
    ev.evaluate()
    ev.accumulate()
    return ev


_RUNNERS = {"pycocotools": _eval_pycocotools, "faster-coco-eval": _eval_faster}

# Inputs of a parallel run, set before the worker processes fork so that they inherit them
# instead of receiving pickled copies.
_FORK_STATE: tuple | None = None


def _eval_part(j: int):
    gt, groups, cat_groups, iou_type, backend = _FORK_STATE
    ev = _RUNNERS[backend](gt, groups[j], iou_type, cat_groups[j])
    return (
        np.asarray(ev.eval["precision"]),
        np.asarray(ev.eval["recall"]),
        np.asarray(ev.params.iouThrs),
        np.asarray(ev.params.recThrs),
    )


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _auto_workers(num_dts: int, num_cats: int) -> int:
    """One process per idle CPU (CPUs minus the 1-minute load average) for large inputs: on a
    busy machine extra processes only add fork and setup cost. Below ~20k detections that cost
    is more than the work itself."""
    if num_dts < 20_000:
        return 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    idle = int(_cpu_count() - busy + 0.5)
    return max(1, min(idle, 8, num_cats))


def _split_categories(dts: list, cat_ids: list, n: int) -> list[list]:
    """Categories into ``n`` groups of about equal detection counts (largest first, each to the
    lightest group). Categories are independent in COCOeval's accumulate, so any split gives the
    same per-category arrays."""
    counts = dict.fromkeys(cat_ids, 0)
    for d in dts:
        counts[d["category_id"]] += 1
    load = [0] * n
    groups: list[list] = [[] for _ in range(n)]
    for c in sorted(cat_ids, key=lambda c: (-counts[c], c)):
        j = load.index(min(load))
        groups[j].append(c)
        load[j] += counts[c] + 1
    return [sorted(g) for g in groups if g]


def _summarize(precision: np.ndarray, recall: np.ndarray, iou_thrs: np.ndarray) -> np.ndarray:
    """COCOeval.summarize()'s twelve numbers, with its exact indexing and averaging."""
    area_idx = {"all": 0, "small": 1, "medium": 2, "large": 3}
    maxdet_idx = {1: 0, 10: 1, 100: 2}
    stats = np.zeros(12)
    for n, (is_ap, iou, area, md) in enumerate(_SUMMARY_ROWS):
        s = precision if is_ap else recall
        if iou != "0.50:0.95":
            s = s[np.where(float(iou) == iou_thrs)[0]]
        a, m = area_idx[area], maxdet_idx[md]
        s = s[:, :, :, a, m] if is_ap else s[:, :, a, m]
        stats[n] = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    return stats


def _run(gt: dict, dts: list, iou_type: str, backend: str, workers: int):
    global _FORK_STATE
    cat_ids = sorted(c["id"] for c in gt["categories"])
    if workers > 1 and len(cat_ids) > 1 and "fork" in mp.get_all_start_methods():
        cat_groups = _split_categories(dts, cat_ids, min(workers, len(cat_ids)))
    else:
        cat_groups = [cat_ids]
    if len(cat_groups) == 1:
        _FORK_STATE = (gt, [dts], cat_groups, iou_type, backend)
        try:
            parts = [_eval_part(0)]
        finally:
            _FORK_STATE = None
    else:
        slot = {c: j for j, g in enumerate(cat_groups) for c in g}
        groups: list[list] = [[] for _ in cat_groups]
        adds = [g.append for g in groups]
        for d in dts:  # keeps each category's detections in input order (tie-breaking)
            adds[slot[d["category_id"]]](d)
        _FORK_STATE = (gt, groups, cat_groups, iou_type, backend)
        try:
            with mp.get_context("fork").Pool(len(cat_groups)) as pool:
                parts = pool.map(_eval_part, range(len(cat_groups)))
        finally:
            _FORK_STATE = None
    iou_thrs, rec_thrs = parts[0][2], parts[0][3]
    T, R, _, A, M = parts[0][0].shape
    precision = -np.ones((T, R, len(cat_ids), A, M))
    recall = -np.ones((T, len(cat_ids), A, M))
    index = {c: k for k, c in enumerate(cat_ids)}
    for g, (p, r, _, _) in zip(cat_groups, parts):
        ks = [index[c] for c in g]
        precision[:, :, ks] = p
        recall[:, ks] = r
    return cat_ids, precision, recall, iou_thrs, rec_thrs, len(cat_groups)


def evaluate(
    gt: dict,
    dts: list,
    iou_type: str = "bbox",
    backend: str | None = None,
    *,
    workers: int | None = None,
    validate: bool = True,
    copy_inputs: bool = True,
) -> CocoEvalResult:
    """Evaluate a COCO results list against a COCO GT dict.

    ``workers`` > 1 evaluates groups of categories in forked processes (default: one per CPU for
    large inputs); the numbers are the same as with one process. ``copy_inputs=False`` lets the
    backend annotate the given dicts in place (as pycocotools does), which saves a copy when the
    caller owns them (the CLI does).
    """
    t0 = time.perf_counter()
    backend = backend or default_backend()
    _check_backend(backend)
    _check_workers(workers)
    notes = []
    if validate:
        gt_index = validate_gt(gt, iou_type)
        validate_dt(dts, gt_index, iou_type)
        notes += gt_index.warnings
    t_check = time.perf_counter()

    if not dts:
        notes.append("DT has no detections: every AP and AR is 0 (or undefined where GT is empty)")
    for msg in notes:
        warnings.warn(msg, stacklevel=2)
    if copy_inputs:
        gt = dict(gt)
        for key in ("images", "annotations", "categories"):
            gt[key] = [dict(x) for x in gt[key]]
        dts = [dict(d) for d in dts]
    if iou_type == "segm":
        dts = _prepare_segm_dts(dts, gt)
    if workers is None:
        workers = _auto_workers(len(dts), len(gt["categories"]))

    cat_ids, precision, recall, iou_thrs, rec_thrs, used = _run(gt, dts, iou_type, backend, workers)
    t_eval = time.perf_counter()
    names = {c["id"]: c["name"] for c in gt["categories"]}
    return CocoEvalResult(
        iou_type=iou_type,
        backend=backend,
        stats=_summarize(precision, recall, iou_thrs),
        precision=precision,
        recall=recall,
        iou_thrs=iou_thrs,
        rec_thrs=rec_thrs,
        cat_ids=cat_ids,
        cat_names=[names[c] for c in cat_ids],
        num_images=len(gt["images"]),
        num_detections=len(dts),
        workers=used,
        seconds={"check": t_check - t0, "evaluate": t_eval - t_check},
        warnings=notes,
    )


def _check_workers(workers: int | None) -> None:
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise EvalInputError(f"workers must be a positive integer, got {workers!r}")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EvalInputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise EvalInputError(
            f"backend {backend} is not installed (pip install {backend}); installed: "
            + (", ".join(available_backends()) or "none")
        )


def evaluate_files(
    gt_path: str | os.PathLike,
    dt_path: str | os.PathLike,
    iou_type: str = "bbox",
    backend: str | None = None,
    *,
    workers: int | None = None,
) -> CocoEvalResult:
    """Load, check and evaluate two JSON files. Every input problem raises
    :class:`EvalInputError` before any evaluation work starts."""
    t0 = time.perf_counter()
    backend = backend or default_backend()
    _check_backend(backend)
    _check_workers(workers)
    gt = load_json_file(gt_path, "GT")
    dts = load_json_file(dt_path, "DT")
    t_load = time.perf_counter()
    gt_index = validate_gt(gt, iou_type, label=f"GT {os.fspath(gt_path)}")
    validate_dt(dts, gt_index, iou_type, label=f"DT {os.fspath(dt_path)}")
    t_check = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note is kept in result.warnings
        result = evaluate(
            gt, dts, iou_type, backend, workers=workers, validate=False, copy_inputs=False
        )
    result.warnings = gt_index.warnings + result.warnings
    result.seconds = {
        "load": t_load - t0,
        "check": t_check - t_load,
        "evaluate": result.seconds["evaluate"],
    }
    return result


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "category"


def _pr_curves(prec: np.ndarray, iou_thrs: np.ndarray) -> dict:
    """prec: [T, R, K'] for area all / maxDets 100 -> {label: (curve over R or None, AP)}."""
    curves = {}
    for label, sel in (
        ("IoU=0.50:0.95", slice(None)),
        ("IoU=0.50", np.isclose(iou_thrs, 0.5)),
        ("IoU=0.75", np.isclose(iou_thrs, 0.75)),
    ):
        p = prec[sel]  # [t, R, K']
        valid = (p > -1).all(axis=1)  # [t, K']: a (threshold, category) with GT
        if not valid.any():
            curves[label] = (None, float("nan"))
            continue
        curve = np.where(valid[:, None, :], p, 0).sum(axis=(0, 2)) / valid.sum()
        curves[label] = (curve, _pct(_mean_valid(p)))
    return curves


def plot_pr_curves(result: CocoEvalResult, out_dir: str | os.PathLike) -> list[str]:
    """Precision-recall curves (area all, maxDets 100) as PNG: ``pr_all.png`` (mean over
    categories) and one ``pr_<id>_<name>.png`` per category. Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    prec = result.precision[:, :, :, 0, -1]  # [T, R, K]
    rec = result.rec_thrs
    jobs = [("all categories", "pr_all.png", prec)]
    for k, (c, n) in enumerate(zip(result.cat_ids, result.cat_names)):
        jobs.append((f"{n} (id {c})", f"pr_{c}_{_safe_name(n)}.png", prec[:, :, k : k + 1]))
    written = []
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    for title, fname, p in jobs:
        ax.clear()
        for label, (curve, ap) in _pr_curves(p, result.iou_thrs).items():
            if curve is not None:
                ax.plot(rec, curve, label=f"{label}  AP={ap:.1f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
        ax.set_title(f"{result.iou_type} PR curve: {title}\n(area=all, maxDets=100)", fontsize=10)
        if ax.lines:
            ax.legend(loc="lower left", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no GT for this category", ha="center", va="center")
        path = os.path.join(out_dir, fname)
        fig.savefig(path)
        written.append(path)
    plt.close(fig)
    return written


# --------------------------------------------------------------------------------------------
# Synthetic data (tests and bench/coco_eval_speed.py)
# --------------------------------------------------------------------------------------------


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
    categories = [{"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in cat_ids]
    cat_arr = np.asarray(cat_ids)
    images, anns, dts = [], [], []
    ann_id = 1
    segm = iou_type == "segm"
    if segm:
        from pycocotools import mask as mask_util

    def polygon(x, y, w, h):
        # An octagon inside the box: a mask that is not the box itself.
        cx, cy = w * 0.25, h * 0.25
        pts = [
            x + cx,
            y,
            x + w - cx,
            y,
            x + w,
            y + cy,
            x + w,
            y + h - cy,
            x + w - cx,
            y + h,
            x + cx,
            y + h,
            x,
            y + h - cy,
            x,
            y + cy,
        ]
        return [[round(float(v), 2) for v in pts]]

    for i in range(num_images):
        img_id = 10 + 3 * i
        w = int(rng.integers(320, 641))
        h = int(rng.integers(240, 641))
        images.append({"id": img_id, "width": w, "height": h, "file_name": f"{img_id:012d}.jpg"})
        n_gt = int(rng.poisson(gt_per_image))
        sides = np.exp(rng.uniform(np.log(4.0), np.log(min(w, h)), size=(n_gt, 2)))
        xy = rng.uniform(0, 1, size=(n_gt, 2)) * (np.array([w, h]) - sides)
        gcat = cat_arr[rng.integers(0, num_categories, n_gt)]
        crowd = rng.uniform(size=n_gt) < 0.02
        fill = rng.uniform(0.5, 1.0, n_gt)
        boxes = np.round(np.concatenate([xy, sides], axis=1), 2)
        for j in range(n_gt):
            box = boxes[j].tolist()
            a = {
                "id": ann_id,
                "image_id": img_id,
                "category_id": int(gcat[j]),
                "bbox": box,
                "iscrowd": int(crowd[j]),
            }
            if segm:
                a["segmentation"] = polygon(*box)
                rle = mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))
                a["area"] = float(mask_util.area(rle))
            else:
                a["area"] = round(float(box[2] * box[3] * fill[j]), 2)
            anns.append(a)
            ann_id += 1
        # Detections: 0-3 jittered copies per GT, then random boxes.
        copies = np.repeat(np.arange(n_gt), rng.integers(0, 4, n_gt))[:dt_per_image]
        n_true = len(copies)
        n_rand = dt_per_image - n_true
        tb = boxes[copies]
        jit = rng.normal(0, 0.08, size=(n_true, 2)) * tb[:, 2:]
        scale = np.exp(rng.normal(0, 0.12, size=(n_true, 2)))
        true_boxes = np.concatenate([tb[:, :2] + jit, tb[:, 2:] * scale], axis=1)
        true_cat = np.where(
            rng.uniform(size=n_true) < 0.85,
            gcat[copies],
            cat_arr[rng.integers(0, num_categories, n_true)],
        )
        true_score = rng.beta(5, 2, n_true)
        rs = np.exp(rng.uniform(np.log(4.0), np.log(min(w, h)), size=(n_rand, 2)))
        rxy = rng.uniform(0, 1, size=(n_rand, 2)) * (np.array([w, h]) - rs)
        rand_boxes = np.concatenate([rxy, rs], axis=1)
        rand_cat = cat_arr[rng.integers(0, num_categories, n_rand)]
        rand_score = rng.beta(1.2, 5, n_rand)
        all_boxes = np.round(np.concatenate([true_boxes, rand_boxes]), 2)
        all_cat = np.concatenate([true_cat, rand_cat]).astype(int)
        all_score = np.round(np.concatenate([true_score, rand_score]), score_decimals)
        for box, c, s in zip(all_boxes.tolist(), all_cat.tolist(), all_score.tolist()):
            d = {"image_id": img_id, "category_id": c, "bbox": box, "score": s}
            if segm:
                x, y, bw, bh = box
                x, y = max(x, 0.0), max(y, 0.0)
                rle = mask_util.merge(mask_util.frPyObjects(polygon(x, y, bw, bh), h, w))
                d["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
            dts.append(d)
    gt = {
        "info": {"description": f"synthetic COCO-like set, seed {seed}"},
        "images": images,
        "annotations": anns,
        "categories": categories,
    }
    return gt, dts
