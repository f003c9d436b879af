#!/usr/bin/env python
"""One detection-demo run with chosen pretraining and config changes: what moves its AP.

    python bench/demo_ablation.py --output out/abl/base \
        --genotype output/demo/search/best_genotype.json
    python bench/demo_ablation.py --output out/abl/p1000 --pretrain-iters 1000 --crop 96 \
        SOLVER.MAX_ITER 2500

Runs ``nasnet_det.detection.demo.run_demo`` (single-threaded, seeded: the numbers repeat on one
machine) and prints one line: the pretraining (steps, crop, validation crop accuracy), the
config changes, the COCO box metrics and the wall time. Two runs side by side on a 2-core
machine give the same numbers as alone (one thread each), only slower.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="run folder")
    p.add_argument("--genotype", default="nasnet_a", help="cell name or genotype JSON")
    p.add_argument("--pretrain-iters", type=int, default=None, help="Pretrain.iters")
    p.add_argument("--crop", type=int, default=None, help="Pretrain.crop (px at input scale)")
    p.add_argument("opts", nargs="*", help="config overrides, KEY VALUE ...")
    args = p.parse_args(argv)

    from nasnet_det.cli import quiet_library_logs, quiet_warnings

    quiet_warnings()
    quiet_library_logs()
    import dataclasses

    from nasnet_det.detection.demo import Pretrain, run_demo

    spec = Pretrain()
    if args.pretrain_iters is not None:
        spec = dataclasses.replace(spec, iters=args.pretrain_iters)
    if args.crop is not None:
        spec = dataclasses.replace(spec, crop=args.crop)
    start = time.monotonic()
    res = run_demo(args.output, args.genotype, opts=args.opts, pretrain=spec, progress=False)
    box = {k: round(v, 2) for k, v in res["metrics"].items() if "-" not in k and v == v}
    acc = res["pretrain"]["val_accuracy"]
    print(
        f"pretrain {spec.iters} x {spec.batch_size} crops of {spec.crop} px "
        f"(val crop accuracy {'-' if acc is None else f'{100 * acc:.1f}%'}), opts {args.opts}: "
        f"{json.dumps(box)}, detector {res['train']['train_seconds']:.0f} s, "
        f"total {time.monotonic() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
