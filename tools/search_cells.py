#!/usr/bin/env python
"""Search NASNet cells: ``search_cells.py --config configs/search/X.yaml --output DIR``.

Trailing ``KEY VALUE`` pairs override the config (``child.epochs 1 strategy.name random``).
``--compare RUN_DIR ... --output PNG`` overlays the reward curves of finished searches instead
(the paper's RL-versus-random figure).
The logic lives in :mod:`nasnet_det.search`; this script parses arguments and reports.
"""

from __future__ import annotations

import argparse
import sys

PROG = "search_cells.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--config", help="search config (configs/search/*.yaml)")
    p.add_argument("--output", required=True, help="output folder (with --compare: a PNG)")
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="plot finished searches")
    p.add_argument("--resume", action="store_true", help="continue the search stored in --output")
    p.add_argument("--overwrite", action="store_true", help="discard a history in --output")
    p.add_argument("--max-children", type=int, default=None, help="total children budget")
    p.add_argument("--backend", choices=("local", "ray", "tabular"), default=None)
    p.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="KEY VALUE pairs, e.g. child.epochs 1")
    args = p.parse_args(argv)
    if args.resume and args.overwrite:
        p.error("--resume and --overwrite exclude each other")
    if not args.compare and not args.config:
        p.error("--config is required (unless --compare)")
    return args


def compare(run_dirs: list[str], output: str) -> int:
    from pathlib import Path

    from nasnet_det.search.outputs import plot_rewards

    if Path(output).is_dir():
        raise ValueError(f"--output {output!r} is a folder; with --compare it names a PNG file")
    missing = [d for d in run_dirs if not (Path(d) / "leaderboard.csv").is_file()]
    if missing:
        raise ValueError(f"no leaderboard.csv in {missing} (expected finished search folders)")
    print(plot_rewards(run_dirs, output))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        return compare(args.compare, args.output)

    import torch
    from nasnet_det.search import load_config, run_search

    # The search process itself (controller updates, shared-weight training) uses one thread:
    # the cores belong to the workers that train children.
    torch.set_num_threads(1)
    cfg = load_config(args.config, args.overrides)
    if args.max_children is not None and args.max_children < 1:
        raise ValueError(f"--max-children must be >= 1, got {args.max_children}")
    res = run_search(
        cfg,
        args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        max_children=args.max_children,
        backend=args.backend,
        address=args.address,
        progress=False if args.no_progress else None,
    )
    failed = sum(c["status"] == "failed" for c in res.children)
    best = (
        "none" if res.best_reward is None else f"{res.best_reward:.4f} (child {res.best_child_id})"
    )
    print(f"children: {res.num_children} ({failed} failed)  best reward: {best}")
    if res.best_genotype is not None:
        print(f"best genotype: {res.best_genotype}")
    print(f"leaderboard: {res.output_dir / 'leaderboard.csv'}")
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings, run_tool

    quiet_warnings()
    sys.exit(run_tool(PROG, main))
