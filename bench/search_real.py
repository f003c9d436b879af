#!/usr/bin/env python
"""Search strategies on real trained children, and how well cheap scores rank them (issue 12).

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
import math
import sys
import time
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
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------- strategies
def run_strategy(name: str, seed: int, children: int, folder: str) -> dict:
    """One search run; returns its record (also stored in ``folder/{name}_s{seed}.json``)."""
    import torch
    from nasnet_det.search.strategies import build_strategy

    from nasnet_det.io import atomic_write_json

    torch.set_num_threads(1)
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
    t0 = time.time()
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
                print(
                    f"{name} seed {seed}: {len(known)}/{children} children, reward "
                    f"{row['reward']:.4f}, best {max(known.values()):.4f} "
                    f"({time.time() - t0:.0f} s)",
                    flush=True,
                )
        strategy.observe(kids, rewards)
    rec["done"] = True
    atomic_write_json(path, rec)
    return rec


def _unit(args: tuple) -> str:
    name, seed, children, folder = args
    run_strategy(name, seed, children, folder)
    return f"{name} seed {seed}"


def cmd_strategies(a: argparse.Namespace) -> None:
    folder = Path(a.output) / "strategies"
    folder.mkdir(parents=True, exist_ok=True)
    units = [(n, s, a.children, str(folder)) for s in range(a.seeds) for n in a.strategies]
    if a.jobs <= 1:
        for u in units:
            print("finished", _unit(u), flush=True)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(a.jobs, maxtasksperchild=1) as pool:
        for msg in pool.imap_unordered(_unit, units):
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


def cmd_ranking(a: argparse.Namespace) -> None:
    import torch

    from nasnet_det.io import atomic_write_json

    torch.set_num_threads(1)
    space = _space()
    folder = Path(a.output) / "ranking"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.ranking_seed)
    kids: list[tuple[int, ...]] = []
    while len(kids) < a.ranking_children:
        d = space.sample(rng)
        if d not in kids:
            kids.append(d)
    # Standalone scores: (label, epochs, seed).
    variants = [
        (f"{a.full_epochs} epochs", a.full_epochs, CHILD_SEED),
        ("2 epochs (search proxy)", 2, CHILD_SEED),
        ("2 epochs, other seed", 2, CHILD_SEED + 1),
        ("1 epoch", 1, CHILD_SEED),
    ]
    path = folder / "standalone.json"
    rec = _load(path) or {}
    for label, epochs, seed in variants:
        rows = rec.setdefault(label, {})
        for i, d in enumerate(kids):
            key = space.key(d)
            if key in rows:
                continue
            rows[key] = _train(space, d, epochs, seed)
            atomic_write_json(path, rec)
            print(f"{label}: child {i + 1}/{len(kids)}: {rows[key]['reward']:.4f}", flush=True)
    ws_path = folder / "weight_sharing.json"
    ws = _load(ws_path) or {}
    for sched in a.ws_schedules:
        if sched in ws:
            continue
        ws[sched] = shared_scores(space, kids, sched, a.ws_checkpoints)
        atomic_write_json(ws_path, ws)


def shared_scores(space, kids, schedule: str, checkpoints: list[int]) -> dict:
    """Train one shared network with ``schedule`` (``uniform``: every step a uniformly random
    child; ``candidates``: the scored children in turn, as a search round does) and score every
    child after each number of steps in ``checkpoints``."""
    import torch
    from nasnet_det.search.weight_sharing import SharedScorer

    scorer = SharedScorer(space, WS, DATA, seed=0)
    rng = np.random.default_rng(1)
    out: dict[str, Any] = {"checkpoints": {}}
    done, t_cpu = 0, time.process_time()
    for target in checkpoints:
        n = target - done
        if schedule == "uniform":
            paths = [space.sample(rng) for _ in range(n)]
        else:
            paths = [kids[(done + j) % len(kids)] for j in range(n)]
        scorer.cfg = {**scorer.cfg, "steps_per_round": n}
        scorer.train_round(paths)
        done = target
        train_cpu = time.process_time() - t_cpu
        t1 = time.process_time()
        with torch.no_grad():
            scores = {space.key(d): scorer.score(d) for d in kids}
        out["checkpoints"][str(target)] = {
            "scores": scores,
            "train_cpu_s": train_cpu,
            "score_cpu_s": time.process_time() - t1,
        }
        print(f"weight sharing ({schedule}): {target} steps scored", flush=True)
    return out


# ---------------------------------------------------------------------------------- report
def _best_so_far(run: dict) -> list[float]:
    best, out = -math.inf, []
    for p in run["proposals"]:
        if not p["duplicate"]:
            best = max(best, p["reward"])
            out.append(best)
    return out


def _fmt(xs) -> str:
    xs = np.asarray(xs, dtype=float)
    return f"{100 * xs.mean():.1f} ({100 * xs.min():.1f}-{100 * xs.max():.1f})"


def report_strategies(folder: Path, plot: str | None) -> str:
    runs: dict[str, list[dict]] = {}
    for f in sorted(folder.glob("*_s*.json")):
        r = json.loads(f.read_text())
        if r["done"]:
            runs.setdefault(r["setup"]["strategy"], []).append(r)
    if not runs:
        return "no finished strategy runs\n"
    n = min(len(_best_so_far(r)) for rs in runs.values() for r in rs)
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
        curves = [_best_so_far(r)[:n] for r in rs]
        top5 = []
        for r in rs:
            rew = sorted((p["reward"] for p in r["proposals"] if not p["duplicate"]), reverse=True)
            top5.append(float(np.mean(rew[:5])))
        cpu_h = [sum(p["cpu_s"] for p in r["proposals"]) / 3600 for r in rs]
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
        c = 100 * np.array([_best_so_far(r)[:n] for r in runs[name]])
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


def report_ranking(folder: Path) -> str:
    from nasnet_det.search.ranking import rank_correlation

    sa, ws = _load(folder / "standalone.json"), _load(folder / "weight_sharing.json")
    if not sa:
        return "no ranking results\n"
    ref_label = next(iter(sa))
    ref = sa[ref_label]
    keys = sorted(ref)
    y = [ref[k]["reward"] for k in keys]
    lines = [
        f"Reference: standalone accuracy after {ref_label} ({len(keys)} children).",
        "",
        "| score | Kendall tau | Spearman rho | CPU-seconds per child |",
        "| --- | --- | --- | --- |",
    ]
    for label, rows in sa.items():
        if label == ref_label or set(rows) != set(keys):
            continue
        c = rank_correlation([rows[k]["reward"] for k in keys], y)
        cpu = np.mean([rows[k]["cpu_s"] for k in keys])
        lines.append(f"| standalone, {label} | {c.tau:.2f} | {c.rho:.2f} | {cpu:.1f} |")
    proxy = sa.get("2 epochs (search proxy)")
    for sched, res in (ws or {}).items():
        for steps, cp in res["checkpoints"].items():
            s = [cp["scores"][k] for k in keys]
            c = rank_correlation(s, y)
            extra = ""
            if proxy and set(proxy) == set(keys):
                cp2 = rank_correlation(s, [proxy[k]["reward"] for k in keys])
                extra = f" (vs 2-epoch proxy: tau {cp2.tau:.2f})"
            cpu = (cp["train_cpu_s"] + cp["score_cpu_s"]) / len(keys)
            lines.append(
                f"| weight sharing, {sched} paths, {steps} steps{extra} | {c.tau:.2f} | "
                f"{c.rho:.2f} | {cpu:.1f} |"
            )
    return "\n".join(lines) + "\n"


def cmd_report(a: argparse.Namespace) -> None:
    out = Path(a.output)
    print(report_strategies(out / "strategies", a.plot))
    print(report_ranking(out / "ranking"))


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
    r.add_argument("--ranking-children", type=int, default=32)
    r.add_argument("--ranking-seed", type=int, default=123)
    r.add_argument("--full-epochs", type=int, default=6)
    r.add_argument("--ws-schedules", nargs="+", default=["uniform", "candidates"])
    r.add_argument("--ws-checkpoints", type=int, nargs="+", default=[200, 800, 2400])
    o = sub.add_parser("report")
    o.add_argument("--output", required=True)
    o.add_argument("--plot", default=None)
    a = p.parse_args(argv)
    {"strategies": cmd_strategies, "ranking": cmd_ranking, "report": cmd_report}[a.what](a)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
