#!/usr/bin/env python
"""Build (or grow) the demo space's tabular benchmark, and measure whether its proxy repeats.

    build_table.py build  --log out/table/rows.jsonl --cells 1000 [proxy options]
    build_table.py report --log out/table/rows.jsonl
    build_table.py ship   --log out/table/rows.jsonl [--output FILE] [--transfer STUDY ...]

``build`` samples ``--cells`` distinct uniform cells of the demo's search space (3 blocks,
8 ops; the list depends only on ``--sample-seed``, and a longer list starts with a shorter one)
and trains each once per proxy seed in this process (one thread), appending one fsynced JSON line
per cell to ``--log``. The proxy options default to the shipped table's proxy
(:class:`nasnet_det.search.tabular.Proxy`: 16 px, 1,000 training crops, 3 epochs, 4 seeds).
Killed (even ``kill -9``), the same command resumes after the last stored cell; a log of other
proxy settings is refused. Run it in the background with ``OMP_NUM_THREADS=1 nice -n 19``.

``report`` prints, over the stored cells, the proxy's self-agreement (Kendall tau and Spearman
rho of seed 0's reward against seed 1's, with p-values; the mean of two seeds against two fresh
ones; variance components and Spearman-Brown's tau for k averaged seeds), the spread of the mean
rewards and the CPU-seconds per training. ``report`` and ``ship`` only read the log, so they run
while a build appends to it. ``ship`` writes the rows as the package's compressed table
(``nasnet_det/search/tables/demo_digit_crops.json.gz`` by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _proxy(a: argparse.Namespace):
    from nasnet_det.search.tabular import Proxy

    return Proxy(image_size=a.image_size, train_size=a.train_size, val_size=a.val_size,
                 num_cells=a.num_cells, num_conv_filters=a.filters, epochs=a.epochs,
                 batch_size=a.batch_size, lr=a.lr, seeds=tuple(a.seeds))  # fmt: skip


def _default_proxy():
    """The shipped table's proxy (:class:`nasnet_det.search.tabular.Proxy`'s defaults)."""
    from nasnet_det.search.tabular import Proxy

    return Proxy()


def _open(a: argparse.Namespace, head: dict | None = None):
    import json

    from nasnet_det.search.tabular import RowLog

    if head is None:  # report / ship: the log's own header
        with open(a.log) as f:
            head = json.loads(f.readline())
    return RowLog(a.log, head)


def cmd_build(a: argparse.Namespace) -> int:
    import torch
    from nasnet_det.search.demo import DEMO_CONFIG
    from nasnet_det.search.space import SearchSpace
    from nasnet_det.search.tabular import header, measure_cell, sample_cells

    torch.set_num_threads(1)
    space = SearchSpace.from_config(DEMO_CONFIG["space"])
    proxy = _proxy(a)
    log = _open(a, header(space, proxy, a.sample_seed))
    done = {r["key"] for r in log.rows}
    cells = sample_cells(space, a.cells, a.sample_seed)
    todo = [d for d in cells if space.key(d) not in done]
    print(f"{len(cells)} cells planned, {len(cells) - len(todo)} stored, {len(todo)} to train; "
          f"proxy {proxy.to_dict()}", flush=True)  # fmt: skip
    start = time.monotonic()
    for i, d in enumerate(todo, 1):
        row = measure_cell(space, d, proxy)
        log.append(row)
        el = time.monotonic() - start
        print(f"[{i}/{len(todo)}] {row['key']} rewards {row['rewards']} cpu {row['train_cpu_s']} "
              f"({el / i:.0f} s wall per cell)", flush=True)  # fmt: skip
    print(report(log.rows, log_head(a)))
    return 0


def log_head(a: argparse.Namespace) -> dict:
    import json

    with open(a.log) as f:
        return json.loads(f.readline())


def report(rows: list[dict], head: dict) -> str:
    """The proxy's self-agreement, spread and cost over ``rows``, as markdown lines.

    With two or more seeds per cell: Kendall tau of seed 0 against seed 1 (one training each),
    with a bootstrap interval; with four or more, the tau of the mean of seeds 0-1 against the
    mean of seeds 2-3 (two fresh trainings each: what a 2-seed table repeats at); and the variance
    components (between cells, a training's own noise, the held-out set's binomial share) with
    Spearman-Brown's prediction of the tau of a mean of k seeds against k fresh ones.
    """
    from nasnet_det.search.ranking import rank_correlation
    from nasnet_det.search.tabular import repeatability, split_mean_tau

    if not rows:
        return "no cells stored yet"
    r = 100 * np.array([row["rewards"] for row in rows])  # [cells, seeds], percent
    cpu = np.array([row["train_cpu_s"] for row in rows])
    lines = [f"proxy: {head['proxy']}", f"cells: {len(rows)}, trainings per cell: {r.shape[1]}"]
    seeds = head["proxy"]["seeds"]
    if r.shape[1] >= 2:
        c = rank_correlation(r[:, 0], r[:, 1], names=("seed-0 reward", "seed-1 reward"))
        ci = _tau_interval(r[:, 0], r[:, 1]) if c.defined else ""
        lines.append(f"one training vs one: seed {seeds[0]} vs seed {seeds[1]}: {c.describe()}{ci}")
        if r.shape[1] > 2 and len(r) >= 5:
            from scipy import stats

            pairs = [(i, j) for i in range(r.shape[1]) for j in range(i + 1, r.shape[1])]
            taus = [stats.kendalltau(r[:, i], r[:, j]).statistic for i, j in pairs]
            lines.append(f"one vs one, all {len(pairs)} seed pairs: tau mean {np.mean(taus):.2f} "
                         f"(range {min(taus):.2f}-{max(taus):.2f})")  # fmt: skip
            r1 = float(np.sin(np.pi / 2 * np.mean(taus)))  # Greiner's relation, normal scores
            sb = [2 / np.pi * np.arcsin(k * r1 / (1 + (k - 1) * r1)) for k in (2, 4, 8)]
            lines.append(
                "Spearman-Brown from that measured tau (r = sin(pi tau / 2)), mean of k vs k "
                f"fresh: k=2: {sb[0]:.2f}, k=4: {sb[1]:.2f}, k=8: {sb[2]:.2f}"
            )
        d = np.abs(r[:, 0] - r[:, 1])
        lines.append(f"seed-to-seed |difference|: median {np.median(d):.1f}, max {d.max():.1f} "
                     "accuracy points")  # fmt: skip
        for k in range(2, r.shape[1] // 2 + 1):
            if len(r) >= 5:
                tau, lo, hi = split_mean_tau(r, k)
                lines.append(f"mean of {k} trainings vs mean of {k} fresh ones (seeds "
                             f"{seeds[:k]} vs {seeds[k:2 * k]}): Kendall tau {tau:.2f} "
                             f"(95% bootstrap interval {lo:.2f}-{hi:.2f})")  # fmt: skip
    if r.shape[1] >= 2 and len(r) >= 2:
        rep = repeatability(r, head["proxy"]["val_size"])
        pred = ", ".join(f"k={k}: {rep.predicted_tau(k):.2f}" for k in (1, 2, 3, 4, 6, 8))
        need = rep.seeds_for(0.8)
        lines.append(
            f"variance components: between cells SD {np.sqrt(rep.cell_var):.1f}, one "
            f"training's noise SD {np.sqrt(rep.noise_var):.1f} (of which held-out binomial SE "
            f"{rep.eval_se:.1f}) points; seed shifts "
            f"{', '.join(f'{v:+.1f}' for v in rep.seed_shift)}; ICC {rep.icc:.2f}"
        )
        lines.append(f"Spearman-Brown predicted tau, mean of k vs k fresh: {pred}; tau >= 0.8 "
                     f"needs k = {need if need else '> 64'}")  # fmt: skip
    m = r.mean(1)
    p10, p90 = np.percentile(m, [10, 90])
    lines.append(
        f"mean reward: min {m.min():.1f}, max {m.max():.1f} (spread {np.ptp(m):.1f} "
        f"points), 10-90th percentile {p10:.1f}-{p90:.1f}, median {np.median(m):.1f}"
    )
    per = cpu.ravel()
    lines.append(
        f"CPU-seconds per training: median {np.median(per):.1f} "
        f"(range {per.min():.1f}-{per.max():.1f}); per cell (all seeds) median "
        f"{np.median(cpu.sum(1)):.1f}; total {cpu.sum() / 3600:.2f} CPU-hours; 1,000 cells at "
        f"k trainings each: {np.median(per) * 1000 / 3600:.1f} x k CPU-hours"
    )
    return "\n".join(lines)


def _tau_interval(a: np.ndarray, b: np.ndarray) -> str:
    """``; tau 95% bootstrap interval LO-HI`` (cells resampled in pairs, percentile method)."""
    from scipy import stats

    res = stats.bootstrap((a, b), lambda x, y: stats.kendalltau(x, y).statistic, paired=True,
                          vectorized=False, n_resamples=2000, method="percentile",
                          rng=np.random.default_rng(0))  # fmt: skip
    lo, hi = res.confidence_interval
    return f"; tau 95% bootstrap interval {lo:.2f}-{hi:.2f}"


def read_rows(path: str) -> list[dict]:
    """The rows of a table log, read only: a last line still being written is skipped, the file
    is never truncated (a build may be appending to it)."""
    import json

    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[1:-1]  # the header; the (possibly partial) tail
    return [json.loads(line) for line in lines if line.strip()]


def cmd_report(a: argparse.Namespace) -> int:
    print(report(read_rows(a.log), log_head(a)))
    return 0


def transfer_entry(head: dict, rows: list[dict], folders: list[str]) -> dict:
    """The table head's ``transfer`` entry from finished transfer-study folders: per table cell
    (by key) its seeds with crop accuracy (%), box AP and AP50 as the study trained them; NASNet-A
    (not in the table's space) under ``reference``; the study's budget."""
    from nasnet_det.search.space import SearchSpace

    from nasnet_det.genotypes import Genotype

    space = SearchSpace.from_config(head["space"])
    keys = {r["key"] for r in rows}
    cells: dict[str, dict] = {}
    reference: dict[str, dict] = {}
    budgets = []
    for folder in folders:
        plan = json.loads((Path(folder) / "study.json").read_text())
        budgets.append({k: v for k, v in plan["budget"].items() if k != "seed"})
        for f in sorted((Path(folder) / "cells").glob("*.json")):
            rec = json.loads(f.read_text())
            try:
                key = space.key(space.encode(Genotype.from_dict(rec["genotype"])))
            except ValueError:  # outside the table's space: the reference cell
                key = None
            target = cells if key in keys else reference
            entry = target.setdefault(key if key in keys else rec["cell"], {
                "seeds": [], "accuracy_pct": [], "AP": [], "AP50": []})  # fmt: skip
            entry["seeds"].append(rec["seed"])
            entry["accuracy_pct"].append(round(100 * rec["accuracy"], 3))
            entry["AP"].append(round(rec["AP"], 3))
            entry["AP50"].append(round(rec["AP50"], 3))
    if any(b != budgets[0] for b in budgets):
        raise ValueError("--transfer: the studies were trained with different budgets")
    return {"what": "tools/transfer_study.py: the demo's classifier (a) and Faster R-CNN (b)",
            "budget": budgets[0] if budgets else {}, "cells": cells, "reference": reference}


def cmd_ship(a: argparse.Namespace) -> int:
    from nasnet_det.search.tabular import TABLE_FILE, write_table

    rows = read_rows(a.log)
    head = log_head(a)
    if a.transfer:
        head["transfer"] = transfer_entry(head, rows, a.transfer)
    path = write_table(a.output or TABLE_FILE, head, rows)
    extra = f", detection AP of {len(head['transfer']['cells'])} cells" if a.transfer else ""
    print(f"{len(rows)} cells -> {path} ({path.stat().st_size / 1024:.1f} KiB{extra})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build")
    b.add_argument("--log", required=True, help="the append-only JSON-lines file (resumed)")
    b.add_argument("--cells", type=int, required=True)
    b.add_argument("--sample-seed", type=int, default=0)
    d = _default_proxy()
    b.add_argument("--image-size", type=int, default=d.image_size)
    b.add_argument("--train-size", type=int, default=d.train_size)
    b.add_argument("--val-size", type=int, default=d.val_size)
    b.add_argument("--num-cells", type=int, default=d.num_cells, help="N: cells per stack")
    b.add_argument("--filters", type=int, default=d.num_conv_filters)
    b.add_argument("--epochs", type=int, default=d.epochs)
    b.add_argument("--batch-size", type=int, default=d.batch_size)
    b.add_argument("--lr", type=float, default=d.lr)
    b.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    for name in ("report", "ship"):
        s = sub.add_parser(name)
        s.add_argument("--log", required=True)
        if name == "ship":
            s.add_argument("--output", default=None)
            s.add_argument("--transfer", nargs="+", default=None, metavar="STUDY",
                           help="transfer-study folders: AP per cell, in the head")  # fmt: skip
    a = p.parse_args(argv)
    return {"build": cmd_build, "report": cmd_report, "ship": cmd_ship}[a.what](a)


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    sys.exit(main())
