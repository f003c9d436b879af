"""The transfer study: does a cell's proxy reward predict how it does on bigger tasks?

The paper's claim is in its title: a cell found on a small proxy transfers to ImageNet and
COCO. :class:`TransferStudy` measures that for a finished search or for the tabular benchmark
(``table``). It takes ``k`` cells across the reward range (best, quantiles, worst; a table's
cells ranked by their mean reward over the table's trainings) plus NASNet-A as a reference, and
trains each with the same budget, once per seed in ``seeds``, as

(a) a larger classifier on the proxy's bigger sibling task: the whole NASNet of the demo
    detector (N=1, F=16, ImageNet-style stem) classifying 64 px crops of the digits pasted on
    real photographs of the built-in detection set (the proxy: 8-filter CIFAR-style nets on
    clean 12 px digits);
(b) a Faster R-CNN detector on the built-in detection set, initialised from (a), as the paper
    initialised its detector from ImageNet.

NASNet-A is not in the searched space, so its proxy reward is measured by training it as one
more child with the search's (or the table's) own proxy settings. Each finished training is
stored at once (``cells/<name>.json``, atomically); a killed study started again skips those
and trains only the rest. The summary (``results.csv``, ``correlations.json``,
``transfer.png``) relates proxy reward to (a) accuracy and (b) box AP, each cell's mean over its
seeds, with Kendall's tau and Spearman's rho (a bootstrap 95% interval for rho), and states how
far a cell's seeds disagree.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nasnet_det.search.history import History
from nasnet_det.search.ranking import rank_correlation
from nasnet_det.search.runner import HISTORY_FILE

from nasnet_det.genotypes import Genotype, get_genotype
from nasnet_det.io import atomic_call, atomic_write_json, atomic_write_text

__all__ = [
    "Budget",
    "TransferStudy",
    "cell_means",
    "correlations",
    "demo_budget",
    "describe_correlation",
    "select_cells",
    "select_table_cells",
    "train_cell",
]

REFERENCE = "nasnet_a"


@dataclass(frozen=True)
class Budget:
    """What every cell gets: the same iterations and seed (and the datasets they run on)."""

    pretrain_iters: int = 100  # (a) classifier steps on digit crops (batch 32)
    detector_iters: int = 150  # (b) detector iterations (batch SOLVER.IMS_PER_BATCH)
    seed: int = 0
    train_set: str = "nasnet_digits_train"
    val_set: str = "nasnet_digits_val"

    def __post_init__(self) -> None:
        for key in ("pretrain_iters", "detector_iters"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")


def demo_budget() -> tuple[int, int]:
    """The demo's own budget: (classifier steps of :class:`~nasnet_det.pretrain.digits.Pretrain`,
    ``SOLVER.MAX_ITER`` of the demo config), what ``make demo`` trains its picked cell with."""
    from nasnet_det.detection.demo import demo_config
    from nasnet_det.pretrain.digits import Pretrain

    return Pretrain().iters, int(demo_config().SOLVER.MAX_ITER)


def read_search(folder: str | os.PathLike) -> tuple[list[dict], dict]:
    """The children of a finished search (its ``leaderboard.csv``) and its stored proxy
    settings (``child`` and ``data`` of the config in ``history.sqlite``)."""
    folder = Path(folder)
    board = folder / "leaderboard.csv"
    if not board.is_file() or not (folder / HISTORY_FILE).is_file():
        raise ValueError(
            f"--search {str(folder)!r} is not a finished search folder (expected "
            f"leaderboard.csv and {HISTORY_FILE} in it)"
        )
    rows = _read_leaderboard(board)
    history = History(folder / HISTORY_FILE, create=False)
    try:
        config = history.get_meta("config")
    finally:
        history.close()
    if not isinstance(config, dict) or "child" not in config or "data" not in config:
        raise ValueError(f"{str(folder / HISTORY_FILE)!r} holds no search config")
    return rows, {"child": config["child"], "data": config["data"], "seed": config["seed"]}


_COLUMNS = ("child_id", "reward", "status", "genotype")


def _read_leaderboard(board: Path) -> list[dict]:
    """The rows of a search's ``leaderboard.csv``, each trained child's fields checked (a
    hand-edited file is refused here, before the study writes anything)."""
    from nasnet_det.limits import read_input_bytes

    data = read_input_bytes(board, "text", "leaderboard")
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"leaderboard {str(board)!r} is not a CSV file we can read: {e}") from None
    missing = [c for c in _COLUMNS if rows and c not in rows[0]]
    if missing or not rows:
        raise ValueError(f"leaderboard {str(board)!r} has no rows or lacks columns {missing}")
    for line, r in enumerate(rows, start=2):
        if r["status"] != "ok" or r["reward"] in ("", None) or r.get("phase") == "shared":
            continue
        where = f"leaderboard {str(board)!r} line {line}"
        try:
            reward, child = float(r["reward"]), int(r["child_id"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: reward {r['reward']!r} and child_id {r['child_id']!r} must be a "
                "number and an integer"
            ) from None
        if not math.isfinite(reward) or child < 0:
            raise ValueError(f"{where}: reward {reward} or child_id {child} is out of range")
        try:
            raw = json.loads(r["genotype"] or "")
        except (ValueError, RecursionError):
            raise ValueError(f"{where}: genotype is not JSON: {_short(r['genotype'])}") from None
        Genotype.from_dict(raw, f"{where}: genotype")  # errors name the field
    return rows


def _short(text: Any, limit: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def select_cells(rows: Sequence[dict], k: int) -> list[dict]:
    """``k`` distinct trained children spread over the reward range: the best, the worst and
    evenly spaced ranks between (``{"name", "child_id", "reward", "genotype"}``)."""
    if k < 2:
        raise ValueError(f"--k must be at least 2 (the best and the worst cell), got {k}")
    ok, seen = [], set()
    for r in rows:
        if r["status"] != "ok" or r["reward"] in ("", None) or r.get("phase") == "shared":
            continue
        if r["genotype"] in seen:
            continue
        seen.add(r["genotype"])
        ok.append(r)
    ok.sort(key=lambda r: (-float(r["reward"]), int(r["child_id"])))
    if len(ok) < k:
        raise ValueError(f"the search has {len(ok)} distinct trained children, fewer than k={k}")
    picks = sorted({int(round(i)) for i in np.linspace(0, len(ok) - 1, k)})
    return [
        {
            "name": f"rank{i + 1}_child{ok[i]['child_id']}",
            "child_id": int(ok[i]["child_id"]),
            "reward": float(ok[i]["reward"]),
            "genotype": json.loads(ok[i]["genotype"]),
        }
        for i in picks
    ]


def select_table_cells(table: Any, k: int) -> list[dict]:
    """``k`` cells of a tabular benchmark (:class:`~nasnet_det.search.tabular.Table`) spread
    over its mean rewards: the best, the worst and evenly spaced ranks between. ``child_id``
    is the cell's row in the table, ``reward`` its mean over the table's trainings."""
    if k < 2:
        raise ValueError(f"--k must be at least 2 (the best and the worst cell), got {k}")
    means = table.mean_rewards()
    order = list(table.rows)
    if len(order) < k:
        raise ValueError(f"the table has {len(order)} cells, fewer than k={k}")
    ranked = sorted(range(len(order)), key=lambda i: (-means[order[i]], i))
    space = table.space
    picks = sorted({int(round(r)) for r in np.linspace(0, len(ranked) - 1, k)})
    out = []
    for r in picks:
        i = ranked[r]
        key = order[i]
        g = space.decode([int(v) for v in key.split(",")])
        out.append({"name": f"rank{r + 1}_cell{i}", "child_id": i, "reward": means[key],
                    "genotype": g.to_dict()})  # fmt: skip
    return out


def _proxy_reward(job: dict[str, Any], genotype: Genotype, seed: int) -> float:
    """The job's stored proxy reward, or (NASNet-A) its reward trained now: the mean over the
    table's trainings for a table study, else one search child's training."""
    if job["proxy_reward"] is not None:
        return job["proxy_reward"]
    if "table_proxy" in job["proxy"]:  # the table's trainings, all seeds
        from nasnet_det.search.tabular import Proxy, train_on_proxy

        trained = train_on_proxy(genotype, Proxy(**job["proxy"]["table_proxy"]))
        return float(np.mean(trained["rewards"]))
    from nasnet_det.search.child import get_train_fn

    fn = get_train_fn("train_child")
    return float(fn(genotype, job["proxy"]["child"], job["proxy"]["data"], seed)["reward"])


def train_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train one cell as (a) classifier and (b) detector (and on the proxy when its reward is
    unknown); returns its result record. Runs in a worker process or in-process."""

    import torch

    from nasnet_det.cli import quiet_warnings

    # A spawned worker inherits neither the tool's warning filters nor its logger levels.
    quiet_warnings()
    from nasnet_det.detection.demo import Pretrain, run_demo

    start = time.monotonic()
    out = Path(job["output"])
    out.mkdir(parents=True, exist_ok=True)
    genotype = Genotype.from_dict(job["genotype"], job["name"])
    genotype.to_json(out / "genotype.json")
    budget = Budget(**job["budget"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    log = io.StringIO()
    try:
        proxy = _proxy_reward(job, genotype, budget.seed)
        opts = ["SOLVER.MAX_ITER", str(budget.detector_iters), "SEED", str(budget.seed),
                "DATASETS.TRAIN", f"('{budget.train_set}',)",
                "DATASETS.TEST", f"('{budget.val_set}',)"]  # fmt: skip
        with contextlib.redirect_stdout(log):
            res = run_demo(
                str(out),
                genotype,  # resolved once, above; genotype.json is the study's record
                opts=opts,
                pretrain=Pretrain(iters=budget.pretrain_iters),
                progress=False,
            )
    finally:
        torch.set_num_threads(threads)
        atomic_write_text(out / "log.txt", log.getvalue(), what="cell log")
    m = res["metrics"]
    return {
        "name": job["name"],
        "cell": job["cell"],
        "seed": budget.seed,
        "child_id": job["child_id"],
        "proxy_reward": proxy,
        "accuracy": res["pretrain"]["val_accuracy"],
        "AP": _finite(m.get("AP")),
        "AP50": _finite(m.get("AP50")),
        "params": res["params"],
        "seconds": time.monotonic() - start,
        "genotype": job["genotype"],
        "budget": job["budget"],
    }


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(100.0 * fraction, 4)


def _finite(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


class TransferStudy:
    """A resumable study in ``output``: ``cells/<name>.json`` per finished training, then the
    summary. Every check runs in the constructor, before anything is trained or written.

    The cells come from a finished ``search`` folder or, with ``search=None``, from the tabular
    benchmark ``table`` (a path; ``""``: the shipped one). Each cell trains once per seed in
    ``seeds`` (default: the budget's seed alone); with several seeds a training is named
    ``<cell>_seed<s>``."""

    def __init__(
        self,
        search: str | os.PathLike | None,
        k: int,
        output: str | os.PathLike,
        budget: Budget,
        *,
        table: str | os.PathLike | None = None,
        seeds: Sequence[int] | None = None,
    ) -> None:
        from nasnet_det.io import RunFolder

        if (search is None) == (table is None):
            raise ValueError("a transfer study takes its cells from --search or --table, one")
        self.seeds = [budget.seed] if seeds is None else [int(s) for s in seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must be distinct integers, got {list(seeds or [])}")
        if search is not None:
            rows, self.proxy = read_search(search)
            self.cells = select_cells(rows, k)
            source = legacy_source = str(Path(search).resolve())
        else:
            from nasnet_det.search.tabular import load_table

            try:
                t = load_table(table or None)
            except ValueError as e:  # named by the flag that gave the path
                raise ValueError(str(e).replace("execution.table", "--table", 1)) from None
            self.cells = select_table_cells(t, k)
            self.proxy = {"table": t.path, "table_proxy": t.proxy.to_dict()}
            # By content, so that a study folder resumes in another checkout or after a move;
            # the path form of earlier studies is still read (and upgraded) below.
            source = f"table:sha256:{t.digest}"
            legacy_source = f"table:{t.path}"
        self.budget = budget
        self.output = Path(output)
        meta = self.output / "study.json"
        plan = {
            "search": source,
            "k": k,
            "budget": asdict(budget),
            "cells": [c["name"] for c in self.cells] + [REFERENCE],
        }
        if seeds is not None:
            plan["seeds"] = self.seeds
        # The same plan resumes (finished cells are kept); another plan is refused.
        folder = RunFolder(self.output, ("study.json", "cells", "runs"), "transfer study",
                           marker="study.json")  # fmt: skip
        resume = folder.holds_run()
        if resume and json.loads(meta.read_text()) not in (plan, {**plan, "search": legacy_source}):
            raise folder.conflict("with another search, k, budget or seeds")
        folder.check(resume, overwrite=False)
        folder.create()
        atomic_write_json(meta, plan, what="study plan")
        (self.output / "cells").mkdir(exist_ok=True)

    def jobs(self) -> list[dict[str, Any]]:
        """Every training of the study, cell by cell (each cell's seeds together), NASNet-A
        last (its proxy reward is trained, not looked up)."""
        ref = get_genotype(REFERENCE)
        cells = self.cells + [
            {"name": REFERENCE, "child_id": None, "reward": None, "genotype": ref.to_dict()}
        ]
        out = []
        for c in cells:
            for s in self.seeds:
                name = c["name"] if len(self.seeds) == 1 else f"{c['name']}_seed{s}"
                out.append({
                    "name": name,
                    "cell": c["name"],
                    "child_id": c["child_id"],
                    "proxy_reward": c["reward"],
                    "genotype": c["genotype"],
                    "proxy": self.proxy,
                    "budget": {**asdict(self.budget), "seed": s},
                    "output": str(self.output / "runs" / name),
                })  # fmt: skip
        return out

    def done(self) -> dict[str, dict]:
        out = {}
        for p in sorted((self.output / "cells").glob("*.json")):
            rec = json.loads(p.read_text())
            out[rec["name"]] = rec
        return out

    def run(self, workers: int = 1, progress: bool = True) -> list[dict]:
        """Train every cell not stored yet (``workers`` processes; 0: in this process), store
        each as it finishes, then write the summary. Returns the records in study order."""
        from tqdm import tqdm

        jobs = self.jobs()
        done = self.done()
        todo = [j for j in jobs if j["name"] not in done]
        self._reference_reward_once(todo, done)
        bar = tqdm(
            total=len(jobs), initial=len(jobs) - len(todo), unit="training", disable=not progress
        )
        with bar:
            for rec in _run_jobs(todo, workers):
                atomic_write_json(self.output / "cells" / f"{rec['name']}.json", rec)
                done[rec["name"]] = rec
                bar.update(1)
        records = [done[j["name"]] for j in jobs]
        self.summarise(records)
        return records

    def _reference_reward_once(self, todo: list[dict], done: dict[str, dict]) -> None:
        """A table study's NASNet-A reward is the mean over the table's own trainings, the same
        for every seed of the study: trained once (or taken from a finished seed), not per job."""
        refs = [j for j in todo if j["cell"] == REFERENCE and j["proxy_reward"] is None]
        if not refs or "table_proxy" not in self.proxy:
            return
        known = [r["proxy_reward"] for r in done.values() if r.get("cell") == REFERENCE]
        if known:
            reward = known[0]
        else:
            reward = _proxy_reward(refs[0], get_genotype(REFERENCE), refs[0]["budget"]["seed"])
        for j in refs:
            j["proxy_reward"] = reward

    def summarise(self, records: list[dict]) -> dict:
        """``results.csv``, ``correlations.json`` and ``transfer.png`` from the records."""
        # Accuracy in percent, as the printed table and the plot show it (and as AP is).
        cols = ("name", "child_id", "seed", "proxy_reward", "accuracy", "AP", "AP50", "params",
                "seconds")  # fmt: skip
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["accuracy_pct" if c == "accuracy" else c for c in cols])
        for r in records:
            row = {**r, "accuracy": _percent(r.get("accuracy"))}
            w.writerow(["" if row.get(c) is None else row[c] for c in cols])
        atomic_write_text(self.output / "results.csv", buf.getvalue(), what="results table")
        corr = correlations(records)
        atomic_write_json(self.output / "correlations.json", corr, what="correlations")
        label = (
            "table reward (mean held-out accuracy of the table's trainings)"
            if "table" in self.proxy
            else "proxy reward (the search's held-out accuracy)"
        )
        plot_transfer(records, corr, self.output / "transfer.png", xlabel=label)
        return corr


def _run_jobs(todo: list[dict], workers: int):
    if workers <= 0 or len(todo) <= 1:
        for job in todo:
            yield train_cell(job)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from nasnet_det.search.child import worker_init

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_init) as pool:
        pending = {pool.submit(train_cell, j) for j in todo}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                try:
                    yield f.result()
                except BrokenProcessPool:
                    # An OSError: the tools' one-line errors (not a pool traceback).
                    raise ChildProcessError(
                        "a worker process died while training a cell (killed, or out of "
                        "memory?); the cells finished so far are kept: run the same command "
                        "again to resume, with fewer --workers if memory is short"
                    ) from None


def cell_means(records: Sequence[dict]) -> list[dict]:
    """One entry per cell (records grouped by ``cell``, else ``name``), in first-seen order:
    ``proxy_reward`` and the mean ``accuracy`` / ``AP`` over its seeds that have them, and the
    per-seed values (``accuracy_seeds`` / ``AP_seeds``)."""
    cells: dict[str, dict] = {}
    for r in records:
        c = cells.setdefault(
            r.get("cell") or r["name"],
            {
                "name": r.get("cell") or r["name"],
                "proxy_reward": None,
                "accuracy_seeds": [],
                "AP_seeds": [],
            },
        )
        if r.get("proxy_reward") is not None:
            c["proxy_reward"] = r["proxy_reward"]
        for key in ("accuracy", "AP"):
            if r.get(key) is not None:
                c[f"{key}_seeds"].append(float(r[key]))
    for c in cells.values():
        for key in ("accuracy", "AP"):
            vals = c[f"{key}_seeds"]
            c[key] = float(np.mean(vals)) if vals else None
    return list(cells.values())


def correlations(records: Sequence[dict], resamples: int = 4000) -> dict[str, Any]:
    """Kendall's tau-b and Spearman's rho of proxy reward against (a) accuracy and (b) AP over
    every cell with both numbers (NASNet-A included; a cell's value is the mean over its seeds),
    with a 95% interval for rho (``rho_ci``: scipy's paired bootstrap, BCa, ``resamples``
    draws of the cells, seed 0). An undefined correlation (fewer than 5 cells, or one side all
    tied) has ``None`` coefficients and its ``reason``. ``seed_spread``: over cells trained with
    two or more seeds, the median and largest max-minus-min of a cell's values across seeds."""
    out: dict[str, Any] = {}
    cells = cell_means(records)
    for target in ("accuracy", "AP"):
        pairs = [(c["proxy_reward"], c[target]) for c in cells
                 if c[target] is not None and c["proxy_reward"] is not None]  # fmt: skip
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        rc = rank_correlation(xs, ys, names=("proxy reward", target))
        out[target] = {
            k: v if k in ("n", "reason") else _finite(v) for k, v in rc._asdict().items()
        }
        out[target]["rho_ci"] = None if rc.reason is not None else _rho_interval(xs, ys, resamples)
        spreads = [max(c[f"{target}_seeds"]) - min(c[f"{target}_seeds"])
                   for c in cells if len(c[f"{target}_seeds"]) >= 2]  # fmt: skip
        out[target]["seed_spread"] = (
            None
            if not spreads
            else {"cells": len(spreads), "median": float(np.median(spreads)), "max": max(spreads)}
        )
    return out


def _rho_interval(xs: Sequence[float], ys: Sequence[float], resamples: int) -> list | None:
    """scipy's paired bootstrap 95% interval of Spearman's rho; None when it is undefined
    (every resample tied, or scipy cannot form the interval)."""
    import warnings

    from scipy import stats

    def rho(a, b):
        return stats.spearmanr(a, b).statistic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant resamples: nan, handled below
        res = stats.bootstrap((np.asarray(xs), np.asarray(ys)), rho, paired=True,
                              vectorized=False, n_resamples=resamples, confidence_level=0.95,
                              method="BCa", rng=np.random.default_rng(0))  # fmt: skip
    lo, hi = (_finite(v) for v in (res.confidence_interval.low, res.confidence_interval.high))
    return None if lo is None or hi is None else [lo, hi]


def describe_correlation(c: dict[str, Any]) -> str:
    """One entry of :func:`correlations` as printed: the coefficients, or ``undefined (why)``."""
    from nasnet_det.search.ranking import RankCorrelation

    coef = (math.nan if c[k] is None else c[k] for k in ("tau", "tau_p", "rho", "rho_p"))
    text = RankCorrelation(*coef, c["n"], c["reason"]).describe()
    if c.get("rho_ci"):
        text += f", rho 95% bootstrap interval {c['rho_ci'][0]:.2f} to {c['rho_ci'][1]:.2f}"
    return text


def plot_transfer(
    records: Sequence[dict],
    corr: dict,
    path: str | os.PathLike,
    xlabel: str = "proxy reward (held-out accuracy)",
) -> Path:
    """Two scatter panels: proxy reward against (a) accuracy and (b) box AP, a cell's mean over
    its seeds with a bar from its lowest to its highest seed; NASNet-A marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    panels = (("accuracy", "(a) digit-crop accuracy", 100.0), ("AP", "(b) detector box AP", 1.0))
    for ax, (key, label, scale) in zip(axes, panels):
        for r in cell_means(records):
            if r.get(key) is None or r.get("proxy_reward") is None:
                continue
            ref = r["name"] == REFERENCE
            color = "#c0392b" if ref else "#2e86c1"
            y, seeds = r[key] * scale, [v * scale for v in r[f"{key}_seeds"]]
            if len(seeds) > 1:
                ax.vlines(r["proxy_reward"], min(seeds), max(seeds), color=color, alpha=0.5)
            ax.scatter(r["proxy_reward"], y, marker="*" if ref else "o", s=160 if ref else 40,
                       color=color, zorder=3)  # fmt: skip
            ax.annotate(
                "NASNet-A" if ref else r["name"].split("_")[0],
                (r["proxy_reward"], y),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7,
            )
        c = corr[key]
        if c["reason"] is not None:
            stats = f"  (rank correlation undefined: {c['reason']})"
        else:
            stats = f"  (tau {c['tau']:.2f}, rho {c['rho']:.2f}, p {c['rho_p']:.2g}, n={c['n']})"
        ax.set_title(label + stats, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()

    def write(name: str) -> None:
        fig.savefig(name, format="png")

    try:
        return atomic_call(path, write, what="transfer plot")
    finally:
        plt.close(fig)
