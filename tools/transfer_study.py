#!/usr/bin/env python
"""Transfer study: ``transfer_study.py --search DIR --k K --output DIR``.

Takes K cells across a finished search's reward range (best, quantiles, worst) plus NASNet-A,
trains each with the same budget and seed as (a) a larger classifier on digit crops from the
built-in detection set and (b) a Faster R-CNN detector on that set, and reports proxy reward
against accuracy and box AP with rank correlations and a scatter plot. Resumable: run the
same command again after a kill; finished cells are not retrained.
The logic lives in :mod:`nasnet_det.search.transfer`; this script parses arguments and reports.
"""

from __future__ import annotations

import argparse
import sys

PROG = "transfer_study.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--search", required=True, help="a finished search folder")
    p.add_argument("--k", type=int, required=True, help="cells taken from the search (>= 2)")
    p.add_argument("--output", required=True, help="output folder (resumed when it has cells)")
    p.add_argument("--pretrain-iters", type=int, default=100, help="(a) classifier steps")
    p.add_argument("--detector-iters", type=int, default=150, help="(b) detector iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="cells trained at once (0: in-process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.workers < 0:
        p.error(f"--workers must be 0 or more, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    from nasnet_det.search.transfer import Budget, TransferStudy, describe_correlation

    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    budget = Budget(args.pretrain_iters, args.detector_iters, args.seed)
    study = TransferStudy(args.search, args.k, args.output, budget)
    done = study.done()
    print(
        f"{len(study.jobs())} cells ({args.k} from the search + NASNet-A), "
        f"{len(done)} already done; budget: {args.pretrain_iters} classifier steps, "
        f"{args.detector_iters} detector iterations, seed {args.seed}",
        flush=True,
    )
    records = study.run(workers=args.workers, progress=not args.no_progress)
    print(f"{'cell':<22} {'proxy':>6} {'acc(a)':>7} {'AP(b)':>6} {'AP50':>6}")
    for r in records:
        acc = "" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}"
        ap = "" if r["AP"] is None else f"{r['AP']:.1f}"
        ap50 = "" if r["AP50"] is None else f"{r['AP50']:.1f}"
        print(f"{r['name']:<22} {r['proxy_reward']:>6.3f} {acc:>7} {ap:>6} {ap50:>6}")
    corr = study.summarise(records)
    for key, label in (("accuracy", "(a) accuracy"), ("AP", "(b) box AP")):
        print(f"proxy reward vs {label}: {describe_correlation(corr[key])}")
    print(f"results: {args.output}/results.csv, correlations.json, transfer.png")
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings, run_tool

    quiet_warnings()
    sys.exit(run_tool(PROG, lambda: main()))
