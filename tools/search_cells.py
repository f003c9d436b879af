#!/usr/bin/env python
"""Search NASNet cells: ``search_cells.py --config configs/search/X.yaml --output DIR``.

Trailing ``KEY VALUE`` pairs override the config (``child.epochs 1 strategy.name random``).
``--compare RUN_DIR ... --output PNG`` overlays the reward curves of finished searches instead
(the paper's RL-versus-random figure).
The logic lives in :mod:`nasnet_det.search`; this script parses arguments and reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="search config (configs/search/*.yaml)")
    p.add_argument("--output", required=True, help="output folder (with --compare: a PNG)")
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="plot finished searches")
    p.add_argument("--resume", action="store_true", help="continue the search stored in --output")
    p.add_argument("--overwrite", action="store_true", help="discard a history in --output")
    p.add_argument("--max-children", type=int, default=None, help="total children budget")
    p.add_argument("--backend", choices=("local", "ray"), default=None)
    p.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="KEY VALUE pairs, e.g. child.epochs 1")
    args = p.parse_args(argv)
    # Importing nasnet_det registers its Detectron2 parts, whose dependencies warn about
    # torch.jit deprecations at import; they say nothing about the search.
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # spawned workers too
    if args.resume and args.overwrite:
        p.error("--resume and --overwrite exclude each other")
    if args.compare:
        from pathlib import Path

        from nasnet_det.search.outputs import plot_rewards

        missing = [d for d in args.compare if not (Path(d) / "leaderboard.csv").is_file()]
        if missing:
            print(f"search_cells.py: error: no leaderboard.csv in {missing}", file=sys.stderr)
            return 2
        print(plot_rewards(args.compare, args.output))
        return 0
    if not args.config:
        p.error("--config is required (unless --compare)")

    import torch
    from nasnet_det.search import apply_overrides, load_config, run_search

    # The search process itself (controller updates, shared-weight training) uses one thread:
    # the cores belong to the workers that train children.
    torch.set_num_threads(1)

    try:
        cfg = apply_overrides(load_config(args.config), args.overrides)
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
    except ValueError as e:
        print(f"search_cells.py: error: {e}", file=sys.stderr)
        return 2
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
    sys.exit(main())
