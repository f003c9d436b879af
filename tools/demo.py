#!/usr/bin/env python
"""`make demo`: the whole pipeline on built-in data, on CPU, in about 15 minutes.

1. The preset table: our NASNets' sizes beside the paper's.
2. A cell search on the built-in digits (nasnet_det.search): a fixed number of children.
3. A NASNet Faster R-CNN with the searched cell: pretrained as a digit classifier, then trained
   and evaluated on the built-in detection dataset for a fixed number of iterations.

Budgets are counts (children, iterations) from one seed, never minutes: the same seed on the
same machine prints the same numbers. Outputs go to ``output/demo`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import sys
import time

PROG = "demo.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--output", default="output/demo", help="output folder (default output/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of both halves (default 0)")
    p.add_argument(
        "--search-children", type=int, default=None, help="children the search trains (64)"
    )
    p.add_argument(
        "--detector-iters", type=int, default=None, help="detector training iterations (config)"
    )
    p.add_argument(
        "--pretrain-iters", type=int, default=None, help="classification pretraining steps"
    )
    p.add_argument("--skip-search", action="store_true", help="use NASNet-A's cell instead")
    p.add_argument("--skip-detection", action="store_true", help="stop after the search")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("search_children", "detector_iters"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.pretrain_iters is not None and args.pretrain_iters < 0:
        p.error(f"--pretrain-iters must be 0 or more, got {args.pretrain_iters}")
    if not 0 <= args.seed < 2**32:  # numpy's and Detectron2's seeding range
        p.error(f"--seed must be in [0, 2**32), got {args.seed}")
    if args.skip_search and args.skip_detection:
        p.error("--skip-search with --skip-detection leaves nothing to run; drop one of them")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pathlib import Path

    from nasnet_det.io import check_output_dir

    out = check_output_dir(args.output)
    t0 = time.monotonic()
    from nasnet_det.cli import quiet_library_logs

    quiet_library_logs()  # also when main() is called directly: torch.fx's tracing log

    from nasnet_det.summary import preset_table

    print("== NASNet presets (parameters without the auxiliary head) ==")
    print(preset_table())

    genotype = "nasnet_a"
    if not args.skip_search:
        from nasnet_det.search.demo import DEMO_CHILDREN
        from nasnet_det.search.demo import run_demo as search_demo

        n = args.search_children or DEMO_CHILDREN
        print(f"\n== Cell search on the shipped table ({n} children, seed {args.seed}) ==")
        res = search_demo(str(Path(out) / "search"), n, args.seed, progress=not args.no_progress)
        genotype = res["best_genotype"] or genotype
        best = res["best_reward"]
        print(
            f"best stored held-out accuracy {100 * best:.1f}%; cell: {genotype}"
            if best is not None
            else "no child finished; the detector uses NASNet-A's cell"
        )

    if not args.skip_detection:
        from nasnet_det.detection.demo import Pretrain
        from nasnet_det.detection.demo import run_demo as detection_demo

        opts = ["SEED", str(args.seed)]
        if args.detector_iters:
            opts += ["SOLVER.MAX_ITER", str(args.detector_iters)]
        spec = Pretrain() if args.pretrain_iters is None else Pretrain(iters=args.pretrain_iters)
        print(f"\n== Faster R-CNN with cell {genotype} on the built-in detection dataset ==")
        res = detection_demo(
            str(Path(out) / "detection"),
            genotype=genotype,
            opts=opts,
            pretrain=spec,
            progress=not args.no_progress,
        )
        print(f"detections drawn in {res['image']}")
    print(f"\ndemo finished in {(time.monotonic() - t0) / 60:.1f} min; outputs in {out}/")
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings, run_tool

    quiet_warnings()
    sys.exit(run_tool(PROG, lambda: main()))
