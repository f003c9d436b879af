"""Looking at the errors, not only AP: what ``tools/eval_coco.py --analyze DIR`` writes.

Three views of one checked GT / DT pair (the same inputs :func:`evaluator.evaluate` takes):

* a per-class table: GT and detection counts, AP, AP50, AP75, APs, APm, APl (0-100);
* a confusion matrix at IoU >= 0.5 over the detections scoring at least a threshold, rows the
  ground-truth class plus a background row (detections on nothing), columns the predicted class
  plus a background column (missed GT). Matching is one-to-one, greedy by score, in two passes:
  first every detection to the best unmatched GT of its own class (COCO's rule), then the still
  unmatched detections to the best unmatched GT of another class. So each GT lands in exactly one
  cell of its row and each detection in exactly one cell of its column: row sums are GT counts,
  column sums detection counts. Crowd GT is never missed, and a detection that falls on a crowd
  region of its class is left out, as COCO does;
* the COCO error breakdown of the COCO API's ``analyze()`` (Hoiem et al., *Diagnosing error in
  object detectors*): precision-recall at maxDets 100 after removing one more kind of error at
  each step, ``C75`` (PR at IoU .75), ``C50`` (IoU .50), ``Loc`` (IoU .10: localisation errors
  gone, duplicates still count), ``Sim`` (matches to GT of another class of the same
  supercategory neither count as false positive nor as true positive; only when the categories
  have more than one supercategory), ``Oth`` (the same for every other class), ``BG`` (all
  background false positives gone: precision 1 up to the recall reached) and ``FN`` (every
  remaining error gone: AP 1). The gap between two consecutive curves is what that error costs.

"Neither false positive nor true positive" is pycocotools' ignore flag: those GT are turned into
ignored GT of the analysed class (our :class:`_AnalysisCOCOeval` keeps the flag, which stock
``COCOeval._prepare`` overwrites with ``iscrowd``), with the normal IoU. Every number here is
computed with pycocotools, the reference backend.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasnet_det.io import atomic_call, atomic_write_json, atomic_write_text, check_output_dir

from .backends import _results_coco, prepare_segm_dts
from .evaluator import _copy_inputs
from .report import CocoEvalResult, _pct, _safe_name, mean_valid

__all__ = [
    "AREAS",
    "ConfusionMatrix",
    "ErrorBreakdown",
    "confusion_matrix",
    "error_breakdown",
    "per_class_rows",
    "per_class_table",
    "plot_confusion_matrix",
    "plot_error_breakdown",
    "snapshot_inputs",
    "write_analysis",
]

AREAS = ("all", "small", "medium", "large")
# The COCO API's analyze() colours, one per error type, except that C50 is light grey instead of
# a second white so that the two can be told apart.
_COLOURS = {
    "C75": (1.0, 1.0, 1.0),
    "C50": (0.85, 0.85, 0.85),
    "Loc": (0.31, 0.51, 0.74),
    "Sim": (0.75, 0.31, 0.30),
    "Oth": (0.36, 0.90, 0.38),
    "BG": (0.50, 0.39, 0.64),
    "FN": (1.0, 0.6, 0.0),
}
_DESCRIPTIONS = {
    "C75": "PR at IoU .75",
    "C50": "PR at IoU .50",
    "Loc": "PR at IoU .10 (localisation errors removed)",
    "Sim": "similar-class (same supercategory) confusions removed",
    "Oth": "all class confusions removed",
    "BG": "background false positives removed",
    "FN": "missed GT removed (AP 1)",
}


# ---------------------------------------------------------------------------------------------
# pycocotools plumbing


class _Quiet(contextlib.redirect_stdout):
    def __init__(self) -> None:
        super().__init__(io.StringIO())


def _cocoeval_class():
    from pycocotools.cocoeval import COCOeval

    class _AnalysisCOCOeval(COCOeval):
        """COCOeval that keeps an annotation's own ``ignore`` flag (stock ``_prepare`` sets
        ``ignore = iscrowd``), so a GT can be 'neither FP nor TP' with the normal IoU."""

        def _prepare(self) -> None:
            super()._prepare()
            for gts in self._gts.values():
                for g in gts:
                    if g.get("_analysis_ignore"):
                        g["ignore"] = 1

    return _AnalysisCOCOeval


def _coco(dataset: dict):
    from pycocotools.coco import COCO

    with _Quiet():
        c = COCO()
        c.dataset = dataset
        c.createIndex()
    return c


def _dt_coco(coco_gt, gt: dict, dts: list, iou_type: str):
    from pycocotools.coco import COCO

    dts = [dict(d) for d in dts]
    if iou_type == "segm":
        dts = prepare_segm_dts(dts, gt)
    with _Quiet():
        return coco_gt.loadRes(dts) if dts else _results_coco(COCO, gt, [])


def _run_eval(
    coco_gt, coco_dt, iou_type: str, iou_thrs: list, cat_ids: list
) -> tuple[np.ndarray, np.ndarray]:
    """Precision [T, R, K, A] at maxDets 100 for the four COCO area ranges, and recThrs."""
    ev = _cocoeval_class()(coco_gt, coco_dt, iou_type)
    ev.params.iouThrs = np.array(iou_thrs, dtype=float)
    ev.params.maxDets = [100]
    ev.params.catIds = list(cat_ids)
    with _Quiet():
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval["precision"])[..., 0], np.asarray(ev.params.recThrs)


def snapshot_inputs(gt: dict, dts: list) -> tuple[dict, list]:
    """Copies of every entry, taken before an evaluation that annotates its inputs in place
    (``evaluate_checked``), so that the analysis sees the inputs as given."""
    return _copy_inputs(gt, dts)


# ---------------------------------------------------------------------------------------------
# Error breakdown


@dataclass
class ErrorBreakdown:
    """``precision[e, r, k, a]``: the PR curve of error step ``labels[e]`` at recall
    ``rec_thrs[r]`` for category index ``k`` and area ``AREAS[a]``; -1 where a category has no GT
    in that area range (COCOeval's convention)."""

    iou_type: str
    labels: list
    precision: np.ndarray
    rec_thrs: np.ndarray
    cat_ids: list
    cat_names: list

    def ap(self, label: str, k: int | None = None, area: str = "all") -> float:
        """AP (0-100) of one step, for category index ``k`` or the mean over categories with
        GT; NaN if none has GT in ``area``."""
        p = self.precision[self.labels.index(label), :, :, AREAS.index(area)]
        if k is not None:
            p = p[:, k : k + 1]
        return _pct(mean_valid(p))

    def curve(self, label: str, k: int | None = None, area: str = "all") -> np.ndarray | None:
        """Mean PR curve over the categories (or category ``k``) with GT; None if there is none."""
        p = self.precision[self.labels.index(label), :, :, AREAS.index(area)]
        if k is not None:
            p = p[:, k : k + 1]
        valid = (p > -1).all(axis=0)
        return p[:, valid].mean(axis=1) if valid.any() else None

    def rows(self, area: str = "all") -> list[tuple]:
        """('all' or the category name, AP of each step) rows on 0-100."""
        out = [("all", *(self.ap(lab, None, area) for lab in self.labels))]
        for k, n in enumerate(self.cat_names):
            out.append((n, *(self.ap(lab, k, area) for lab in self.labels)))
        return out

    def table(self, area: str = "all") -> str:
        rows = self.rows(area)
        width = max(len("category"), *(len(r[0]) for r in rows))
        head = f"{'category':<{width}}" + "".join(f"  {lab:>6}" for lab in self.labels)
        lines = [head, "-" * len(head)]
        for name, *aps in rows:
            lines.append(f"{name:<{width}}" + "".join(f"  {_fmt(v, 6)}" for v in aps))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "iou_type": self.iou_type,
            "steps": {lab: _DESCRIPTIONS[lab] for lab in self.labels},
            "AP": {
                area: {
                    name: {lab: _none(v) for lab, v in zip(self.labels, aps)}
                    for name, *aps in self.rows(area)
                }
                for area in AREAS
            },
        }


