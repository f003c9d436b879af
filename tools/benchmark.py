#!/usr/bin/env python
"""Training, inference or data-loading speed of a config (Detectron2's tools/benchmark.py).

    OMP_NUM_THREADS=1 python tools/benchmark.py \
        --config-file configs/Demo/faster_rcnn_nasnet_a_digits_cpu.yaml --task train \
        [--iterations 20] [--warmup 5] [KEY VALUE ...]

--task train times forward + backward + optimizer step on batches read before the clock starts,
eval times inference on cached test images (MODEL.WEIGHTS when given), data times the training
loader. A fixed number of warm-up iterations is run untimed, then a fixed number is timed, one by
one; it prints the median and mean seconds per iteration, iterations/s and images/s. Config
datasets are registered as in tools/train_net.py. Logic: nasnet_det/detection/benchmark.py.
"""

from __future__ import annotations

import argparse
import sys

from nasnet_det.cli import quiet_warnings, run_tool

quiet_warnings()

PROG = "benchmark.py"


def main() -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--task", required=True, choices=["train", "eval", "data"])
    p.add_argument("--iterations", type=int, default=20, help="timed iterations (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    p.add_argument("--json", metavar="FILE", help="also write every iteration's time here")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args()
    from nasnet_det.detection.benchmark import benchmark
    from nasnet_det.detection.datasets import register_from_config
    from nasnet_det.detection.engine import load_config
    from nasnet_det.io import atomic_write_json, check_output_file

    cfg = load_config(args.config_file, args.opts)
    register_from_config(cfg)
    cfg.freeze()
    if args.json:
        check_output_file(args.json, "--json")
    result = benchmark(cfg, args.task, iterations=args.iterations, warmup=args.warmup)
    print(result.summary())
    if args.json:
        atomic_write_json(args.json, result.to_json(), "benchmark JSON")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(PROG, main))
