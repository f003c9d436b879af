#!/usr/bin/env python
"""Transfer study: ``transfer_study.py (--search DIR | --table [FILE]) --k K --output DIR``.

Takes K cells across a finished search's (or the tabular benchmark's) reward range (best,
quantiles, worst) plus NASNet-A, trains each with the same budget, once per seed, as (a) a
larger classifier on digit crops from the built-in detection set and (b) a Faster R-CNN
detector on that set (by default the demo's own budget), and reports proxy reward against
accuracy and box AP with rank correlations, a bootstrap interval, the seed-to-seed spread and
a scatter plot. Resumable: run the same command again after a kill; finished trainings are not
repeated.
The logic lives in :mod:`nasnet_det.search.transfer`; this script parses arguments and reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "transfer_study.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--search", help="a finished search folder")
    src.add_argument("--table", nargs="?", const="", metavar="FILE",
                     help="a tabular benchmark (no FILE: the shipped one)")  # fmt: skip
    p.add_argument("--k", type=int, required=True, help="cells taken from the source (>= 2)")
    p.add_argument("--output", required=True, help="output folder (resumed when it has cells)")
    p.add_argument("--pretrain-iters", type=int, default=None,
                   help="(a) classifier steps (default: the demo's)")  # fmt: skip
    p.add_argument(
        "--detector-iters",
        type=int,
        default=None,
        help="(b) detector iterations (default: the demo config's SOLVER.MAX_ITER)",
    )
    p.add_argument("--seed", type=int, default=0, help="the training seed (one seed)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train every cell once per seed (instead of --seed)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="cells trained at once (0: in-process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true",
                   help="train nothing: summarise the trainings finished so far")  # fmt: skip
    args = p.parse_args(argv)
    if args.workers < 0:
        p.error(f"--workers must be 0 or more, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    from nasnet_det.search.transfer import Budget, TransferStudy, demo_budget

    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    if args.pretrain_iters is None or args.detector_iters is None:
        steps, iters = demo_budget()
        args.pretrain_iters = steps if args.pretrain_iters is None else args.pretrain_iters
        args.detector_iters = iters if args.detector_iters is None else args.detector_iters
    seeds = args.seeds
    if args.report and not (Path(args.output) / "study.json").is_file():
        raise ValueError(f"--report: {args.output} holds no transfer study (no study.json)")
    budget = Budget(args.pretrain_iters, args.detector_iters, seeds[0] if seeds else args.seed)
    study = TransferStudy(args.search, args.k, args.output, budget, table=args.table,
                          seeds=seeds)  # fmt: skip
    done = study.done()
    jobs = study.jobs()
    source = "the search" if args.search is not None else "the table"
    print(
        f"{len(jobs) // len(study.seeds)} cells ({args.k} from {source} + NASNet-A) x seeds "
        f"{study.seeds}: {len(jobs)} trainings, {len(done)} already done; budget: "
        f"{args.pretrain_iters} classifier steps, {args.detector_iters} detector iterations",
        flush=True,
    )
    if args.report:
        records = [done[j["name"]] for j in jobs if j["name"] in done]
        if not records:
            raise ValueError(f"--report: no training of {args.output} has finished yet")
        print(f"report on the {len(records)} finished trainings (nothing trained)")
    else:
        records = study.run(workers=args.workers, progress=not args.no_progress)
    report(study, records, args.output)
    return 0


def report(study, records: list[dict], output: str) -> None:
    """The per-training table, the correlations and the seed spread; writes the study's files."""
    from nasnet_det.search.transfer import describe_correlation

    print(f"{'training':<26} {'proxy':>6} {'acc(a)':>7} {'AP(b)':>6} {'AP50':>6}")
    for r in records:
        acc = "" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}"
        ap = "" if r["AP"] is None else f"{r['AP']:.1f}"
        ap50 = "" if r["AP50"] is None else f"{r['AP50']:.1f}"
        print(f"{r['name']:<26} {r['proxy_reward']:>6.3f} {acc:>7} {ap:>6} {ap50:>6}")
    corr = study.summarise(records)
    for key, label, unit in (("accuracy", "(a) accuracy", 100.0), ("AP", "(b) box AP", 1.0)):
        print(f"proxy reward vs {label}: {describe_correlation(corr[key])}")
        spread = corr[key]["seed_spread"]
        if spread:
            print(
                f"  seed-to-seed spread of {label} over {spread['cells']} cells: median "
                f"{unit * spread['median']:.1f}, max {unit * spread['max']:.1f} points"
            )
    print(f"results: {output}/results.csv, correlations.json, transfer.png")


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings, run_tool

    quiet_warnings()
    sys.exit(run_tool(PROG, lambda: main()))
