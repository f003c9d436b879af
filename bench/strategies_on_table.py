#!/usr/bin/env python
"""Search strategies compared on the tabular benchmark, as NAS papers compare them.

Each strategy runs restricted to the table's cells (``Strategy.restrict``, what
``execution.backend: tabular`` does), for ``--seeds`` seeds, until it has queried the largest
budget of distinct cells. A query is one distinct cell (a re-proposed cell is answered from the
earlier result and costs nothing, as in the search runner). A child's observed reward is the
table's reward of the training seed the runner would give it (``child_seed(seed, id) % seeds``),
so a strategy sees one training's luck, as a live search does.

At each budget (10/25/50/100/200 queries, those above a fifth of the table dropped, so random
search cannot enumerate it): the regret of the incumbent (the queried cell with the best
observed reward) to the table's best mean reward, in accuracy points (mean and 25-75% band over
seeds); the probability that a top-1% cell (by mean reward) was queried; and a two-sided
Mann-Whitney U test of each strategy's regret at the largest budget against random's.

PPO runs with the paper's settings and with a learning rate tuned on separate seeds
(``--tune-seeds``, from ``--lrs``). Prints a table, writes ``regret.png`` and ``results.json``
into ``--output``. Results and the command: docs/BENCHMARKS.md, "A proxy that repeats".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from nasnet_det.search.runner import child_seed
from nasnet_det.search.strategies import build_strategy
from nasnet_det.search.tabular import Table, TableSupport, load_table

BUDGETS = (10, 25, 50, 100, 200)
ROUND = 5  # children per round (and per update) of every strategy but paper-setting PPO
STALL = 10  # rounds without a new cell after which a run counts as stalled


def strategy_settings(evo_p: int, evo_s: int, tuned_lr: float) -> dict[str, tuple[str, dict]]:
    """``label: (strategy name, parameters)`` of the compared strategies."""
    return {
        "random": ("random", {"batch_size": ROUND}),
        f"evolution (P={evo_p}, S={evo_s})": (
            "evolution", {"batch_size": ROUND, "population_size": evo_p, "sample_size": evo_s}),
        "ppo (paper: lr 3.5e-4, batch 20)": ("ppo", {}),
        f"ppo (tuned: lr {tuned_lr:g}, batch {ROUND})": (
            "ppo", {"batch_size": ROUND, "lr": tuned_lr}),
        f"reinforce (lr 3.5e-4, batch {ROUND})": ("reinforce", {"batch_size": ROUND}),
    }  # fmt: skip


def run_one(table: Table, support: TableSupport, name: str, params: dict, seed: int,
            queries: int) -> list[tuple[str, float]]:  # fmt: skip
    """``(cell, observed reward)`` of the distinct cells one seeded run queries, in order, until
    ``queries`` of them; a run whose last ``STALL`` rounds brought no new cell (a collapsed
    policy re-proposing its few cells) stops short."""
    strategy = build_strategy(name, support.space, seed, **params).restrict(support)
    observed: dict[str, float] = {}
    order: list[str] = []
    proposed = idle = 0
    while len(order) < queries and idle < STALL:
        before = len(order)
        kids = strategy.propose(strategy.batch_size)
        rewards = []
        for d in kids:
            key = support.space.key(d)
            if key not in observed:
                stored = table.rows[key]["rewards"]
                observed[key] = stored[child_seed(seed, proposed) % len(stored)]
                order.append(key)
            rewards.append(observed[key])
            proposed += 1
        strategy.observe(kids, rewards)
        idle = 0 if len(order) > before else idle + 1
    return [(k, observed[k]) for k in order[:queries]]


def curves(table: Table, runs: list[list], budgets: list[int]) -> dict[str, np.ndarray]:
    """Per run and budget: incumbent regret (points) and whether a top-1% cell was queried."""
    means = table.mean_rewards()
    best = max(means.values())
    top = set(sorted(means, key=lambda k: -means[k])[: max(1, math.ceil(0.01 * len(means)))])
    regret = np.zeros((len(runs), len(budgets)))
    hit = np.zeros((len(runs), len(budgets)), dtype=bool)
    for i, run in enumerate(runs):
        for j, b in enumerate(budgets):
            seen = run[:b]
            incumbent = max(seen, key=lambda kv: kv[1])[0]
            regret[i, j] = 100 * (best - means[incumbent])
            hit[i, j] = any(k in top for k, _ in seen)
    return {"regret": regret, "top1": hit, "queried": np.array([len(r) for r in runs])}


def tune_lr(table: Table, support: TableSupport, lrs: list[float], seeds: list[int],
            budget: int) -> tuple[float, dict[float, float]]:  # fmt: skip
    """The PPO learning rate (batch ``ROUND``) with the lowest mean regret at ``budget`` over
    ``seeds`` (kept apart from the evaluation seeds)."""
    scores = {}
    for lr in lrs:
        runs = [run_one(table, support, "ppo", {"batch_size": ROUND, "lr": lr}, s, budget)
                for s in seeds]  # fmt: skip
        scores[lr] = float(curves(table, runs, [budget])["regret"].mean())
    return min(scores, key=lambda lr: (scores[lr], lr)), scores


def compare(table: Table, a: argparse.Namespace, budgets: list[int]) -> dict[str, Any]:
    """Every strategy over the evaluation seeds: curves, and the test against random."""
    from scipy.stats import mannwhitneyu

    support = TableSupport.from_table(table)
    tune_seeds = list(range(1000, 1000 + a.tune_seeds))
    lr, tuning = tune_lr(table, support, a.lrs, tune_seeds, budgets[-1])
    out: dict[str, Any] = {"budgets": budgets, "tuned_lr": lr, "tuning": tuning, "rows": {}}
    for label, (name, params) in strategy_settings(a.evo_p, a.evo_s, lr).items():
        runs = [run_one(table, support, name, params, s, budgets[-1]) for s in range(a.seeds)]
        out["rows"][label] = curves(table, runs, budgets)
    base = out["rows"]["random"]["regret"][:, -1]
    for c in out["rows"].values():
        final = c["regret"][:, -1]
        same = np.array_equal(final, base) or np.ptp(np.r_[final, base]) == 0
        c["p"] = 1.0 if same else float(mannwhitneyu(final, base, alternative="two-sided").pvalue)
    return out


def report(table: Table, res: dict[str, Any], seeds: int) -> None:
    means = table.mean_rewards()
    print(f"table: {len(means)} cells, best mean reward {100 * max(means.values()):.2f}%; "
          f"{seeds} seeds per strategy; tuned PPO lr {res['tuned_lr']:g} "
          f"(mean regret on the tuning seeds: "
          + ", ".join(f"{k:g}: {v:.2f}" for k, v in res["tuning"].items()) + ")")  # fmt: skip
    b = res["budgets"]
    print("| strategy | " + " | ".join(f"regret @{x} (25-75%)" for x in b)
          + f" | P(top-1%) @{b[-1]} | MWU p vs random @{b[-1]} |")  # fmt: skip
    print("|---" * (len(b) + 3) + "|")
    for label, c in res["rows"].items():
        r = c["regret"]
        cells = [f"{r[:, j].mean():.2f} ({np.percentile(r[:, j], 25):.2f}-"
                 f"{np.percentile(r[:, j], 75):.2f})" for j in range(len(b))]  # fmt: skip
        short = int((c["queried"] < b[-1]).sum())
        note = f" ({short} runs stalled short of {b[-1]} cells)" if short else ""
        print(f"| {label}{note} | " + " | ".join(cells)
              + f" | {c['top1'][:, -1].mean():.2f} | {c['p']:.3g} |")  # fmt: skip


def plot(res: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    b = res["budgets"]
    for i, (label, c) in enumerate(res["rows"].items()):
        r = c["regret"]
        lo, mid, hi = np.percentile(r, 25, 0), r.mean(0), np.percentile(r, 75, 0)
        line = ax.plot(b, mid, marker="o", label=label)[0]
        if len(b) > 1:
            ax.fill_between(b, lo, hi, color=line.get_color(), alpha=0.15)
        else:  # one budget: the band as an error bar, strategies side by side
            x = b[0] * 1.04 ** (i - 2)
            line.set_xdata([x])
            ax.errorbar([x], mid, [mid - lo, hi - mid], color=line.get_color(), capsize=3)
    ax.set_xscale("log")
    ax.set_xticks(b, [str(x) for x in b])
    ax.set_xlabel("queries (distinct table cells)")
    ax.set_ylabel("regret to the table's best mean reward (points)")
    ax.minorticks_off()
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def slice_table(path: str | None, cells: int | None) -> Table:
    table = load_table(path)
    if cells is None:
        return table
    if not 1 <= cells <= len(table.rows):
        raise ValueError(f"--cells: expected 1..{len(table.rows)} (the table's size), got {cells}")
    keep = dict(list(table.rows.items())[:cells])
    return Table(table.head, keep, table.path)


def usable_budgets(budgets: list[int], size: int) -> list[int]:
    """Budgets up to a fifth of the table; prints those dropped; none left is an error."""
    cap = size // 5
    keep = sorted(b for b in set(budgets) if b <= cap)
    dropped = sorted(b for b in set(budgets) if b > cap)
    if dropped:
        print(f"budgets {dropped} dropped: above a fifth of the table ({size} cells -> at most "
              f"{cap} queries)")  # fmt: skip
    if not keep:
        raise ValueError(f"no budget fits: the table holds {size} cells, the smallest budget "
                         f"{min(budgets)} needs at least {5 * min(budgets)}")  # fmt: skip
    return keep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=None, help="table file (default: the shipped one)")
    p.add_argument("--cells", type=int, default=None, help="use the table's first N cells")
    p.add_argument("--seeds", type=int, default=20, help="evaluation seeds per strategy")
    p.add_argument("--tune-seeds", type=int, default=10, help="seeds for PPO's lr (apart)")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2])
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    p.add_argument("--evo-p", type=int, default=10, help="evolution's population size")
    p.add_argument("--evo-s", type=int, default=3, help="evolution's tournament size")
    p.add_argument("--output", required=True, help="folder for regret.png and results.json")
    a = p.parse_args(argv)
    try:
        if a.seeds < 2 or a.tune_seeds < 1 or min(a.budgets) < 1:
            raise ValueError("expected --seeds >= 2, --tune-seeds >= 1 and budgets >= 1")
        table = slice_table(a.table, a.cells)
        budgets = usable_budgets(a.budgets, len(table.rows))
        res = compare(table, a, budgets)
    except ValueError as e:
        print(f"strategies_on_table.py: {e}", file=sys.stderr)
        return 2
    report(table, res, a.seeds)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    plot(res, out / "regret.png", f"{len(table.rows)}-cell table, {a.seeds} seeds each")
    doc = {**res, "rows": {k: {n: np.asarray(v).tolist() for n, v in c.items()}
                           for k, c in res["rows"].items()}}  # fmt: skip
    doc["tuning"] = {str(k): v for k, v in res["tuning"].items()}
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {out / 'regret.png'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    sys.exit(main())
