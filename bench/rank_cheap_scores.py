#!/usr/bin/env python
"""Rank cheap scores against the tabular benchmark's mean reward.

    rank_cheap_scores.py --log out/table/rows.jsonl [--batch 64] [--seeds 0 1 2] [--demo-proxy]
        [--short-epochs 1] [--ws-steps 1000 2000] [--ws-schedules uniform fair]
        [--recal-batches 8] [--ws-plain] [--cells N]

For every cell stored in ``--log`` (a ``build_table.py`` row log, or ``--table`` a shipped
table; ``--cells N``: the first N), computes the zero-cost scores of
:mod:`nasnet_det.search.zero_cost` (synflow, NASWOT, grad-norm, parameter count) on the table's
proxy network at initialisation, from one minibatch of the proxy's training crops, once per
initialisation seed (the score's mean is ranked); with ``--demo-proxy`` the demo's own proxy
reward (12 px clean digits, 2 epochs; one training); with ``--short-epochs E`` one training of
the table's own child on its data for E epochs (seed 0: a short-training proxy); with
``--ws-steps`` weight sharing: for each schedule of ``--ws-schedules`` one shared network of
the space (:mod:`nasnet_det.search.weight_sharing`, the search config's ``weight_sharing``
defaults at the table's child size and batch) trained on the table's training crops, and after
each step count of ``--ws-steps`` every cell scored on all of the table's held-out crops with
its BN statistics recalibrated on ``--recal-batches`` training batches (``--ws-plain``: also
with each batch's own statistics).
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


def short_reward(space, key: str, child: dict, data: dict, seed: int = 0) -> tuple[float, float]:
    """The reward (%) of one training of the cell with the ``child`` and ``data`` config
    sections and ``seed`` (as a search worker trains it), and its CPU-seconds."""
    from nasnet_det.search.child import run_child

    task = {"child_id": 0, "genotype": space.decode(space.parse_key(key)).to_dict(),
            "child": child, "data": data, "seed": seed, "num_threads": 1}  # fmt: skip
    start = time.process_time()
    rec = run_child(task)
    if rec["status"] != "ok":
        raise RuntimeError(f"cell {key}: training failed: {rec['error']}")
    return 100 * float(rec["reward"]), time.process_time() - start


def ws_config(proxy) -> dict:
    """The search's ``weight_sharing`` defaults on the table's proxy: its child size and batch,
    scored on every held-out crop (the crops the table's reward counts)."""
    from nasnet_det.search.config import get_search_defaults

    cfg = dict(get_search_defaults().weight_sharing)
    cfg.update(num_cells=proxy.num_cells, num_conv_filters=proxy.num_conv_filters,
               batch_size=proxy.batch_size, eval_batches=-(-proxy.val_size // proxy.batch_size),
               retrain_top=0, device="cpu")  # fmt: skip
    return cfg


def weight_sharing_scores(
    space, keys: list[str], proxy, schedule: str, steps: list[int], recal: int,
    plain: bool = False, seed: int = 0,
) -> dict[str, tuple[list[float], float]]:  # fmt: skip
    """Held-out accuracies (%) of the cells ``keys`` on one shared network trained by
    ``schedule`` on the proxy's training crops, after each step count of ``steps``, with BN
    recalibrated on ``recal`` batches (and with batch statistics when ``plain``): column name ->
    (scores, CPU-seconds per cell: the training so far shared over the cells plus one scoring)."""
    from nasnet_det.search.weight_sharing import SharedScorer, scores_over_training, training_paths

    scorer = SharedScorer(space, ws_config(proxy), proxy.data_cfg(), seed)
    rng = np.random.default_rng(seed + 1)
    kids = [space.parse_key(k) for k in keys]
    res = scores_over_training(
        scorer, kids, lambda done, n: training_paths(space, schedule, rng, n), steps, recal, plain
    )
    cols = {}
    for step, row in res["checkpoints"].items():
        kinds = (("recal_scores", "recal_cpu_s", f"BN recalibrated ({recal} batches)"),
                 ("scores", "score_cpu_s", "batch statistics"))  # fmt: skip
        for name, cpu_name, how in kinds:
            if name in row:
                cpu = (row["train_cpu_s"] + row[cpu_name]) / len(keys)
                scores = [100 * row[name][space.key(d)] for d in kids]
                cols[f"weight sharing, {schedule}, {step} steps, {how}"] = (scores, cpu)
        print(f"weight sharing ({schedule}): {step} steps scored, training so far "
              f"{row['train_cpu_s']:.0f} CPU-s", file=sys.stderr, flush=True)  # fmt: skip
    return cols


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
    p.add_argument("--short-epochs", type=int, nargs="*", default=[],
                   help="also train the table's child for these epochs (seed 0)")  # fmt: skip
    p.add_argument(
        "--ws-steps",
        type=int,
        nargs="+",
        default=[],
        help="weight sharing: score the cells after these shared training steps",
    )
    p.add_argument(
        "--ws-schedules",
        nargs="+",
        default=["uniform", "fair"],
        choices=["uniform", "fair"],
        help="weight sharing: how paths are sampled",
    )
    p.add_argument("--recal-batches", type=int, default=8, help="weight sharing: BN batches")
    p.add_argument("--ws-plain", action="store_true", help="weight sharing: also batch stats")
    p.add_argument("--cells", type=int, default=None, help="only the first N cells")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    head, rows = _rows(a)
    rows = rows[: a.cells]
    space, proxy = SearchSpace.from_config(head["space"]), Proxy(**head["proxy"])
    (xt, yt), _ = cached_dataset(proxy.data_cfg())
    x, y = xt[: a.batch], yt[: a.batch]
    target = [100 * float(np.mean(r["rewards"])) for r in rows]
    short = [
        (
            f"table's proxy, {e} epoch{'s' * (e > 1)}, seed 0",
            {**proxy.child_cfg(), "epochs": e},
            proxy.data_cfg(),
        )
        for e in a.short_epochs
    ]
    if a.demo_proxy:
        from nasnet_det.search.demo import DEMO_CONFIG

        short.append(("demo proxy (12 px digits, 2 epochs)", DEMO_CONFIG["child"],
                      DEMO_CONFIG["data"]))  # fmt: skip
    cols: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for r in rows:
        s, sec = scores_of_cell(space, r["key"], proxy, x, y, a.seeds)
        for k, v in s.items():
            cols.setdefault(k, []).append(v)
            cpu.setdefault(k, []).append(sec)  # the four zero-cost scores together
        for name, child, data in short:
            v, sec = short_reward(space, r["key"], child, data)
            cols.setdefault(name, []).append(v)
            cpu.setdefault(name, []).append(sec)
    keys = [r["key"] for r in rows]
    for schedule in a.ws_schedules if a.ws_steps else []:
        for k, (v, sec) in weight_sharing_scores(
            space, keys, proxy, schedule, a.ws_steps, a.recal_batches, a.ws_plain
        ).items():
            cols[k], cpu[k] = v, [sec]
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
    if a.ws_steps:
        print(f"weight sharing (CPU-s per cell: shared training so far / cells + one scoring): "
              f"{ws_config(proxy)}, init seed 0, paths seed 1")  # fmt: skip
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    sys.exit(main())
