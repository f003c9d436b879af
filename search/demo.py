"""A short cell search on the built-in digits, for ``make demo``: a few minutes on 2 cores.

``run_demo(output_dir)`` searches with regularized evolution over a 3-block, 8-op space (tiny
children: 12 px digits, one cell per stack, 8 filters, 2 epochs over 600 images), prints the
best children, and returns the path of the best genotype, ready for ``build_nasnet`` and the
detector (``MODEL.NASNET``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nasnet_det.search.config import resolve_config
from nasnet_det.search.runner import run_search

__all__ = ["run_demo", "DEMO_CONFIG"]

DEMO_CONFIG = {
    "seed": 0,
    "max_children": 200,  # the time limit ends the demo first
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


def _describe(genotype_json: str) -> str:
    g = json.loads(genotype_json)
    ops = [f"{b['left'][0]}+{b['right'][0]}" for b in g["normal"]]
    return "normal: " + ", ".join(ops)


def run_demo(output_dir: str, max_minutes: float = 4.0) -> dict:
    """Search for at most ``max_minutes`` (leaving time for start-up and plots) and report."""
    import torch

    torch.set_num_threads(1)
    start = time.time()
    cfg = resolve_config(DEMO_CONFIG)
    cfg["max_minutes"] = max(0.5, max_minutes - 0.75)
    res = run_search(cfg, output_dir, overwrite=True)
    ok = [c for c in res.children if c["status"] in ("ok",) and c["reward"] is not None]
    ok.sort(key=lambda c: (-c["reward"], c["child_id"]))
    print(
        f"\nCell search on digits ({len(res.children)} children, "
        f"{time.time() - start:.0f} s, strategy {cfg['strategy']['name']})"
    )
    print(f"{'rank':>4} {'child':>5} {'reward':>7} {'params':>7}  cell")
    for i, c in enumerate(ok[:5], 1):
        print(
            f"{i:>4} {c['child_id']:>5} {c['reward']:>7.4f} {c['params'] or 0:>7}  "
            f"{_describe(c['genotype'])}"
        )
    out = Path(output_dir)
    print(f"best genotype: {res.best_genotype}")
    return {
        "best_genotype": str(res.best_genotype) if res.best_genotype else None,
        "best_reward": res.best_reward,
        "num_children": res.num_children,
        "plot": str(out / "rewards.png"),
    }


if __name__ == "__main__":
    import sys

    run_demo(sys.argv[1] if len(sys.argv) > 1 else "output/search_demo")
