#!/usr/bin/env python
"""Training step time of the NASNet detector with mixed precision (SOLVER.AMP.ENABLED) against
fp32, on the CPU (bf16 autocast) or CUDA (fp16), through tools/train_net.py's trainer.

    OMP_NUM_THREADS=1 python bench/amp_speed.py [--device cpu] [--iters 6] [KEY VALUE ...]

Builds one trainer per mode on the instant-test config (the demo's width unless overridden),
runs one warm-up step, then alternates timed steps of the two modes so machine load hits both
alike. Prints the medians and ranges of the step time and the ratio AMP / fp32 per pair.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from nasnet_det.detection.engine import Trainer, load_config

CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
# The CPU demo's network (1 cell per stack, 16 filters) at the instant test's 128 px.
SMALL = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "16",
         "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "2"]  # fmt: skip


def trainer(device: str, amp: bool, opts: list[str], out: str) -> Trainer:
    cfg = load_config(CONFIG, [*SMALL, "MODEL.DEVICE", device, "SOLVER.AMP.ENABLED", str(amp),
                               "SOLVER.MAX_ITER", "1000", "OUTPUT_DIR", out, *opts])  # fmt: skip
    cfg.freeze()
    t = Trainer(cfg)
    t.resume_or_load(resume=False)
    t.iter = t.start_iter = 0
    return t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("opts", nargs=argparse.REMAINDER)
    a = p.parse_args()
    torch.set_num_threads(1)
    from detectron2.utils.events import EventStorage

    with tempfile.TemporaryDirectory() as d, EventStorage(0) as storage:
        trainers = {"fp32": trainer(a.device, False, a.opts, d + "/a"),
                    "amp": trainer(a.device, True, a.opts, d + "/b")}  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in trainers}
        for step in range(a.iters + 1):
            for name, t in trainers.items():
                storage.iter = t.iter = step
                t._trainer.iter = step
                if a.device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                t.run_step()
                if a.device == "cuda":
                    torch.cuda.synchronize()
                if step:  # the first step warms up
                    times[name].append(time.perf_counter() - start)
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:5s} step median {med:.3f} s  range {min(ts):.3f}-{max(ts):.3f}")
    ratios = [x / y for x, y in zip(times["amp"], times["fp32"])]
    kind = "bf16" if a.device == "cpu" else "fp16"
    print(f"amp ({kind}) / fp32: median {statistics.median(ratios):.2f}  "
          f"range {min(ratios):.2f}-{max(ratios):.2f}  "
          f"({a.device}, {a.iters} steps each)")  # fmt: skip


if __name__ == "__main__":
    main()
