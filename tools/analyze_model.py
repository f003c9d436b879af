#!/usr/bin/env python
"""FLOPs, parameters, activations and structure of a config's model (Detectron2's tool).

    python tools/analyze_model.py --config-file \
        configs/COCO-Detection/faster_rcnn_nasnet_a_mobile_lowproposals.yaml \
        --tasks flop parameter [--size 600] [KEY VALUE ...]

FLOPs are fvcore's: one per multiply-add (see nasnet_det.detection.analyze).
"""

import argparse
import sys


def main() -> int:
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config-file", required=True)
    p.add_argument("--tasks", nargs="+", default=["flop", "parameter"])
    p.add_argument("--size", type=int, default=None, help="input side (INPUT.MIN_SIZE_TEST)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args()
    # --tasks is greedy: KEY VALUE overrides after it (KEYs are dotted) belong to opts.
    cut = next((i for i, t in enumerate(args.tasks) if "." in t), len(args.tasks))
    args.tasks, args.opts = args.tasks[:cut], args.tasks[cut:] + list(args.opts)
    from nasnet_det.detection import engine
    from nasnet_det.detection.analyze import analyze_model

    cfg = engine.load_config(args.config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    for task, text in analyze_model(cfg, tuple(args.tasks), args.size).items():
        print(f"== {task} ==\n{text}")
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import run_tool

    sys.exit(run_tool("analyze_model.py", main))
