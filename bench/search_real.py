#!/usr/bin/env python
"""Search strategies on real trained children, and how well cheap scores rank them.

    python bench/search_real.py strategies --output output/search_real --jobs 2
    python bench/search_real.py ranking --output output/search_real
    python bench/search_real.py report --output output/search_real \
        --plot docs/images/search_real.png

``strategies``: random search, regularized evolution, PPO and REINFORCE, each for ``--seeds``
seeds, every run training the same number of distinct children (``--children``) on the digits
proxy below. A child's accuracy is a function of its architecture only (every child trains with
the same seed), so strategies are compared on the same objective; a child proposed twice in a run
is not retrained (as in the search runner) and does not count. One JSON file per run is rewritten
atomically after every child: a killed run resumes by replaying its stored children through the
strategy (which then proposes what it proposed before) and trains only the missing ones.

``ranking``: ``--ranking-children`` uniformly sampled children of the same space, trained
standalone with the full proxy (``--full-epochs``), the search's proxy (2 epochs, two training
seeds: the noise ceiling), 1 epoch, and scored by the weight-sharing network after several
amounts of shared training; Kendall's tau and Spearman's rho of every score against the full
proxy. Resumable the same way (one record per trained child).

``report``: the tables (markdown) and the best-so-far plot from the stored results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

STRATEGIES = ("random", "evolution", "ppo", "reinforce")

#: The proxy: the demo's space and child (3 blocks, 8 ops; 12 px digits, one cell per stack, 8
#: filters, 2 epochs over 600 images, accuracy on 400 held-out images), frozen here so that the
#: benchmark does not drift when the demo changes.
SPACE = {
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
}
DATA = {"name": "digits", "image_size": 12, "train_size": 600, "val_size": 400}
CHILD = {
    "num_cells": 1,
    "num_conv_filters": 8,
    "stem_multiplier": 1.0,
    "epochs": 2,
    "batch_size": 32,
    "eval_batch_size": 400,
    "lr": 0.1,
}
CHILD_SEED = 0
#: Every strategy updates on rounds of 4 children. Evolution: the demo's population; PPO and
#: REINFORCE: the paper's controller settings otherwise.
STRATEGY_PARAMS: dict[str, dict[str, Any]] = {
    "random": {"batch_size": 4},
    "evolution": {"batch_size": 4, "population_size": 12, "sample_size": 4},
    "ppo": {"batch_size": 4},
    "reinforce": {"batch_size": 4},
}


def _space():
    from nasnet_det.search.space import SearchSpace

    return SearchSpace.from_config(SPACE)


def _train(space, decisions, epochs: int = 2, seed: int = CHILD_SEED) -> dict:
    from nasnet_det.search.child import train_child

    t_cpu, t_wall = time.process_time(), time.time()
    out = train_child(space.decode(decisions), {**CHILD, "epochs": epochs}, DATA, seed)
    return {
        "reward": out["reward"],
        "cpu_s": time.process_time() - t_cpu,
        "wall_s": time.time() - t_wall,
    }


def _load(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a results file of this benchmark: {e}") from None


# ---------------------------------------------------------------------------------- strategies
def run_strategy(name: str, seed: int, children: int, folder: str) -> Iterator[int]:
    """One search run, a round per ``next()`` (yields the distinct children trained so far);
    its record is rewritten to ``folder/{name}_s{seed}.json`` after every child."""
    from nasnet_det.search.strategies import build_strategy

    from nasnet_det.io import atomic_write_json

    space = _space()
    path = Path(folder) / f"{name}_s{seed}.json"
    stored = _load(path)
    setup = {"strategy": name, "seed": seed, "children": children, "space": SPACE, "data": DATA}
    setup.update(child=CHILD, params=STRATEGY_PARAMS[name])
    if stored is not None and stored["setup"] != setup:
        raise ValueError(f"{path} was written with other settings; use another --output")
    old = stored["proposals"] if stored else []
    rec = {"setup": setup, "proposals": [], "done": False}
    strategy = build_strategy(name, space, seed, **STRATEGY_PARAMS[name])
    known: dict[str, float] = {}
    while len(known) < children and len(rec["proposals"]) < 10 * children:
        n = min(strategy.batch_size, children - len(known))
        kids = strategy.propose(n)
        rewards = []
        for d in kids:
            key, i = space.key(d), len(rec["proposals"])
            if i < len(old):
                if old[i]["key"] != key:
                    raise ValueError(f"{path}: replay diverged at proposal {i}")
                row = old[i]
            elif key in known:
                row = {"key": key, "reward": known[key], "duplicate": True, "cpu_s": 0.0}
            else:
                row = {"key": key, "duplicate": False, **_train(space, d)}
            known.setdefault(key, row["reward"])
            rec["proposals"].append(row)
            rewards.append(row["reward"])
            if i >= len(old):
                atomic_write_json(path, rec)
        strategy.observe(kids, rewards)
        if len(rec["proposals"]) > len(old):
            print(
                f"{name} seed {seed}: {len(known)}/{children} children, best "
                f"{max(known.values()):.4f}",
                flush=True,
            )
        yield len(known)
    rec["done"] = True
    atomic_write_json(path, rec)


def _group(units: list[tuple]) -> str:
    """Advance every run of ``units`` one round in turn, so that all runs have trained about
    the same number of children whenever the benchmark is stopped."""
    import torch

    torch.set_num_threads(1)
    runs = [run_strategy(*u) for u in units]
    while runs:
        for r in list(runs):
            if next(r, None) is None:
                runs.remove(r)
    return ", ".join(f"{u[0]} seed {u[1]}" for u in units)


def cmd_strategies(a: argparse.Namespace) -> None:
    folder = Path(a.output) / "strategies"
    folder.mkdir(parents=True, exist_ok=True)
    units = [(n, s, a.children, str(folder)) for s in range(a.seeds) for n in a.strategies]
    if a.jobs <= 1:
        print("finished", _group(units), flush=True)
        return
    import multiprocessing as mp

    groups = [units[j :: a.jobs] for j in range(a.jobs)]
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for msg in pool.imap_unordered(_group, groups):
            print("finished", msg, flush=True)


# ---------------------------------------------------------------------------------- ranking
WS = {
    "num_cells": 1,
    "num_conv_filters": 8,
    "steps_per_round": 50,
    "batch_size": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "grad_clip": 5.0,
    "eval_batches": 13,  # all 400 held-out images, the standalone reward's images
    "retrain_top": 0,
    "device": "cpu",
}


REFERENCE = "2 epochs (search proxy)"


def _ranking_children(space, n: int) -> list[tuple[int, ...]]:
    """The first ``n`` distinct children of random search with seed 0 (uniform samples of the
    space), so that their search-proxy accuracies come from the strategies benchmark."""
    from nasnet_det.search.strategies import build_strategy

    strategy = build_strategy("random", space, 0, **STRATEGY_PARAMS["random"])
    kids: list[tuple[int, ...]] = []
    while len(kids) < n:
        for d in strategy.propose(min(strategy.batch_size, n - len(kids))):
            if d not in kids:
                kids.append(d)
    return kids


def cmd_ranking(a: argparse.Namespace) -> None:
    import torch

    from nasnet_det.io import atomic_write_json

    torch.set_num_threads(1)
    space = _space()
    out = Path(a.output)
    folder = out / "ranking"
    folder.mkdir(parents=True, exist_ok=True)
    kids = _ranking_children(space, a.ranking_children)
    path, ws_path = folder / "standalone.json", folder / "weight_sharing.json"
    rec, ws = _load(path) or {}, _load(ws_path) or {}
    searched = _load(out / "strategies" / "random_s0.json") or {"proposals": []}
    rows = rec.setdefault(REFERENCE, {})
    for p in searched["proposals"]:
        if not p["duplicate"] and p["key"] in {space.key(d) for d in kids}:
            rows.setdefault(p["key"], {k: p[k] for k in ("reward", "cpu_s", "wall_s")})
    # Cheapest and most telling first: each step is complete before the next starts.
    steps = [(REFERENCE, 2, CHILD_SEED), ("1 epoch", 1, CHILD_SEED), "uniform"]
    steps += [("2 epochs, another training seed", 2, CHILD_SEED + 1)]
    steps += [(f"{a.full_epochs} epochs", a.full_epochs, CHILD_SEED), "fair", "candidates"]
    for step in steps:
        if isinstance(step, str):
            if step not in ws:
                ws[step] = shared_scores(space, kids, step, a.ws_checkpoints, a.recal_batches)
                atomic_write_json(ws_path, ws)
            continue
        label, epochs, seed = step
        rows = rec.setdefault(label, {})
        for i, d in enumerate(kids):
            key = space.key(d)
            if key not in rows:
                rows[key] = _train(space, d, epochs, seed)
                atomic_write_json(path, rec)
                print(f"{label}: child {i + 1}/{len(kids)}: {rows[key]['reward']:.4f}", flush=True)
        atomic_write_json(path, rec)


def shared_scores(space, kids, schedule: str, checkpoints: list[int], recal: int) -> dict:
    """Train one shared network with ``schedule`` and score every child after each number of
    steps in ``checkpoints``, with each held-out batch's own BN statistics and with the child's
    statistics re-estimated on ``recal`` training batches.

    Schedules: ``uniform`` and ``fair`` (:func:`~nasnet_det.search.weight_sharing.
    training_paths`), ``candidates`` (the scored children in turn, as a search round does).
    """
    from nasnet_det.search.weight_sharing import (
        SharedScorer,
        scores_over_training,
        training_paths,
    )

    scorer = SharedScorer(space, WS, DATA, seed=0)
    rng = np.random.default_rng(1)

    def draw(done: int, n: int) -> list[tuple[int, ...]]:
        if schedule == "candidates":
            return [kids[(done + j) % len(kids)] for j in range(n)]
        return training_paths(space, schedule, rng, n)

    out = scores_over_training(scorer, kids, draw, checkpoints, recal)
    print(f"weight sharing ({schedule}): {list(checkpoints)} steps scored", flush=True)
    return out


# ---------------------------------------------------------------------------------- report
def _rewards(run: dict, n: int | None = None) -> list[float]:
    """Rewards of the run's distinct children in training order (the first ``n``)."""
    return [p["reward"] for p in run["proposals"] if not p["duplicate"]][:n]


