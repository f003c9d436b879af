"""The standard COCO protocol over checked inputs, in one process or several.

Categories are independent in COCOeval's evaluate and accumulate, so large inputs are split into
groups of categories evaluated in forked processes; the per-category arrays, and so every number,
are bit-identical to a single process. For ``segm`` the ``bbox`` of each detection is dropped
before loading (Detectron2's ``COCOEvaluator`` does the same), so the small/medium/large split
uses the mask area.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from typing import Any

import numpy as np

from .backends import RUNNERS, check_backend, default_backend, prepare_segm_dts
from .inputs import EvalInputError, GtIndex, load_json_file, validate_dt, validate_gt
from .report import SUMMARY_ROWS, CocoEvalResult

__all__ = ["evaluate", "evaluate_checked", "evaluate_files", "load_inputs", "validate_inputs"]

# Inputs of a parallel run, set before the worker processes fork so that they inherit them
# instead of receiving pickled copies.
_FORK_STATE: tuple | None = None

# Below this many detections, forking and per-process setup cost more than the work itself.
_PARALLEL_MIN_DETECTIONS = 20_000


def _eval_part(j: int):
    gt, groups, cat_groups, iou_type, backend = _FORK_STATE
    ev = RUNNERS[backend](gt, groups[j], iou_type, cat_groups[j])
    return (
        np.asarray(ev.eval["precision"]),
        np.asarray(ev.eval["recall"]),
        np.asarray(ev.params.iouThrs),
        np.asarray(ev.params.recThrs),
    )


def _auto_workers(num_dts: int, num_cats: int) -> int:
    """One process per idle CPU (CPUs minus the 1-minute load average) for large inputs: on a
    busy machine extra processes only add fork and setup cost."""
    if num_dts < _PARALLEL_MIN_DETECTIONS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(int(cpus - busy + 0.5), 8, num_cats))


def _split_categories(dts: list, cat_ids: list, n: int) -> list[list]:
    """Categories into ``n`` groups of about equal detection counts (largest first, each to the
    lightest group)."""
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
    for n, (is_ap, iou, area, md) in enumerate(SUMMARY_ROWS):
        s = precision if is_ap else recall
        if iou != "0.50:0.95":
            s = s[np.where(float(iou) == iou_thrs)[0]]
        a, m = area_idx[area], maxdet_idx[md]
        s = s[:, :, :, a, m] if is_ap else s[:, :, a, m]
        stats[n] = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    return stats


def _run_parts(gt: dict, dts: list, cat_ids: list, iou_type: str, backend: str, workers: int):
    """Evaluate groups of categories; returns the groups and one result tuple per group."""
    global _FORK_STATE
    if workers > 1 and len(cat_ids) > 1 and "fork" in mp.get_all_start_methods():
        cat_groups = _split_categories(dts, cat_ids, min(workers, len(cat_ids)))
    else:
        cat_groups = [cat_ids]
    if len(cat_groups) == 1:
        _FORK_STATE = (gt, [dts], cat_groups, iou_type, backend)
        try:
            return cat_groups, [_eval_part(0)]
        finally:
            _FORK_STATE = None
    slot = {c: j for j, g in enumerate(cat_groups) for c in g}
    groups: list[list] = [[] for _ in cat_groups]
    for d in dts:  # keeps each category's detections in input order (tie-breaking)
        groups[slot[d["category_id"]]].append(d)
    _FORK_STATE = (gt, groups, cat_groups, iou_type, backend)
    try:
        with mp.get_context("fork").Pool(len(cat_groups)) as pool:
            return cat_groups, pool.map(_eval_part, range(len(cat_groups)))
    finally:
        _FORK_STATE = None


def _merge_parts(cat_ids: list, cat_groups: list, parts: list):
    """Per-group arrays into COCOeval's full [T, R, K, A, M] precision and [T, K, A, M] recall."""
    iou_thrs, rec_thrs = parts[0][2], parts[0][3]
    T, R, _, A, M = parts[0][0].shape
    precision = -np.ones((T, R, len(cat_ids), A, M))
    recall = -np.ones((T, len(cat_ids), A, M))
    index = {c: k for k, c in enumerate(cat_ids)}
    for g, (p, r, _, _) in zip(cat_groups, parts):
        ks = [index[c] for c in g]
        precision[:, :, ks] = p
        recall[:, ks] = r
    return precision, recall, iou_thrs, rec_thrs