def _fmt(v: float, width: int) -> str:
    return f"{'-':>{width}}" if math.isnan(v) else f"{v:{width}.1f}"


def _none(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 4)


def has_supercategories(gt: dict) -> bool:
    """True when the categories name a supercategory and there are at least two of them."""
    sups = {c.get("supercategory") for c in gt["categories"]}
    return None not in sups and len(sups) >= 2


def _relabelled(gt: dict, cat_id: int, others: set) -> dict:
    """GT where the annotations of the categories in ``others`` become ignored GT of ``cat_id``."""
    out = dict(gt)
    out["annotations"] = [
        {**a, "category_id": cat_id, "_analysis_ignore": 1} if a["category_id"] in others else a
        for a in gt["annotations"]
    ]
    return out


def error_breakdown(gt: dict, dts: list, iou_type: str = "bbox") -> ErrorBreakdown:
    """The COCO API's ``analyze()`` on checked inputs (see the module docstring)."""
    gt, dts = snapshot_inputs(gt, dts)
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    cat_ids = [c["id"] for c in cats]
    sim = has_supercategories(gt)
    labels = ["C75", "C50", "Loc"] + (["Sim"] if sim else []) + ["Oth", "BG", "FN"]
    coco_gt = _coco(gt)
    coco_dt = _dt_coco(coco_gt, gt, dts, iou_type)
    base, rec_thrs = _run_eval(coco_gt, coco_dt, iou_type, [0.75, 0.5, 0.1], cat_ids)
    T, R, K, A = base.shape
    prec = -np.ones((len(labels), R, K, A))
    prec[:3] = base
    sup = {c["id"]: c.get("supercategory") for c in cats}
    steps = (["Sim"] if sim else []) + ["Oth"]
    for k, c in enumerate(cat_ids):
        for step in steps:
            others = {o for o in cat_ids if o != c and (step == "Oth" or sup[o] == sup[c])}
            g = _relabelled(gt, c, others)
            p, _ = _run_eval(_coco(g), coco_dt, iou_type, [0.1], [c])
            prec[labels.index(step), :, k] = p[0, :, 0]
    # BG: precision 1 wherever the Oth curve reached the recall; FN: 1 everywhere. Categories
    # without GT in an area range stay undefined (-1) in every step.
    oth = prec[labels.index("Oth")]
    undefined = base[0] == -1  # [R, K, A]
    prec[labels.index("BG")] = np.where(undefined, -1, (oth > 0).astype(float))
    prec[labels.index("FN")] = np.where(undefined, -1, 1.0)
    prec[:, undefined] = -1
    return ErrorBreakdown(iou_type, labels, prec, rec_thrs, cat_ids, [c["name"] for c in cats])


