"""The cell search of ``make demo``: regularized evolution over a 3-block, 8-op space.

``run_demo(output_dir)`` searches the tabular benchmark shipped with the package (default,
``backend="tabular"``): evolution restricted to the table's cells, each child's reward looked up
(the stored reward of one of its trainings on the table's proxy: 16 px digit crops, 3 epochs),
nothing trained. The table and the strategy's numpy generator fix every reward and decision, so
the pick is the same on every CPU (a live 2-epoch search picked another cell on an AVX-512
machine than on an AVX2 one: its reward ranked training luck). ``backend="local"`` searches live
instead, training each child on :data:`DEMO_CONFIG`'s proxy (12 px digits, 2 epochs), the same
on one machine only. It prints the best children and returns the path of the best genotype,
ready for ``build_nasnet`` and the detector (``MODEL.NASNET``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nasnet_det.search.runner import run_search
from nasnet_det.search.tabular import load_table

__all__ = ["run_demo", "DEMO_CONFIG", "DEMO_CHILDREN", "demo_table_config"]

#: Children the demo proposes (16 rounds of 4); live, about 2-4 minutes on 2 cores.
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


def demo_table_config(seed: int = 0, max_children: int = DEMO_CHILDREN) -> dict[str, Any]:
    """The demo's search on the shipped table: :data:`DEMO_CONFIG`'s strategy, the table's
    space, and the table's proxy as ``data``/``child`` (how its stored rewards were trained)."""
    table = load_table()
    proxy = table.proxy
    return {**DEMO_CONFIG, "seed": int(seed), "max_children": int(max_children),
            "space": table.head["space"], "data": proxy.data_cfg(), "child": proxy.child_cfg(),
            "execution": {"backend": "tabular", "table": None}}  # fmt: skip


def run_demo(
    output_dir: str,
    max_children: int = DEMO_CHILDREN,
    seed: int = 0,
    *,
    num_workers: int = 2,
    progress: bool = True,
    backend: str = "tabular",
) -> dict[str, Any]:
    """Search ``max_children`` children from ``seed`` (on the shipped table, or trained live with
    ``backend="local"`` on ``num_workers`` processes), print the five best and return
    ``{"best_genotype": JSON path, "best_reward", "num_children", "seconds", "plot"}``."""
    if backend == "tabular":
        cfg = demo_table_config(seed, max_children)
    elif backend == "local":
        cfg = {**DEMO_CONFIG, "seed": int(seed), "max_children": int(max_children),
               "execution": {"backend": "local", "num_workers": int(num_workers)}}  # fmt: skip
    else:
        raise ValueError(f"run_demo: backend must be 'tabular' or 'local', got {backend!r}")
    start = time.monotonic()
    res = run_search(cfg, output_dir, overwrite=True, progress=progress)
    seconds = time.monotonic() - start
    ok = [c for c in res.children if c["status"] == "ok" and c["reward"] is not None]
    ok.sort(key=lambda c: (-c["reward"], c["child_id"]))
    means = load_table().mean_rewards() if backend == "tabular" else None
    _print_search(res, ok, seconds, seed, means)
    return {
        "best_genotype": str(res.best_genotype) if res.best_genotype else None,
        "best_reward": res.best_reward,
        "num_children": res.num_children,
        "seconds": seconds,
        "plot": str(Path(output_dir) / "rewards.png"),
    }


def _print_search(res, ok: list[dict], seconds: float, seed: int, means: dict | None) -> None:
    """The demo's report: what was searched, the five best, and (on the table) the pick."""
    if means is None:
        print(f"searched {res.num_children} children in {seconds:.0f} s "
              f"(regularized evolution, seed {seed}); the five best:")  # fmt: skip
    else:
        cpu = sum(c["seconds"] or 0 for c in ok)
        print(f"searched the tabular benchmark of {len(means)} cells (regularized evolution "
              f"restricted to the table, seed {seed}): {res.num_children} children proposed, "
              f"{len(ok)} distinct cells looked up in {seconds:.1f} s, none trained (their "
              f"stored trainings took {cpu:.0f} CPU-s); the five best:")  # fmt: skip
    mean_col = f" {'mean':>6}" if means is not None else ""
    print(f"{'rank':>4} {'child':>5} {'reward':>7}{mean_col} {'params':>7}  cell")
    for i, c in enumerate(ok[:5], 1):
        mean = f" {means[c['key']]:>6.4f}" if means is not None else ""
        print(f"{i:>4} {c['child_id']:>5} {c['reward']:>7.4f}{mean} {c['params'] or 0:>7}  "
              f"{describe(c['genotype'])}")  # fmt: skip
    if means is not None and ok:
        best = ok[0]
        print(f"picked child {best['child_id']}: reward {best['reward']:.4f} (one stored "
              f"training), mean reward {means[best['key']]:.4f} over the table's trainings "
              f"(the table's best mean: {max(means.values()):.4f})")  # fmt: skip
