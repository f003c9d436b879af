#!/usr/bin/env python
"""COCO evaluation of any detector's output: the twelve standard numbers, a per-category AP table,
Detectron2-named metrics.json, precision-recall plots.

    python tools/eval_coco.py --gt instances_val2017.json --dt coco_instances_results.json \
        [--iou-type bbox|segm] [--out metrics.json] [--per-category] [--plot DIR] \
        [--backend pycocotools|faster-coco-eval]

DT is a COCO results list; Detectron2's ``coco_instances_results.json`` (written by
``tools/train_net.py --eval-only`` under OUTPUT_DIR/inference/) has that layout. Bad input gives
one line on stderr and exit code 2, before any evaluation work and without writing --out.
All logic lives in nasnet_det/evaluation/coco_eval.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time


def _import_coco_eval():
    """nasnet_det/__init__.py imports torch for the networks (seconds of start-up); evaluation
    needs none of it. Unless nasnet_det is already loaded, register the installed package without
    running its __init__ and import only nasnet_det.evaluation (numpy; the backends load later)."""
    if "nasnet_det" not in sys.modules:
        spec = importlib.util.find_spec("nasnet_det")
        if spec is not None and spec.submodule_search_locations:
            sys.modules["nasnet_det"] = importlib.util.module_from_spec(spec)
    from nasnet_det.evaluation import coco_eval

    return coco_eval


ce = _import_coco_eval()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eval_coco.py",
        description="COCO mAP of a detections file against a COCO annotation file.",
    )
    p.add_argument(
        "--gt", required=True, help="COCO annotation JSON (images, annotations, categories)"
    )
    p.add_argument(
        "--dt",
        required=True,
        help="COCO results JSON list, e.g. Detectron2's coco_instances_results.json",
    )
    p.add_argument("--iou-type", choices=ce.IOU_TYPES, default="bbox")
    p.add_argument("--out", help="write metrics (Detectron2 key names, 0-100 scale) to this JSON")
    p.add_argument("--per-category", action="store_true", help="print the per-category AP table")
    p.add_argument("--plot", metavar="DIR", help="write precision-recall curves (PNG) to DIR")
    p.add_argument(
        "--backend",
        choices=ce.BACKENDS,
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path and os.path.exists(path) and os.path.isdir(path) != (flag == "--plot"):
            kind = "a directory" if flag == "--out" else "a file"
            print(f"eval_coco.py: error: {flag} {path} is {kind}", file=sys.stderr)
            return 2
    try:
        result = ce.evaluate_files(
            args.gt,
            args.dt,
            args.iou_type,
            args.backend or ce.default_backend(),
            workers=args.workers,
        )
    except ce.EvalInputError as e:
        print(f"eval_coco.py: error: {e}", file=sys.stderr)
        return 2
    for note in result.warnings:
        print(f"eval_coco.py: warning: {note}", file=sys.stderr)

    print(
        f"Evaluated {result.num_detections} detections on {result.num_images} images, "
        f"iou type {result.iou_type}, backend {result.backend}:"
    )
    print("\n".join(result.summary_lines()))
    metrics = result.metrics()
    if args.per_category:
        print()
        print(f"Per-category {result.iou_type} AP (0-100, area=all, maxDets=100):")
        print(result.per_category_table())
    print()
    print(
        "Detectron2-style summary: "
        + json.dumps(
            {
                k: (None if math.isnan(v) else round(v, 3))
                for k, v in metrics.items()
                if not k.startswith("AP-")
            }
        )
    )
    if args.out:
        result.write_metrics(args.out)
        print(f"wrote {args.out}")
    if args.plot:
        paths = ce.plot_pr_curves(result, args.plot)
        print(f"wrote {len(paths)} precision-recall plots to {args.plot}")
    print(f"done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