# ---------------------------------------------------------------------------------------------
# Confusion matrix


@dataclass
class ConfusionMatrix:
    """``matrix[i, j]``: how many GT of class ``i`` were matched by a detection of class ``j``
    (rows and columns ordered as ``cat_ids``, then background: the last row counts detections
    on nothing, the last column missed GT)."""

    matrix: np.ndarray
    cat_ids: list
    cat_names: list
    iou_thr: float
    score_thr: float
    # image id -> (wrong class, detections on background, missed GT) in that image
    errors_per_image: dict = field(default_factory=dict)

    def worst_images(self, n: int) -> list:
        """Ids of the (at most) ``n`` images with the most errors, most first (ties: by id);
        images without error are left out."""
        ranked = sorted(
            (i for i, e in self.errors_per_image.items() if sum(e)),
            key=lambda i: (-sum(self.errors_per_image[i]), i),
        )
        return ranked[:n]

    def labels(self) -> list[str]:
        return [*self.cat_names, "background"]

    def to_csv(self) -> str:
        names = [n.replace(",", " ") for n in self.labels()]
        lines = ["gt \\ predicted," + ",".join(names)]
        for n, row in zip(names, self.matrix):
            lines.append(n + "," + ",".join(str(int(v)) for v in row))
        return "\n".join(lines) + "\n"


def _boxes_or_masks(coco, anns: list, iou_type: str) -> list:
    if iou_type == "bbox":
        return [a["bbox"] for a in anns]
    return [coco.annToRLE(a) for a in anns]


