"""What an evaluation reports: pycocotools' twelve numbers, Detectron2's metric names, a
per-category table, ``metrics.json`` and precision-recall plots.

Detectron2's conventions, so that numbers match ``train_net.py``: metrics are on a 0-100 scale
(``AP``, ``AP50``, ..., ``AP-<category>``, plus ``AR1 AR10 AR100 ARs ARm ARl``); an undefined metric
(no GT in that category or area range) is NaN, written as ``null`` in metrics.json, which stays
strict JSON. Every file goes through :mod:`nasnet_det.io` (whole or not at all).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasnet_det.io import atomic_call, atomic_write_json, check_output_dir

__all__ = ["AP_KEYS", "AR_KEYS", "STAT_KEYS", "SUMMARY_ROWS", "CocoEvalResult", "plot_pr_curves"]

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
AR_KEYS = ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
STAT_KEYS = AP_KEYS + AR_KEYS

# The twelve lines of COCOeval.summarize(): (is_ap, iou label, area, maxDets).
SUMMARY_ROWS = (
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


def mean_valid(a: np.ndarray) -> float:
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
    warnings: list = field(default_factory=list)

    def category_ap(self, k: int, iou: float | None = None) -> float:
        """AP of category index ``k`` (area all, maxDets 100) on 0-1, -1 if undefined."""
        p = self.precision[:, :, k, 0, -1]
        if iou is not None:
            p = p[np.where(np.isclose(self.iou_thrs, iou))[0]]
        return mean_valid(p)

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
        """Detectron2's names and scale: AP..APl, AP-<category>, AR1..ARl; NaN when undefined."""
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
        for (is_ap, iou, area, md), v in zip(SUMMARY_ROWS, self.stats):
            title, typ = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
            lines.append(fmt.format(title, typ, iou, area, md, float(v)))
        return lines

    def per_category_rows(self) -> list[tuple]:
        """(id, name, AP, AP50, AP75) per category on a 0-100 scale (NaN if no GT)."""
        return [
            (c, n, *(_pct(self.category_ap(k, iou)) for iou in (None, 0.5, 0.75)))
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

    def write_metrics(self, path: str | os.PathLike) -> Path:
        """metrics.json, atomically: strict JSON, NaN written as null."""
        clean = {k: (None if math.isnan(v) else v) for k, v in self.metrics().items()}
        return atomic_write_json(path, clean, what="metrics file")


def _safe_name(name: str, limit: int = 80) -> str:
    # At most ``limit`` characters: a file name may have 255 bytes, and the atomic writer's
    # temporary name adds some (the category id before it keeps the names apart).
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:limit] or "category"


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
        curves[label] = (curve, _pct(mean_valid(p)))
    return curves


def _draw_pr(ax, result: CocoEvalResult, title: str, prec: np.ndarray) -> None:
    """One figure's content: the three PR curves of ``prec`` ([T, R, K'])."""
    ax.clear()
    for label, (curve, ap) in _pr_curves(prec, result.iou_thrs).items():
        if curve is not None:
            ax.plot(result.rec_thrs, curve, label=f"{label}  AP={ap:.1f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title(f"{result.iou_type} PR curve: {title}\n(area=all, maxDets=100)", fontsize=10)
    if ax.lines:
        # Below the axes, so that it never covers a curve (inside, every corner can hold one).
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=7.5)
    else:
        ax.text(0.5, 0.5, "no GT for this category", ha="center", va="center")


def plot_pr_curves(result: CocoEvalResult, out_dir: str | os.PathLike) -> list[str]:
    """Precision-recall curves (area all, maxDets 100) as PNG: ``pr_all.png`` (mean over
    categories) and one ``pr_<id>_<name>.png`` per category. Each file is written atomically
    (a failure leaves no partial or temporary file). Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = check_output_dir(out_dir, "plot folder")
    prec = result.precision[:, :, :, 0, -1]  # [T, R, K]
    jobs = [("all categories", "pr_all.png", prec)]
    for k, (c, n) in enumerate(zip(result.cat_ids, result.cat_names)):
        jobs.append((f"{n} (id {c})", f"pr_{c}_{_safe_name(n)}.png", prec[:, :, k : k + 1]))
    written = []
    fig, ax = plt.subplots(figsize=(6.0, 4.5), dpi=100)
    try:
        for title, fname, p in jobs:
            _draw_pr(ax, result, title, p)
            path = out_dir / fname
            atomic_call(
                path,
                lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"),
                what="plot",
            )
            written.append(str(path))
    finally:
        plt.close(fig)
    return written
