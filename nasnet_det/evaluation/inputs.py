"""Loading and checking COCO inputs before any evaluation work.

GT is a COCO annotation file (``images``, ``annotations``, ``categories``); DT is a COCO results
list (Detectron2's ``coco_instances_results.json`` has that layout). Every problem is one
:class:`EvalInputError` whose message is a single line naming the file, the first offending entry
and how many entries share the problem.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["IOU_TYPES", "EvalInputError", "GtIndex", "load_json_file", "validate_dt", "validate_gt"]

IOU_TYPES = ("bbox", "segm")

# Ids are stored by the backends in int64 arrays; a number outside that range is not an id.
_INT64 = (-(2**63), 2**63 - 1)
# The largest finite double: JSON integers beyond it (e.g. a 10^400 score) are not finite numbers.
_FLOAT_MAX = 1.7976931348623157e308


class EvalInputError(ValueError):
    """A GT/DT input that cannot be evaluated. ``str(err)`` is a single line for the user."""


def load_json_file(path: str | os.PathLike, role: str) -> Any:
    """Parse a JSON file; any failure becomes a one-line :class:`EvalInputError`."""
    from nasnet_det.limits import read_input_bytes

    path = os.fspath(path)
    try:
        data = read_input_bytes(path, "json", f"{role} file")
    except ValueError as e:
        raise EvalInputError(str(e)) from None
    if not data.strip():
        raise EvalInputError(f"{role} file {path} is empty, expected JSON")
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise EvalInputError(
            f"{role} file {path} is not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except UnicodeDecodeError as e:
        raise EvalInputError(
            f"{role} file {path} is not JSON: not UTF-8 text ({e.reason})"
        ) from None
    except RecursionError:
        raise EvalInputError(
            f"{role} file {path} is not COCO JSON: lists or objects nested too deeply to read"
        ) from None
    except MemoryError:
        raise EvalInputError(
            f"{role} file {path} ({len(data) / 2**20:.1f} MB) does not fit in memory once "
            "parsed; free memory or split the file"
        ) from None
    except ValueError as e:
        if "integer string conversion" in str(e):  # Python's cap on digits per integer
            limit = sys.get_int_max_str_digits()
            e = f"a number has more than {limit} digits"
        raise EvalInputError(f"{role} file {path} is not JSON we can read: {e}") from None


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
    """A JSON integer that fits in int64 (a bool is an int, as in numpy's fast path)."""
    return isinstance(v, int) and _INT64[0] <= v <= _INT64[1]


def _finite(v: Any) -> bool:
    """A JSON number that is a finite double (no NaN, no Infinity, no 10^400)."""
    return isinstance(v, (int, float)) and -_FLOAT_MAX <= v <= _FLOAT_MAX


def _bad_box(b: Any) -> bool:
    """True unless ``b`` is [x, y, w, h] with finite values and w, h >= 0."""
    return not (
        isinstance(b, (list, tuple))
        and len(b) == 4
        and all(_finite(v) for v in b)
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


def rle_string_totals(strings: list[str]) -> np.ndarray:
    """For each compressed COCO RLE ``counts`` string, the sum of its runs, or -1 when it is not
    one (a character outside ``0``..``o``, a run left open at the end, a negative run or one of
    over 35 bits). pycocotools decodes without these checks: runs that sum past
    ``height * width`` write past its mask buffer.

    The format (``rleFrString`` in pycocotools' maskApi.c): each run is 5-bit groups, low first,
    in characters ``48 + group``, bit 0x20 meaning "more groups follow" and bit 0x10 of the last
    group the sign; from the fourth run on, a run is stored as its difference to the run two
    before. Decoded in one numpy pass over all strings."""
    n = len(strings)
    enc = [t.encode("ascii") if t.isascii() else b"\x00" for t in strings]
    lens = np.fromiter(map(len, enc), np.int64, n)
    bad = np.zeros(n, bool)
    totals = np.zeros(n, np.int64)
    if not lens.sum():
        return totals
    c = np.frombuffer(b"".join(enc), np.uint8).astype(np.int64) - 48
    owner = np.repeat(np.arange(n), lens)
    bad[owner[(c < 0) | (c > 63)]] = True
    c = np.clip(c, 0, 63)
    more = (c & 0x20) != 0
    last_char = np.cumsum(lens)[lens > 0] - 1
    bad[owner[last_char[more[last_char]]]] = True  # the string ends inside a run
    end = ~more
    end[last_char] = True  # no run spans two strings
    start = np.r_[True, end[:-1]]
    idx = np.arange(len(c))
    k = idx - np.maximum.accumulate(np.where(start, idx, 0))
    bad[owner[k >= 7]] = True  # over 35 bits: not a run length of a real mask
    k = np.minimum(k, 6)
    starts = np.flatnonzero(start)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    groups = np.diff(np.r_[starts, len(c)])
    x = np.where((c[end] & 0x10) != 0, x - (1 << (5 * groups)), x)  # sign-extend
    tok_owner = owner[starts]
    per_string = np.bincount(tok_owner, minlength=n)
    m = np.arange(len(x)) - (np.cumsum(per_string) - per_string)[tok_owner]
    # Undo the delta coding (run m > 2 adds run m - 2): a cumulative sum within each (string,
    # parity of m), the odd chain from run 1, the even one from run 2; run 0 stands alone.
    key = np.where(m >= 1, tok_owner * 3 + np.where(m >= 2, 1 + (m & 1), 2), -1 - np.arange(len(x)))
    order = np.argsort(key, kind="stable")
    xs, ks = x[order], key[order]
    cs = np.cumsum(xs)
    first = np.r_[True, ks[1:] != ks[:-1]]
    base = np.maximum.accumulate(np.where(first, np.arange(len(xs)), 0))
    runs = np.empty_like(x)
    runs[order] = cs - cs[base] + xs[base]
    bad[tok_owner[runs < 0]] = True
    np.add.at(totals, tok_owner, runs)
    totals[bad] = -1
    return totals


def _bad_rle_runs(items: list, bad: list[int]) -> list[int]:
    """Indices of ``items`` whose RLE's runs do not sum to its ``height * width`` (the layout
    checks have passed: a ``size`` of two integers, ``counts`` a string or a list of ints)."""
    skip = set(bad)
    strings, owners, out = [], [], []
    for i, x in enumerate(items):
        seg = x["segmentation"]
        if i in skip or type(seg) is not dict:
            continue
        h, w = seg["size"]
        if type(seg["counts"]) is str:
            strings.append(seg["counts"])
            owners.append((i, h * w))
        elif any(v < 0 for v in seg["counts"]) or sum(seg["counts"]) != h * w:
            out.append(i)
    totals = rle_string_totals(strings)
    out += [i for (i, area), t in zip(owners, totals.tolist()) if t != area]
    return sorted(out)


def _repeated_ids(items: list) -> list[int]:
    """Indices of entries whose ``id`` an earlier entry already used."""
    seen: set = set()
    dup = []
    for i, x in enumerate(items):
        if x["id"] in seen:
            dup.append(i)
        seen.add(x["id"])
    return dup


@dataclass
class GtIndex:
    """What the DT checks need to know about a validated GT."""

    image_ids: set
    image_hw: dict  # image id -> (height, width), for images that have both
    cat_names: dict  # id -> name
    warnings: list = field(default_factory=list)  # valid but suspicious input


def validate_gt(gt: Any, iou_type: str = "bbox", label: str = "GT") -> GtIndex:
    """Check that ``gt`` is a COCO annotation dict usable for ``iou_type``; raise on the first
    kind of problem found (layout first, then per-entry checks)."""
    if iou_type not in IOU_TYPES:
        raise EvalInputError(
            f"unknown iou type {iou_type!r}; expected one of {', '.join(IOU_TYPES)}"
        )
    _check_gt_layout(gt, label)
    image_ids, image_hw = _check_images(gt["images"], iou_type, label)
    cat_names = _check_categories(gt["categories"], label)
    anns = gt["annotations"]
    _check_annotations(anns, image_ids, cat_names, label)
    if iou_type == "bbox":
        bad = [i for i, a in enumerate(anns) if _bad_box(a.get("bbox"))]
        _fail(
            f"{label} 'annotations'",
            anns,
            bad,
            "annotation",
            "no 'bbox' [x, y, width, height] with finite values and width/height >= 0",
        )
    else:
        _check_segmentations(anns, image_hw, f"{label} 'annotations'", "annotation")
    notes = []
    if any(a["id"] == 0 for a in anns):
        notes.append(
            f"{label} has an annotation with id 0: pycocotools (and faster-coco-eval, which "
            "copies it) store the matched GT id as the match flag, so a detection matched to "
            "it counts as a false positive; number annotation ids from 1"
        )
    if not anns:
        notes.append(f"{label} has no annotations: every metric is undefined")
    return GtIndex(image_ids, image_hw, cat_names, notes)


def _check_gt_layout(gt: Any, label: str) -> None:
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


def _check_images(images: list, iou_type: str, label: str) -> tuple[set, dict]:
    """Image ids and sizes; segm needs each image's height and width for RLE masks."""
    need_hw = iou_type == "segm"
    bad = [
        i
        for i, im in enumerate(images)
        if type(im) is not dict
        or not _is_int(im.get("id"))
        or type(im["id"]) is bool  # JSON true is not an id (Python would read it as 1)
        or (need_hw and not (_is_int(im.get("height")) and _is_int(im.get("width"))))
    ]
    what = "an integer 'id'"
    if need_hw:
        what += " and integer 'height'/'width' (needed for segm)"
    _fail(f"{label} 'images'", images, bad, "image", f"no {what}")
    dup = _repeated_ids(images)
    _fail(f"{label} 'images'", images, dup, "image", "an 'id' used by an earlier image")
    image_hw = {
        im["id"]: (im["height"], im["width"])
        for im in images
        if _is_int(im.get("height")) and _is_int(im.get("width"))
    }
    return {im["id"] for im in images}, image_hw


def _check_categories(cats: list, label: str) -> dict:
    """Category id -> name."""
    bad = [
        i
        for i, c in enumerate(cats)
        if type(c) is not dict or not _is_int(c.get("id")) or type(c.get("name")) is not str
    ]
    _fail(f"{label} 'categories'", cats, bad, "category", "no integer 'id' and string 'name'")
    dup = _repeated_ids(cats)
    _fail(f"{label} 'categories'", cats, dup, "category", "an 'id' used by an earlier category")
    return {c["id"]: c["name"] for c in cats}


def _check_annotations(anns: list, image_ids: set, cat_names: dict, label: str) -> None:
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
    dup = _repeated_ids(anns)
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


def _check_segmentations(items: list, image_hw: dict, label: str, noun: str) -> None:
    """Every GT annotation or detection carries polygons or an RLE of its image's size."""
    bad = [i for i, x in enumerate(items) if "segmentation" not in x]
    problem = "no 'segmentation', " + (
        "needed for --iou-type segm"
        if noun == "annotation"
        else "but --iou-type segm was requested"
    )
    _fail(label, items, bad, noun, problem)
    bad = [
        i
        for i, x in enumerate(items)
        if _bad_segmentation(x["segmentation"], image_hw.get(x["image_id"]))
    ]
    _fail(
        label,
        items,
        bad,
        noun,
        "a 'segmentation' that is neither polygons nor an RLE of the image's size",
    )
    _fail(
        label,
        items,
        _bad_rle_runs(items, bad),
        noun,
        "an RLE whose runs do not add up to its height x width (a malformed 'counts')",
    )


def _bad_indices(
    values: list,
    kinds: str,
    vector_ok: Callable[[np.ndarray], np.ndarray | None],
    scalar_bad: Callable[[Any], bool],
) -> list[int]:
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
    _check_dt_layout(dts, iou_type, label)
    _check_dt_ids(dts, gt_index, label)
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
        _check_segmentations(dts, gt_index.image_hw, label, "detection")


def _check_dt_layout(dts: Any, iou_type: str, label: str) -> None:
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


def _check_dt_ids(dts: list, gt_index: GtIndex, label: str) -> None:
    """Every detection's image and category exist in GT (one numpy pass on integer ids)."""
    for key, known in (("image_id", gt_index.image_ids), ("category_id", gt_index.cat_names)):
        # JSON true/false would pass as 1/0 (numpy turns [1, true] into integers as well).
        flags = [i for i, d in enumerate(dts) if type(d[key]) is bool]
        article = "an" if key == "image_id" else "a"
        _fail(label, dts, flags, "detection", f"{article} {key} that is true or false, not an id")
        ids = np.fromiter(known, dtype=np.int64, count=len(known))
        bad = _bad_indices(
            [d[key] for d in dts],
            "i",
            lambda a, ids=ids: np.isin(a, ids),
            lambda v, known=known: not (_is_int(v) and v in known),
        )
        _fail(label, dts, bad, "detection", f"{article} {key} that is not in GT")
