#!/usr/bin/env python
"""Browse a dataset a config registers, with its boxes: as stored or after the training loader.

    python tools/visualize_data.py --config-file configs/Demo/faster_rcnn_nasnet_a_digits_cpu.yaml \
        --source annotation --output-dir out/vis_data [--num-images 50] [--scale auto]
    python tools/visualize_data.py --config-file CFG --source dataloader --output-dir DIR

--source annotation draws the registered records of DATASETS.TRAIN (or of each --dataset NAME) as
stored; dataloader draws what training sees, after resizing and flipping. Datasets named in
DATASETS.COCO_JSON / DATASETS.VOC are registered as tools/train_net.py registers them, the
built-in digits are always there. Pictures are <index>_<image name>.png, small images enlarged
to 512 px by default (--scale auto). Logic: nasnet_det/detection/visualize.py.
"""

from __future__ import annotations

import argparse
import sys

from nasnet_det.cli import quiet_warnings, run_tool

quiet_warnings()

PROG = "visualize_data.py"


def main() -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--source", required=True, choices=["annotation", "dataloader"])
    p.add_argument("--output-dir", required=True, metavar="DIR")
    p.add_argument("--dataset", action="append", metavar="NAME",
                   help="a dataset to show, repeatable (default: DATASETS.TRAIN)")  # fmt: skip
    p.add_argument("--num-images", type=int, default=50, help="pictures to draw (default 50)")
    p.add_argument("--scale", default="auto",
                   help="'auto' (default: enlarge to a 512 px long side) or a factor")  # fmt: skip
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args()
    from nasnet_det.detection.visualize import parse_scale

    scale = parse_scale(args.scale)
    from nasnet_det.detection.datasets import register_from_config
    from nasnet_det.detection.engine import load_config
    from nasnet_det.detection.visualize import visualize_dataset

    cfg = load_config(args.config_file, args.opts)
    register_from_config(cfg)
    cfg.freeze()
    paths = visualize_dataset(
        cfg,
        args.source,
        args.output_dir,
        datasets=args.dataset,
        num_images=args.num_images,
        scale=scale,
    )
    names = ", ".join(args.dataset or cfg.DATASETS.TRAIN)
    print(f"wrote {len(paths)} pictures of {names} ({args.source}) to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(PROG, main))
