"""A short cell search on the built-in digits, for ``make demo``: a few minutes on 2 cores.

``run_demo(output_dir)`` searches with regularized evolution over a 3-block, 8-op space (tiny
children: 12 px digits, one cell per stack, 8 filters, 2 epochs over 600 images), prints the
best children, and returns the path of the best genotype, ready for ``build_nasnet`` and the
detector (``MODEL.NASNET``). The budget is a number of children and every child's training
seed follows from the search seed and its index, so the same seed on the same machine gives
the same children, rewards and best cell.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nasnet_det.search.runner import run_search

__all__ = ["run_demo", "DEMO_CONFIG", "DEMO_CHILDREN"]

#: Children the demo trains (16 rounds of 4): about 2-4 minutes on 2 cores.
DEMO_CHILDREN = 64

DEMO_CONFIG: dict[str, Any] = {
    "seed": 0,
    "max_children": DEMO_CHILDREN,
    "strategy": {"name": "evolution", "batch_size": 4, "population_size": 12, "sample_size": 4},
    "space": {
        "num_blocks": 3,
        "ops": [
            "identity",
            "avg_pool_3x3",
            "max_pool_3x3",
            "conv_1x3_3x1",
            "dil_conv_3x3",
            "sep_conv_3x3",
            "sep_conv_5x5",
            "conv_1x1",
        ],
    },
    "data": {"name": "digits", "image_size": 12, "train_size": 600, "val_size": 400},
    "child": {
        "num_cells": 1,
        "num_conv_filters": 8,
        "stem_multiplier": 1.0,
        "epochs": 2,
        "batch_size": 32,
        "eval_batch_size": 400,
        "lr": 0.1,
    },
    "execution": {"backend": "local", "num_workers": 2},
}


def describe(genotype_json: str) -> str:
    """``normal: op+op, ...`` for a genotype's JSON text (the leaderboard's short form)."""
    g = json.loads(genotype_json)
    ops = [f"{b['left'][0]}+{b['right'][0]}" for b in g["normal"]]
    return "normal: " + ", ".join(ops)


def run_demo(
    output_dir: str,
    max_children: int = DEMO_CHILDREN,
    seed: int = 0,
    *,
    num_workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Search ``max_children`` children from ``seed``, print the five best and return
    ``{"best_genotype": JSON path, "best_reward", "num_children", "seconds", "plot"}``."""
    cfg = {
        **DEMO_CONFIG,
        "seed": int(seed),
        "max_children": int(max_children),
        "execution": {"backend": "local", "num_workers": int(num_workers)},
    }
    start = time.monotonic()
    res = run_search(cfg, output_dir, overwrite=True, progress=progress)
    seconds = time.monotonic() - start
    ok = [c for c in res.children if c["status"] == "ok" and c["reward"] is not None]
    ok.sort(key=lambda c: (-c["reward"], c["child_id"]))
    print(
        f"searched {res.num_children} children in {seconds:.0f} s "
        f"(regularized evolution, seed {seed}); the five best:"
    )
    print(f"{'rank':>4} {'child':>5} {'reward':>7} {'params':>7}  cell")
    for i, c in enumerate(ok[:5], 1):
        print(
            f"{i:>4} {c['child_id']:>5} {c['reward']:>7.4f} {c['params'] or 0:>7}  "
            f"{describe(c['genotype'])}"
        )
    return {
        "best_genotype": str(res.best_genotype) if res.best_genotype else None,
        "best_reward": res.best_reward,
        "num_children": res.num_children,
        "seconds": seconds,
        "plot": str(Path(output_dir) / "rewards.png"),
    }