def _best_so_far(run: dict, n: int | None = None) -> list[float]:
    return list(np.maximum.accumulate(_rewards(run, n)))


def _fmt(xs) -> str:
    xs = np.asarray(xs, dtype=float)
    return f"{100 * xs.mean():.1f} ({100 * xs.min():.1f}-{100 * xs.max():.1f})"


def report_strategies(folder: Path, plot: str | None) -> str:
    runs: dict[str, list[dict]] = {}
    for f in sorted(folder.glob("*_s*.json")):
        r = _load(f)
        if _rewards(r):
            runs.setdefault(r["setup"]["strategy"], []).append(r)
    if not runs:
        return "no strategy runs\n"
    # Every run is cut to the same number of trained children (runs advance round by round).
    n = min(len(_rewards(r)) for rs in runs.values() for r in rs)
    marks = sorted({m for m in (n // 4, n // 2, n) if m > 0})
    lines = [
        "| strategy | seeds | "
        + " | ".join(f"best after {m}" for m in marks)
        + f" | mean of top 5 after {n} | CPU-hours per run |",
        "| --- | --- |" + " --- |" * (len(marks) + 2),
    ]
    for name in STRATEGIES:
        if name not in runs:
            continue
        rs = runs[name]
        curves = [_best_so_far(r, n) for r in rs]
        top5 = [float(np.mean(sorted(_rewards(r, n), reverse=True)[:5])) for r in rs]
        cpu_h = []
        for r in rs:
            trained = [p for p in r["proposals"] if not p["duplicate"]][:n]
            cpu_h.append(sum(p["cpu_s"] for p in trained) / 3600)
        cells = [_fmt([c[m - 1] for c in curves]) for m in marks]
        lines.append(
            f"| {name} | {len(rs)} | " + " | ".join(cells) + f" | {_fmt(top5)} | "
            f"{np.mean(cpu_h):.3f} |"
        )
    text = "\n".join(lines) + "\n\nHeld-out accuracy in %: mean over seeds (min-max).\n"
    if plot:
        _plot(runs, n, plot)
    return text


def _plot(runs: dict, n: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasnet_det.io import atomic_call

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    x = np.arange(1, n + 1)
    for name in STRATEGIES:
        if name not in runs:
            continue
        c = 100 * np.array([_best_so_far(r, n) for r in runs[name]])
        (line,) = ax.plot(x, c.mean(0), label=f"{name} ({len(c)} seeds)")
        ax.fill_between(x, c.min(0), c.max(0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("children trained")
    ax.set_ylabel("best held-out accuracy so far (%)")
    ax.set_title("Digits proxy: best-so-far, mean over seeds, band = min-max")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_call(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)


def report_ranking(folder: Path, full_label: str) -> str:
    from nasnet_det.search.ranking import rank_correlation

    sa, ws = _load(folder / "standalone.json") or {}, _load(folder / "weight_sharing.json") or {}
    keys = sorted(sa.get(REFERENCE, {}))
    if not keys:
        return "no ranking results\n"
    scores: dict[str, tuple[list[float], float]] = {}  # label -> (scores, CPU-s per child)
    for label, rows in sa.items():
        if set(rows) >= set(keys):
            cpu = float(np.mean([rows[k]["cpu_s"] for k in keys]))
            scores[f"standalone, {label}"] = ([rows[k]["reward"] for k in keys], cpu)
    for sched, res in ws.items():
        for steps, cp in res["checkpoints"].items():
            cpu = (cp["train_cpu_s"] + cp["score_cpu_s"]) / len(keys)
            label = f"weight sharing, {sched} paths, {steps} steps"
            scores[label] = ([cp["scores"][k] for k in keys], cpu)
            if "recal_scores" in cp:
                cpu += (cp["recal_cpu_s"] - cp["score_cpu_s"]) / len(keys)
                label += f", BN recalibrated on {res['recal_batches']} batches"
                scores[label] = ([cp["recal_scores"][k] for k in keys], cpu)
    refs = [f"standalone, {REFERENCE}", f"standalone, {full_label}"]
    refs = [r for r in refs if r in scores]
    head = " | ".join(f"tau / rho vs {r.split(', ', 1)[1]}" for r in refs)
    lines = [
        f"{len(keys)} children (uniform samples of the space).",
        "",
        f"| score | {head} | CPU-seconds per child |",
        "| --- | " + "--- | " * len(refs) + "--- |",
    ]
    for label, (x, cpu) in scores.items():
        cells = []
        for r in refs:
            if r == label:
                cells.append("-")
            else:
                c = rank_correlation(x, scores[r][0], names=(label, r))
                cells.append(f"{c.tau:.2f} / {c.rho:.2f}" if c.defined else c.describe())
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {cpu:.1f} |")
    return "\n".join(lines) + "\n"


def cmd_report(a: argparse.Namespace) -> None:
    out = Path(a.output)
    print(report_strategies(out / "strategies", a.plot))
    print(report_ranking(out / "ranking", f"{a.full_epochs} epochs"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("strategies")
    s.add_argument("--output", required=True)
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--children", type=int, default=64)
    s.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    s.add_argument("--jobs", type=int, default=1, help="runs trained at once (1 thread each)")
    r = sub.add_parser("ranking")
    r.add_argument("--output", required=True)
    r.add_argument("--ranking-children", type=int, default=30)
    r.add_argument("--full-epochs", type=int, default=4)
    r.add_argument("--ws-checkpoints", type=int, nargs="+", default=[250, 1000, 2000])
    r.add_argument("--recal-batches", type=int, default=8, help="BN recalibration batches")
    o = sub.add_parser("report")
    o.add_argument("--output", required=True)
    o.add_argument("--plot", default=None)
    o.add_argument("--full-epochs", type=int, default=4)
    a = p.parse_args(argv)
    {"strategies": cmd_strategies, "ranking": cmd_ranking, "report": cmd_report}[a.what](a)
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import run_tool

    raise SystemExit(run_tool("search_real", lambda: main(sys.argv[1:])))
