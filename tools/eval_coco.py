#!/usr/bin/env python
"""COCO evaluation of any detector's output: the twelve standard numbers, a per-category AP table,
Detectron2-named metrics.json, precision-recall plots.

    python tools/eval_coco.py --gt instances_val2017.json --dt coco_instances_results.json \
        [--iou-type bbox|segm] [--out metrics.json] [--per-category] [--plot DIR] \
        [--backend pycocotools|faster-coco-eval] [--workers N] [--analyze DIR]

--analyze DIR adds a per-class AP table (printed, per_class_ap.csv), a confusion matrix at
IoU >= 0.5 with a background row and column (confusion_matrix.png/.csv) and the COCO error
breakdown (C75, C50, localisation, similar class, other class, background, missed) as plots
(errors_all.png, errors_<id>_<name>.png) and error_breakdown.json. With --image-root (the GT's
image folder) the images with the most errors are drawn too, detections beside ground truth
(DIR/images/).

DT is a COCO results list; Detectron2's ``coco_instances_results.json`` (written by
``tools/train_net.py --eval-only`` under OUTPUT_DIR/inference/) has that layout. Bad input or an
output that cannot be written gives one line on stderr and exit code 2, before any evaluation
work; outputs are written whole or not at all. The logic lives in nasnet_det/evaluation/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from nasnet_det.cli import quiet_warnings, run_tool

quiet_warnings()

import nasnet_det.evaluation as ev  # noqa: E402
from nasnet_det.io import check_output_dir, check_output_file  # noqa: E402

PROG = "eval_coco.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="COCO mAP of a detections file against a COCO annotation file."
    )
    p.add_argument(
        "--gt", required=True, help="COCO annotation JSON (images, annotations, categories)"
    )
    p.add_argument(
        "--dt",
        required=True,
        help="COCO results JSON list, e.g. Detectron2's coco_instances_results.json",
    )
    p.add_argument("--iou-type", choices=ev.IOU_TYPES, default="bbox")
    p.add_argument("--out", help="write metrics (Detectron2 key names, 0-100 scale) to this JSON")
    p.add_argument("--per-category", action="store_true", help="print the per-category AP table")
    p.add_argument("--plot", metavar="DIR", help="write precision-recall curves (PNG) to DIR")
    p.add_argument(
        "--backend",
        choices=ev.BACKENDS,
        default=None,
        help="evaluation backend (default: faster-coco-eval when installed, as it "
        "measured faster with identical numbers; see docs/BENCHMARKS.md)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes evaluating groups of categories (default: one per CPU for "
        "large inputs; the numbers do not depend on it)",
    )
    p.add_argument(
        "--analyze",
        metavar="DIR",
        help="write the per-class table, a confusion matrix and the COCO error breakdown "
        "(plots, CSV, JSON) to DIR",
    )
    p.add_argument(
        "--confusion-score",
        type=float,
        default=0.3,
        metavar="S",
        help="the confusion matrix counts detections scoring at least S (default 0.3)",
    )
    p.add_argument(
        "--image-root",
        metavar="DIR",
        help="with --analyze: the GT's images; the --num-pictures images with the most errors "
        "are drawn, detections beside ground truth, into DIR/images/ of --analyze",
    )
    p.add_argument(
        "--num-pictures",
        type=int,
        default=20,
        metavar="N",
        help="with --image-root: how many images to draw (default 20)",
    )
    return p


def print_report(result: ev.CocoEvalResult, per_category: bool) -> None:
    print(
        f"Evaluated {result.num_detections} detections on {result.num_images} images, "
        f"iou type {result.iou_type}, backend {result.backend}:"
    )
    print("\n".join(result.summary_lines()))
    if per_category:
        print()
        print(f"Per-category {result.iou_type} AP (0-100, area=all, maxDets=100):")
        print(result.per_category_table())
    summary = {
        k: (None if math.isnan(v) else round(v, 3))
        for k, v in result.metrics().items()
        if not k.startswith("AP-")
    }
    print()
    print("Detectron2-style summary: " + json.dumps(summary))


def draw_worst_images(analysis, gt: dict, dts: list, args: argparse.Namespace) -> None:
    from nasnet_det.detection.visualize import draw_coco_images

    cm = analysis.confusion
    ids = cm.worst_images(args.num_pictures)
    notes = {
        i: "errors: {} class, {} background, {} missed".format(*cm.errors_per_image[i]) for i in ids
    }
    folder = os.path.join(args.analyze, "images")
    paths = draw_coco_images(gt, dts, ids, args.image_root, folder, score_thr=cm.score_thr,
                             notes=notes)  # fmt: skip
    print(f"wrote {len(paths)} pictures of the images with the most errors to {folder}")


def main() -> int:
    args = build_parser().parse_args()
    t0 = time.perf_counter()
    gt, dts, gt_index = ev.load_inputs(args.gt, args.dt, args.iou_type, args.backend, args.workers)
    if args.out:
        check_output_file(args.out, "--out")
    if args.plot:
        check_output_dir(args.plot, "--plot folder")
    if args.analyze:
        if not 0.0 <= args.confusion_score <= 1.0:
            raise ValueError(f"--confusion-score must be in [0, 1], got {args.confusion_score}")
        check_output_dir(args.analyze, "--analyze folder")
        if args.image_root is not None and not os.path.isdir(args.image_root):
            raise FileNotFoundError(f"--image-root {args.image_root!r} is not a folder")
        if args.num_pictures < 1:
            raise ValueError(f"--num-pictures must be >= 1, got {args.num_pictures}")
        # The evaluation annotates gt and dts in place; the analysis needs them as given.
        from nasnet_det.evaluation.analyze import snapshot_inputs, write_analysis

        gt0, dts0 = snapshot_inputs(gt, dts)
    result = ev.evaluate_checked(
        gt, dts, gt_index, args.iou_type, args.backend, workers=args.workers
    )
    for note in result.warnings:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    print_report(result, args.per_category)
    if args.out:
        result.write_metrics(args.out)
        print(f"wrote {args.out}")
    if args.plot:
        paths = ev.plot_pr_curves(result, args.plot)
        print(f"wrote {len(paths)} precision-recall plots to {args.plot}")
    if args.analyze:
        analysis = write_analysis(result, gt0, dts0, args.analyze, score_thr=args.confusion_score)
        print()
        print("\n".join(analysis.report_lines()))
        print(f"wrote {len(analysis.files)} analysis files to {args.analyze}")
        if args.image_root:
            draw_worst_images(analysis, gt0, dts0, args)
    print(f"done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(PROG, main))
