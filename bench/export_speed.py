#!/usr/bin/env python
"""ONNX Runtime (CPU) latency against PyTorch eager for an exported NASNet classifier.

    OMP_NUM_THREADS=1 python bench/export_speed.py [--preset nasnet_a_mobile] [--size 224]
        [--repeats 7] [--inner 3]

One thread for both. Each repeat times ``inner`` forwards of one image per backend, the two
backends alternating so machine load hits both alike; prints medians and ranges of the per-image
latency and the ratio ONNX Runtime / PyTorch per repeat. Random weights (latency does not depend
on them).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nasnet_det import build_nasnet
from nasnet_det.export import export_classifier, load_exported, run_exported


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="nasnet_a_mobile")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--inner", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1)
    model = build_nasnet(a.preset).eval()
    x = torch.randn(1, 3, a.size, a.size)
    with tempfile.TemporaryDirectory() as d:
        path = export_classifier(model, Path(d) / "m.onnx", "onnx", a.size)
        session = load_exported(path)
        runs = {"pytorch": lambda: model(x), "onnxruntime": lambda: run_exported(session, x)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        with torch.no_grad():
            for f in runs.values():
                f()  # warm-up
            for _ in range(a.repeats):
                for name, f in runs.items():
                    t = time.perf_counter()
                    for _ in range(a.inner):
                        f()
                    times[name].append((time.perf_counter() - t) / a.inner * 1000)
    for name, ts in times.items():
        print(
            f"{name:12s} median {statistics.median(ts):8.1f} ms  range {min(ts):.1f}-{max(ts):.1f}"
        )
    ratios = [o / t for o, t in zip(times["onnxruntime"], times["pytorch"])]
    print(f"onnxruntime / pytorch: median {statistics.median(ratios):.2f}  "
          f"range {min(ratios):.2f}-{max(ratios):.2f}  ({a.preset}, {a.size} px, 1 thread, "
          f"{a.repeats} repeats x {a.inner})")  # fmt: skip


if __name__ == "__main__":
    main()