def _iou_matrix(coco_gt, d_geom, n_dets: int, anns: list, iou_type: str, crowd: bool):
    """IoU of each detection (``d_geom``: their boxes or masks) with each of ``anns``, shape
    (detections, annotations); COCO's crowd IoU (over the detection's area) with ``crowd``."""
    from pycocotools import mask as mask_util

    if not n_dets or not anns:
        return np.zeros((n_dets, len(anns)))
    ious = mask_util.iou(d_geom, _boxes_or_masks(coco_gt, anns, iou_type), [int(crowd)] * len(anns))
    return np.asarray(ious).reshape(n_dets, len(anns))


def _by_image(anns: list, dets: list) -> dict:
    """``{image id: (its annotations, its detections)}``."""
    by_image: dict = {}
    for a in anns:
        by_image.setdefault(a["image_id"], ([], []))[0].append(a)
    for d in dets:
        by_image.setdefault(d["image_id"], ([], []))[1].append(d)
    return by_image


def _match_greedy(
    ious: np.ndarray, g_cls: np.ndarray, d_cls: np.ndarray, iou_thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of score-sorted detections to ground truth: first to an unmatched
    box of the detection's own class, then of another class, each time the highest IoU >=
    ``iou_thr``. Returns (ground-truth index per detection or -1, ground truth taken)."""
    gt_taken = np.zeros(len(g_cls), dtype=bool)
    det_gt = np.full(len(d_cls), -1)
    for same_class in (True, False):
        for i in range(len(d_cls)):
            if det_gt[i] >= 0:
                continue
            ok = (~gt_taken) & (ious[i] >= iou_thr) & ((g_cls == d_cls[i]) == same_class)
            if ok.any():
                j = int(np.argmax(np.where(ok, ious[i], -1.0)))
                det_gt[i], gt_taken[j] = j, True
    return det_gt, gt_taken


def confusion_matrix(
    gt: dict, dts: list, iou_type: str = "bbox", iou_thr: float = 0.5, score_thr: float = 0.3
) -> ConfusionMatrix:
    """The confusion matrix of the module docstring, over detections scoring >= ``score_thr``."""

    cats = sorted(gt["categories"], key=lambda c: c["id"])
    cat_ids = [c["id"] for c in cats]
    index = {c: k for k, c in enumerate(cat_ids)}
    K = len(cat_ids)
    cm = np.zeros((K + 1, K + 1), dtype=np.int64)
    if iou_type == "segm":
        dts = prepare_segm_dts([dict(d) for d in dts], gt)
    coco_gt = _coco(gt) if iou_type == "segm" else None
    by_image = _by_image(gt["annotations"], [d for d in dts if d["score"] >= score_thr])
    per_image = {}
    for image_id, (anns, dets) in by_image.items():
        g = [a for a in anns if not a.get("iscrowd", 0)]
        crowd = [a for a in anns if a.get("iscrowd", 0)]
        # Stable sort: equal scores keep the input order, as in COCOeval.
        dets = sorted(dets, key=lambda d: -d["score"])
        g_cls = np.array([index[a["category_id"]] for a in g], dtype=np.int64)
        d_cls = np.array([index[d["category_id"]] for d in dets], dtype=np.int64)
        d_geom = _boxes_or_masks(coco_gt, dets, iou_type) if dets else None
        ious = _iou_matrix(coco_gt, d_geom, len(dets), g, iou_type, crowd=False)
        det_gt, gt_taken = _match_greedy(ious, g_cls, d_cls, iou_thr)
        on_crowd = np.zeros(len(dets), dtype=bool)
        if crowd and dets:
            c_cls = np.array([index[a["category_id"]] for a in crowd])
            cious = _iou_matrix(coco_gt, d_geom, len(dets), crowd, iou_type, crowd=True)
            on_crowd = ((cious >= iou_thr) & (c_cls[None, :] == d_cls[:, None])).any(axis=1)
        wrong = background = 0
        for i in range(len(dets)):
            if det_gt[i] >= 0:
                cm[g_cls[det_gt[i]], d_cls[i]] += 1
                wrong += int(g_cls[det_gt[i]] != d_cls[i])
            elif not on_crowd[i]:
                cm[K, d_cls[i]] += 1
                background += 1
        for j in np.flatnonzero(~gt_taken):
            cm[g_cls[j], K] += 1
        per_image[image_id] = (wrong, background, int((~gt_taken).sum()))
    names = [c["name"] for c in cats]
    return ConfusionMatrix(cm, cat_ids, names, iou_thr, score_thr, per_image)


# ---------------------------------------------------------------------------------------------
# Per-class table


def per_class_rows(result: CocoEvalResult, gt: dict, dts: list) -> list[tuple]:
    """(id, name, #GT (not crowd), #detections, AP, AP50, AP75, APs, APm, APl) per category,
    AP on 0-100 (NaN when undefined), area ranges at maxDets 100."""
    n_gt = dict.fromkeys(result.cat_ids, 0)
    n_dt = dict.fromkeys(result.cat_ids, 0)
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            n_gt[a["category_id"]] += 1
    for d in dts:
        n_dt[d["category_id"]] += 1
    rows = []
    for k, (c, n) in enumerate(zip(result.cat_ids, result.cat_names)):
        aps = [_pct(result.category_ap(k, iou)) for iou in (None, 0.5, 0.75)]
        aps += [_pct(mean_valid(result.precision[:, :, k, a, -1])) for a in (1, 2, 3)]
        rows.append((c, n, n_gt[c], n_dt[c], *aps))
    return rows


def per_class_table(rows: list[tuple]) -> str:
    width = max(len("category"), *(len(r[1]) for r in rows)) if rows else len("category")
    cols = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    head = f"{'id':>6}  {'category':<{width}}  {'#GT':>6}  {'#DT':>7}" + "".join(
        f"  {c:>6}" for c in cols
    )
    lines = [head, "-" * len(head)]
    for c, n, ng, nd, *aps in rows:
        lines.append(
            f"{c:>6}  {n:<{width}}  {ng:>6}  {nd:>7}" + "".join(f"  {_fmt(v, 6)}" for v in aps)
        )
    return "\n".join(lines)


def _per_class_csv(rows: list[tuple]) -> str:
    lines = ["id,category,num_gt,num_dt,AP,AP50,AP75,APs,APm,APl"]
    for c, n, ng, nd, *aps in rows:
        vals = ",".join("" if math.isnan(v) else f"{v:.4f}" for v in aps)
        lines.append(f"{c},{n.replace(',', ' ')},{ng},{nd},{vals}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_call(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"), "plot")


def plot_confusion_matrix(cm: ConfusionMatrix, path: str | os.PathLike) -> Path:
    """The matrix as a picture: colour = share of the row (what became of each GT class, or of
    the background detections), the count written in each cell while there are <= 30 classes."""
    plt = _pyplot()
    n = len(cm.labels())
    rows = cm.matrix.sum(axis=1, keepdims=True)
    share = np.divide(cm.matrix, rows, out=np.zeros(cm.matrix.shape), where=rows > 0)
    side = min(max(4.0, 0.45 * n + 2.5), 30.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    try:
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), cm.labels(), rotation=90 if n > 8 else 45, ha="right")
        ax.set_yticks(range(n), cm.labels())
        ax.set_xlabel("predicted class (background = missed GT)")
        ax.set_ylabel("ground-truth class (background = detection on nothing)")
        ax.set_title(
            f"confusion matrix, IoU >= {cm.iou_thr:g}, score >= {cm.score_thr:g}\n"
            "(colour: share of the row, number: count)",
            fontsize=10,
        )
        ax.axhline(n - 1.5, color="grey", lw=0.8)
        ax.axvline(n - 1.5, color="grey", lw=0.8)
        if n <= 31:
            for i in range(n):
                for j in range(n):
                    if cm.matrix[i, j]:
                        ax.text(
                            j,
                            i,
                            str(int(cm.matrix[i, j])),
                            ha="center",
                            va="center",
                            fontsize=8,
                            color="white" if share[i, j] > 0.6 else "black",
                        )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
        path = Path(path)
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def _draw_breakdown(ax, eb: ErrorBreakdown, k: int | None, area: str, title: str) -> None:
    """Stacked areas as in the COCO API's analyze() figures; the legend goes outside the axes."""
    prev = np.zeros(len(eb.rec_thrs))
    drawn = False
    for lab in eb.labels:
        curve = eb.curve(lab, k, area)
        if curve is None:
            continue
        drawn = True
        ax.plot(eb.rec_thrs, curve, color="black", lw=0.5)
        ax.fill_between(
            eb.rec_thrs,
            prev,
            curve,
            facecolor=_COLOURS[lab],
            edgecolor="black",
            linewidth=0.3,
            label=f"[{eb.ap(lab, k, area) / 100:.3f}] {lab}",
        )
        prev = curve
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    if drawn:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    else:
        ax.text(0.5, 0.5, f"no GT in area {area}", ha="center", va="center")


def plot_error_breakdown(eb: ErrorBreakdown, out_dir: str | os.PathLike) -> list[str]:
    """``errors_all.png`` (mean over categories, one panel per area range) and one
    ``errors_<id>_<name>.png`` per category with GT (area all). Returns the written paths."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    written = []
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), dpi=100)
    try:
        for ax, area in zip(axes.flat, AREAS):
            _draw_breakdown(ax, eb, None, area, f"{eb.iou_type}, all categories, area {area}")
        fig.tight_layout()
        _save(fig, out_dir / "errors_all.png")
        written.append(str(out_dir / "errors_all.png"))
    finally:
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=100)
    try:
        for k, (c, n) in enumerate(zip(eb.cat_ids, eb.cat_names)):
            if eb.curve("FN", k) is None:
                continue
            ax.clear()
            _draw_breakdown(ax, eb, k, "all", f"{eb.iou_type}, {n} (id {c}), area all")
            path = out_dir / f"errors_{c}_{_safe_name(n)}.png"
            _save(fig, path)
            written.append(str(path))
    finally:
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------------------------
# Everything, for the CLI


@dataclass
class Analysis:
    """What :func:`write_analysis` computed and wrote."""

    per_class: list
    confusion: ConfusionMatrix
    breakdown: ErrorBreakdown
    files: list

    def report_lines(self) -> list[str]:
        eb = self.breakdown
        lines = [
            "Per-class AP (0-100, maxDets=100; APs/APm/APl by area):",
            per_class_table(self.per_class),
            "",
            f"COCO error breakdown ({eb.iou_type}, area=all, maxDets=100), AP (0-100) after "
            "removing each kind of error in turn:",
            "  " + "; ".join(f"{lab}: {_DESCRIPTIONS[lab]}" for lab in eb.labels),
            eb.table("all"),
            "",
            f"Confusion matrix (IoU >= {self.confusion.iou_thr:g}, score >= "
            f"{self.confusion.score_thr:g}; rows GT, columns predicted, last = background):",
        ]
        m = self.confusion.matrix
        K = len(self.confusion.cat_ids)
        correct = int(np.trace(m[:K, :K]))
        lines.append(
            f"  {correct} correct, {int(m[:K, :K].sum()) - correct} with the wrong class, "
            f"{int(m[K, :K].sum())} detections on background, {int(m[:K, K].sum())} GT missed"
        )
        return lines


def write_analysis(
    result: CocoEvalResult,
    gt: dict,
    dts: list,
    out_dir: str | os.PathLike,
    *,
    score_thr: float = 0.3,
    iou_thr: float = 0.5,
) -> Analysis:
    """Compute the three views on checked inputs and write them into ``out_dir``:
    ``per_class_ap.csv``, ``confusion_matrix.csv``/``.png``, ``error_breakdown.json``,
    ``errors_all.png`` and ``errors_<id>_<name>.png``. Every file is written atomically."""
    out = check_output_dir(out_dir, "--analyze folder")
    rows = per_class_rows(result, gt, dts)
    cm = confusion_matrix(gt, dts, result.iou_type, iou_thr=iou_thr, score_thr=score_thr)
    eb = error_breakdown(gt, dts, result.iou_type)
    files = [
        str(atomic_write_text(out / "per_class_ap.csv", _per_class_csv(rows), "table")),
        str(atomic_write_text(out / "confusion_matrix.csv", cm.to_csv(), "table")),
        str(plot_confusion_matrix(cm, out / "confusion_matrix.png")),
        str(atomic_write_json(out / "error_breakdown.json", eb.to_json(), "error breakdown")),
    ]
    files += plot_error_breakdown(eb, out)
    return Analysis(rows, cm, eb, files)
