#!/usr/bin/env python
"""Rank cheap scores against the tabular benchmark's mean reward.

    rank_cheap_scores.py --log out/table/rows.jsonl [--batch 64] [--seeds 0 1 2] [--demo-proxy]

For every cell stored in ``--log`` (a ``build_table.py`` row log, or ``--table`` a shipped
table), computes the zero-cost scores of :mod:`nasnet_det.search.zero_cost` (synflow, NASWOT,
grad-norm, parameter count) on the table's proxy network at initialisation, from one minibatch
of the proxy's training crops, once per initialisation seed (the score's mean is ranked), and
with ``--demo-proxy`` the demo's own proxy reward (12 px clean digits, 2 epochs; one training).
Prints Kendall tau and Spearman rho of each against the table's mean reward, with p-values, n
and the CPU-seconds per cell; fewer than 5 cells is ``undefined``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _rows(a: argparse.Namespace) -> tuple[dict, list[dict]]:
    from nasnet_det.search.tabular import RowLog, load_table

    if a.table:
        t = load_table(a.table)
        return t.head, list(t.rows.values())
    with open(a.log) as f:
        head = json.loads(f.readline())
    return head, RowLog(a.log, head).rows


def scores_of_cell(space, key: str, proxy, x, y, seeds) -> tuple[dict[str, float], float]:
    """Mean zero-cost scores over init seeds of one cell, and the CPU-seconds it took."""
    import torch
    from nasnet_det.search.tabular import build_child
    from nasnet_det.search.zero_cost import zero_cost_scores

    genotype = space.decode(space.parse_key(key))
    start = time.process_time()
    per_seed = []
    for s in seeds:
        torch.manual_seed(s)
        per_seed.append(zero_cost_scores(build_child(genotype, proxy, 10), x, y))
    mean = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
    return mean, time.process_time() - start


def demo_proxy_reward(space, key: str) -> tuple[float, float]:
    """The demo search's reward of the cell (its data, child and seed 0) and its CPU-seconds."""
    from nasnet_det.search.child import run_child
    from nasnet_det.search.demo import DEMO_CONFIG

    task = {"child_id": 0, "genotype": space.decode(space.parse_key(key)).to_dict(),
            "child": DEMO_CONFIG["child"], "data": DEMO_CONFIG["data"], "seed": 0}  # fmt: skip
    start = time.process_time()
    rec = run_child(task)
    return float(rec["reward"]), time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    import torch
    from nasnet_det.search.data import cached_dataset
    from nasnet_det.search.ranking import rank_correlation
    from nasnet_det.search.space import SearchSpace
    from nasnet_det.search.tabular import Proxy

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--log")
    src.add_argument("--table")
    p.add_argument("--batch", type=int, default=64, help="minibatch of the scores")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="init seeds")
    p.add_argument("--demo-proxy", action="store_true", help="also train the demo's proxy")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    head, rows = _rows(a)
    space, proxy = SearchSpace.from_config(head["space"]), Proxy(**head["proxy"])
    (xt, yt), _ = cached_dataset(proxy.data_cfg())
    x, y = xt[: a.batch], yt[: a.batch]
    target = [100 * float(np.mean(r["rewards"])) for r in rows]
    cols: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for r in rows:
        s, sec = scores_of_cell(space, r["key"], proxy, x, y, a.seeds)
        for k, v in s.items():
            cols.setdefault(k, []).append(v)
            cpu.setdefault(k, []).append(sec)  # the four zero-cost scores together
        if a.demo_proxy:
            v, sec = demo_proxy_reward(space, r["key"])
            cols.setdefault("demo proxy (12 px digits, 2 epochs)", []).append(v)
            cpu.setdefault("demo proxy (12 px digits, 2 epochs)", []).append(sec)
    print(f"{len(rows)} cells of {a.log or a.table}; target: mean reward over seeds "
          f"{proxy.seeds} ({min(target):.1f}-{max(target):.1f}%)")  # fmt: skip
    print(
        "| score | Kendall tau (p) | Spearman rho (p) | n | CPU-s per cell (zero-cost: all "
        f"four together, {len(a.seeds)} init seeds) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for k, v in cols.items():
        c = rank_correlation(v, target, names=(k, "mean reward"))
        if c.defined:
            cells = f"{c.tau:.2f} ({c.tau_p:.2g}) | {c.rho:.2f} ({c.rho_p:.2g})"
        else:
            cells = f"{c.describe()} | -"
        print(f"| {k} | {cells} | {c.n} | {np.median(cpu[k]):.2f} |")
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    sys.exit(main())
