#!/usr/bin/env python
"""Detections from a COCO results file beside each image's ground truth (Detectron2's tool).

    python tools/visualize_json_results.py --input output/inference/coco_instances_results.json \
        --output out/vis_results --dataset nasnet_digits_val_mini [--conf-threshold 0.5] \
        [--config-file CFG] [--num-images N] [--scale auto]

Each image of the dataset becomes <index>_<image name>.png: detections scoring >= the threshold
on the left, ground truth on the right; an image where no detection passes gets one printed
line. The category ids are the dataset's (what tools/train_net.py --eval-only and
tools/predict.py --dataset write). --config-file registers its DATASETS.COCO_JSON / VOC entries.
Logic: nasnet_det/detection/visualize.py.
"""

from __future__ import annotations

import argparse
import sys

from nasnet_det.cli import quiet_warnings, run_tool

quiet_warnings()

PROG = "visualize_json_results.py"


def main() -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="COCO results JSON")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--dataset", required=True, metavar="NAME", help="a registered dataset")
    p.add_argument("--conf-threshold", type=float, default=0.5, help="default 0.5")
    p.add_argument("--config-file", metavar="FILE", help="registers its config datasets")
    p.add_argument("--num-images", type=int, default=None, help="default: all")
    p.add_argument("--scale", default="auto",
                   help="'auto' (default: enlarge to a 512 px long side) or a factor")  # fmt: skip
    args = p.parse_args()
    if not 0.0 <= args.conf_threshold <= 1.0:
        raise ValueError(f"--conf-threshold must be in [0, 1], got {args.conf_threshold}")
    if args.num_images is not None and args.num_images < 1:
        raise ValueError(f"--num-images must be >= 1, got {args.num_images}")
    from nasnet_det.detection.visualize import parse_scale

    scale = parse_scale(args.scale)
    from nasnet_det.detection.datasets import register_from_config
    from nasnet_det.detection.visualize import visualize_json_results
    from nasnet_det.evaluation import load_json_file

    if args.config_file:
        from nasnet_det.detection.engine import load_config

        register_from_config(load_config(args.config_file))
    results = load_json_file(args.input, "--input")
    paths, notes = visualize_json_results(
        results,
        args.dataset,
        args.output,
        conf_threshold=args.conf_threshold,
        scale=scale,
        num_images=args.num_images,
    )
    for note in notes:
        print(note)
    print(f"wrote {len(paths)} pictures (detections | ground truth) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(PROG, main))