def _check_workers(workers: int | None) -> None:
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise EvalInputError(f"workers must be a positive integer, got {workers!r}")


def _copy_inputs(gt: dict, dts: list) -> tuple[dict, list]:
    """Shallow copies of every entry: the backends annotate entries in place."""
    gt = dict(gt)
    for key in ("images", "annotations", "categories"):
        gt[key] = [dict(x) for x in gt[key]]
    return gt, [dict(d) for d in dts]


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
    caller owns them (the CLI does). Valid but suspicious input (no detections, an annotation id
    0) is a ``UserWarning`` and is listed in ``result.warnings``.
    """
    backend = backend or default_backend()
    check_backend(backend)
    _check_workers(workers)
    notes = []
    if validate:
        notes += validate_inputs(gt, dts, iou_type).warnings
    if not dts:
        notes.append("DT has no detections: every AP and AR is 0 (or undefined where GT is empty)")
    for msg in notes:
        warnings.warn(msg, stacklevel=2)
    if copy_inputs:
        gt, dts = _copy_inputs(gt, dts)
    if iou_type == "segm":
        dts = prepare_segm_dts(dts, gt)
    if workers is None:
        workers = _auto_workers(len(dts), len(gt["categories"]))
    cat_ids = sorted(c["id"] for c in gt["categories"])
    cat_groups, parts = _run_parts(gt, dts, cat_ids, iou_type, backend, workers)
    precision, recall, iou_thrs, rec_thrs = _merge_parts(cat_ids, cat_groups, parts)
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
        workers=len(cat_groups),
        warnings=notes,
    )


def validate_inputs(
    gt: Any, dts: Any, iou_type: str = "bbox", gt_label: str = "GT", dt_label: str = "DT"
) -> GtIndex:
    """Both checks in order (GT first); returns GT's index with its warnings."""
    gt_index = validate_gt(gt, iou_type, label=gt_label)
    validate_dt(dts, gt_index, iou_type, label=dt_label)
    return gt_index


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
    gt, dts, gt_index = load_inputs(gt_path, dt_path, iou_type, backend, workers)
    return evaluate_checked(gt, dts, gt_index, iou_type, backend, workers=workers)


def load_inputs(
    gt_path: str | os.PathLike,
    dt_path: str | os.PathLike,
    iou_type: str = "bbox",
    backend: str | None = None,
    workers: int | None = None,
) -> tuple[dict, list, GtIndex]:
    """Load and check both files (and the options); returns ``(gt, dts, gt_index)``."""
    check_backend(backend or default_backend())
    _check_workers(workers)
    gt = load_json_file(gt_path, "GT")
    dts = load_json_file(dt_path, "DT")
    gt_index = validate_inputs(
        gt, dts, iou_type, f"GT {os.fspath(gt_path)}", f"DT {os.fspath(dt_path)}"
    )
    return gt, dts, gt_index


def evaluate_checked(
    gt: dict,
    dts: list,
    gt_index: GtIndex,
    iou_type: str = "bbox",
    backend: str | None = None,
    *,
    workers: int | None = None,
) -> CocoEvalResult:
    """:func:`evaluate` on inputs :func:`load_inputs` returned (owned: annotated in place)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are kept in result.warnings
        result = evaluate(
            gt, dts, iou_type, backend, workers=workers, validate=False, copy_inputs=False
        )
    result.warnings = gt_index.warnings + result.warnings
    return result
