#!/usr/bin/env python
"""Search efficiency on a synthetic objective with a known optimum, and proxy throughput.

``python bench/search_efficiency.py efficiency``: reward = fraction of NASNet-A's decisions
a child matches (its cells encoded in the paper's space, concat lists aside) plus Gaussian
noise; for each strategy and seed, the number of children proposed until one scores at least
the target on the noiseless objective. Runs the strategies directly (no training, no history).

``python bench/search_efficiency.py throughput``: children per hour of the built-in proxy
(demo settings) with standalone training, and the speed-up of weight-sharing scoring.
Results and commands: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import build_strategy

from nasnet_det.genotypes import NASNET_A

__all__ = ["nasnet_a_match", "children_to_target"]


def nasnet_a_match(space: SearchSpace, decisions: Sequence[int]) -> float:
    """Fraction of the decisions equal to NASNet-A's (1.0 for NASNet-A itself)."""
    target = space.encode(NASNET_A, strict=False)
    return float(np.mean([a == b for a, b in zip(decisions, target)]))


def children_to_target(
    name: str, seed: int, target: float = 0.9, noise: float = 0.02, budget: int = 20000, **params
) -> int | None:
    """Children proposed until the first one at or above ``target`` (None: not within budget)."""
    space = SearchSpace()
    strategy = build_strategy(name, space, seed, **params)
    rng = np.random.default_rng(10_000 + seed)
    done = 0
    while done < budget:
        kids = strategy.propose(min(strategy.batch_size, budget - done))
        clean = [nasnet_a_match(space, k) for k in kids]
        for i, c in enumerate(clean):
            if c >= target:
                return done + i + 1
        strategy.observe(kids, [c + noise * rng.standard_normal() for c in clean])
        done += len(kids)
    return None


STRATEGY_SETTINGS = {
    "random": {},
    "evolution": {},
    "ppo": {},  # the paper's settings
    "reinforce": {},
}


def efficiency(seeds: int, budget: int, target: float, noise: float, names: Sequence[str]):
    rows = {}
    for label in names:
        name = label.split("_")[0]
        results, t0 = [], time.time()
        for seed in range(seeds):
            results.append(
                children_to_target(name, seed, target, noise, budget, **STRATEGY_SETTINGS[label])
            )
        reached = [r for r in results if r is not None]
        # Runs that never reach the target count as the budget (a lower bound on the mean).
        mean = float(np.mean([r if r is not None else budget for r in results]))
        rows[label] = {
            "runs": results,
            "mean": mean,
            "reached": len(reached),
            "seconds": time.time() - t0,
        }
        print(
            f"{label:>20}: mean {'>=' if len(reached) < seeds else ''}{mean:.0f} children "
            f"({len(reached)}/{seeds} reached {target}); runs {results}; "
            f"{time.time() - t0:.0f} s",
            flush=True,
        )
    return rows


def throughput(children: int, workers: int) -> dict:
    """Standalone children per hour on the demo proxy vs weight-sharing scores per hour."""
    import tempfile

    import torch
    from nasnet_det.search.config import resolve_config
    from nasnet_det.search.demo import DEMO_CONFIG
    from nasnet_det.search.runner import run_search

    torch.set_num_threads(1)
    out = {}
    cfg = resolve_config(
        {
            **DEMO_CONFIG,
            "max_children": children,
            "strategy": {"name": "random", "batch_size": children},
            "outputs": {"plot": False, "diagrams": False, "progress": False},
        }
    )
    cfg["execution"]["num_workers"] = workers
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        res = run_search(cfg, d)
        wall = time.time() - t0
        train_s = [c["seconds"] for c in res.children if c["seconds"]]
    out["standalone_children_per_hour"] = 3600 * children / wall
    out["standalone_seconds_per_child"] = float(np.mean(train_s))
    ws = resolve_config(
        {
            **DEMO_CONFIG,
            "max_children": children,
            "mode": "weight_sharing",
            "strategy": {"name": "random", "batch_size": 10},
            "weight_sharing": {
                "num_cells": 1,
                "num_conv_filters": 8,
                "steps_per_round": 20,
                "batch_size": 32,
                "eval_batches": 4,
                "retrain_top": 0,
            },
            "outputs": {"plot": False, "diagrams": False, "progress": False},
        }
    )
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        res = run_search(ws, d)
        wall = time.time() - t0
    out["shared_children_per_hour"] = 3600 * children / wall
    out["speedup"] = out["shared_children_per_hour"] / out["standalone_children_per_hour"]
    print(json.dumps(out, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("efficiency")
    e.add_argument("--seeds", type=int, default=5)
    e.add_argument("--budget", type=int, default=20000)
    e.add_argument("--target", type=float, default=0.9)
    e.add_argument("--noise", type=float, default=0.02)
    e.add_argument("--strategies", nargs="+", default=list(STRATEGY_SETTINGS))
    t = sub.add_parser("throughput")
    t.add_argument("--children", type=int, default=20)
    t.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.what == "efficiency":
        import torch

        torch.set_num_threads(1)
        efficiency(args.seeds, args.budget, args.target, args.noise, args.strategies)
    else:
        throughput(args.children, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
