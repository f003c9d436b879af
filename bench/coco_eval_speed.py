#!/usr/bin/env python
"""Wall time of tools/eval_coco.py against plain pycocotools on a synthetic COCO-sized set.

    .venv/bin/python bench/coco_eval_speed.py [--images 5000] [--workdir /tmp/coco_eval_bench]
        [--variants default,pycocotools,faster-1]

The set is deterministic (tests/evaluation/coco_synthetic.py, seed 0): 5,000 images,
80 categories, about 7 GT boxes and exactly 100 detections per image (500,000 detections).

Every contender runs as a fresh process, timed from the outside, from interpreter start to exit,
reading the same two JSON files:
  * plain:        pycocotools as its README shows: COCO(gt), loadRes(dt), evaluate, accumulate,
                  summarize.
  * default:      tools/eval_coco.py --out metrics.json with its defaults (faster-coco-eval, one
                  process per idle CPU over groups of categories).
  * pycocotools:  tools/eval_coco.py --backend pycocotools (input checks + category processes).
  * faster-1/2:   tools/eval_coco.py --backend faster-coco-eval --workers 1 / 2.
Numbers are compared with the plain run's twelve stats (0-1 scale). The plain run takes a few
minutes: this is run by hand, not by the tests. Paste the printed table into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "eval_coco.py"

PLAIN = r"""
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
dt = gt.loadRes(sys.argv[2])
ev = COCOeval(gt, dt, "bbox")
ev.evaluate()
ev.accumulate()
ev.summarize()
json.dump([float(x) for x in ev.stats], open(sys.argv[3], "w"))
"""

VARIANTS = {
    "default": [],
    "pycocotools": ["--backend", "pycocotools"],
    "faster-1": ["--backend", "faster-coco-eval", "--workers", "1"],
    "faster-2": ["--backend", "faster-coco-eval", "--workers", "2"],
}
STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def make_set(workdir: Path, images: int) -> tuple[Path, Path]:
    gt_path, dt_path = workdir / f"gt_{images}.json", workdir / f"dt_{images}.json"
    if gt_path.exists() and dt_path.exists():
        return gt_path, dt_path
    sys.path.insert(0, str(REPO / "tests" / "evaluation"))  # test data lives with the tests
    from coco_synthetic import synthetic_coco

    t = time.perf_counter()
    gt, dts = synthetic_coco(
        num_images=images, num_categories=80, gt_per_image=7.0, dt_per_image=100, seed=0
    )
    workdir.mkdir(parents=True, exist_ok=True)
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dts))
    print(
        f"generated {len(gt['annotations'])} GT boxes, {len(dts)} detections in "
        f"{time.perf_counter() - t:.1f}s -> {workdir}",
        flush=True,
    )
    return gt_path, dt_path


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/coco_eval_bench"))
    ap.add_argument(
        "--variants",
        default="default,faster-1,faster-2,pycocotools",
        help="comma-separated subset of: " + ", ".join(VARIANTS),
    )
    args = ap.parse_args()
    gt_path, dt_path = make_set(args.workdir, args.images)
    py = sys.executable
    load0 = os.getloadavg()

    rows = []
    plain_stats_path = args.workdir / "plain_stats.json"
    wall, _ = timed([py, "-c", PLAIN, str(gt_path), str(dt_path), str(plain_stats_path)])
    plain = json.loads(plain_stats_path.read_text())
    rows.append(("plain pycocotools", wall, 0.0, True))
    print(f"plain pycocotools: {wall:.1f}s", flush=True)

    for name in [v for v in args.variants.split(",") if v]:
        out = args.workdir / f"metrics_{name}.json"
        wall, proc = timed(
            [
                py,
                str(TOOL),
                "--gt",
                str(gt_path),
                "--dt",
                str(dt_path),
                "--out",
                str(out),
                *VARIANTS[name],
            ]
        )
        m = json.loads(out.read_text())
        diff = max(
            abs((m[k] if m[k] is not None else -100.0) / 100 - v) for k, v in zip(STAT_KEYS, plain)
        )
        # metrics.json holds float(v * 100) (None for -1): equal floats mean identical stats.
        same = all(m[k] == (v * 100 if v >= 0 else None) for k, v in zip(STAT_KEYS, plain))
        label = f"eval_coco.py {' '.join(VARIANTS[name]) or '(defaults)'}"
        rows.append((label, wall, diff, same))
        print(f"{label}: {wall:.1f}s, max |diff| {diff:.1e}, identical {same}", flush=True)

    load1 = os.getloadavg()
    base = rows[0][1]
    print()
    print(
        f"{args.images} images, {len(json.loads(dt_path.read_text()))} detections; "
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPUs, load average {load0[0]:.1f} -> {load1[0]:.1f}"
    )
    print()
    print("| contender | wall s | speed-up vs plain | 12 stats identical to plain |")
    print("| --- | ---: | ---: | --- |")
    for label, wall, _, same in rows:
        print(f"| {label} | {wall:.1f} | {base / wall:.2f}x | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
