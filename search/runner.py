"""The search loop: propose a round, train its children, store each one, observe, checkpoint.

Resuming loads the last round's strategy checkpoint, asks the strategy for that round's
proposals again (it is deterministic given its state), takes the children already stored and
trains only the rest: nothing stored is lost and nothing is trained twice. An architecture that
was trained before (in any round) is not retrained; its child is stored as a ``duplicate``
carrying the earlier result.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nasnet_det.search.config import SEARCH_KEYS, resolve_config
from nasnet_det.search.data import check_dataset
from nasnet_det.search.executor import build_executor
from nasnet_det.search.history import History, HistoryError
from nasnet_det.search.outputs import write_outputs
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import build_strategy

__all__ = ["run_search", "SearchResult", "HISTORY_FILE"]

HISTORY_FILE = "history.sqlite"


@dataclass
class SearchResult:
    output_dir: Path
    num_children: int
    best_reward: float | None
    best_child_id: int | None
    best_genotype: Path | None
    children: list[dict[str, Any]]


def child_seed(seed: int, child_id: int) -> int:
    return int(np.random.SeedSequence([seed, child_id]).generate_state(1)[0])


def _prepare_dir(out: Path, resume: bool, overwrite: bool) -> Path:
    db = out / HISTORY_FILE
    if resume:
        if not db.is_file():
            raise HistoryError(f"--resume: no search history at {str(db)!r}")
        return db
    if db.exists() and not overwrite:
        raise ValueError(
            f"{str(out)!r} already holds a search history; pass --resume to "
            f"continue it or --overwrite to start over"
        )
    if overwrite and out.exists():
        for p in out.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return db


def run_search(
    config: dict,
    output_dir: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    max_children: int | None = None,
    backend: str | None = None,
    address: str | None = None,
    train_fn: Callable | None = None,
    progress: bool | None = None,
) -> SearchResult:
    """Run (or continue) the search ``config`` describes, writing into ``output_dir``.

    ``max_children`` overrides the config's budget (children proposed in total, resumed ones
    included). ``train_fn`` replaces the child training with a callable (runs in-process).
    """
    cfg = resolve_config(config)
    if max_children is not None:
        cfg["max_children"] = int(max_children)
    ex = cfg["execution"]
    if backend is not None:
        ex["backend"] = backend
    if address is not None:
        ex["address"] = address
    out = Path(output_dir)
    space = SearchSpace.from_config(cfg["space"])
    sparams = {k: v for k, v in cfg["strategy"].items() if k != "name"}
    strategy = build_strategy(cfg["strategy"]["name"], space, cfg["seed"], **sparams)
    check_dataset(**cfg["data"])
    db_path = _prepare_dir(out, resume, overwrite)
    history = History(db_path, create=not resume)
    try:
        stored = history.get_meta("config")
        search_part = {k: cfg[k] for k in SEARCH_KEYS}
        if stored is None:
            history.set_meta("config", search_part)
        elif stored != search_part:
            diff = sorted(k for k in SEARCH_KEYS if stored.get(k) != search_part[k])
            raise HistoryError(
                f"{str(db_path)!r} was written by a different search (config "
                f"section(s) {diff} differ); use another --output or "
                f"--overwrite"
            )
        return _loop(cfg, out, space, strategy, history, train_fn, progress)
    finally:
        history.close()


def _loop(cfg, out, space, strategy, history, train_fn, progress) -> SearchResult:
    from tqdm import tqdm

    ex = cfg["execution"]
    budget = cfg["max_children"]
    ws = None
    if cfg["mode"] == "weight_sharing":
        from nasnet_det.search.weight_sharing import SharedScorer

        ws = SharedScorer(space, cfg["weight_sharing"], cfg["data"], cfg["seed"])
    limit_s = None if cfg["max_minutes"] is None else 60.0 * float(cfg["max_minutes"])
    t_start = time.time()
    rounds_run = 0
    ckpt = history.load_checkpoint()
    round_, start_id = 0, 0
    if ckpt is not None:
        round_, start_id, state = ckpt
        strategy.load_state_dict(state["strategy"])
        if ws is not None:
            ws.load_state_dict(state["weight_sharing"])
    stored = {c["child_id"]: c for c in history.children()}
    known: dict[tuple[str, str], dict] = {}  # (phase, key) -> the record of its training
    for c in stored.values():
        if c["duplicate_of"] is None:
            known.setdefault((c["phase"], c["key"]), c)
    show = cfg["outputs"]["progress"] if progress is None else progress
    bar = tqdm(
        total=budget,
        initial=min(len(stored), budget),
        unit="child",
        disable=not show,
        desc=f"{cfg['strategy']['name']}{'+ws' if ws else ''}",
        dynamic_ncols=True,
    )
    best_seen = max(
        (c["reward"] for c in stored.values() if c["reward"] is not None), default=float("-inf")
    )
    executor = None
    try:
        while start_id < budget:
            if limit_s is not None and rounds_run:
                per_round = (time.time() - t_start) / rounds_run
                if time.time() - t_start + per_round > limit_s:
                    break
            n = min(cfg["round_size"] or strategy.batch_size, budget - start_id)
            proposals = strategy.propose(n)
            ids = list(range(start_id, start_id + n))
            for cid, d in zip(ids, proposals):
                if cid in stored and stored[cid]["key"] != space.key(d):
                    raise HistoryError(
                        f"child {cid} in the history is not what the resumed strategy proposes; "
                        "the history belongs to another run or the strategy is not deterministic"
                    )
            todo, seen_now = [], set()
            for cid, d in zip(ids, proposals):
                k = ("shared" if ws else "standalone", space.key(d))
                if cid in stored or k in known or k in seen_now:
                    continue
                seen_now.add(k)
                todo.append(_task(cfg, space, cid, round_, d))
            if ws is not None:
                results = ws.run_round(proposals, todo)
            else:
                if executor is None and todo:
                    executor = build_executor(
                        ex["backend"],
                        ex["num_workers"],
                        ex["address"],
                        train_fn,
                        ex["gpus_per_child"],
                    )
                results = executor.run(todo) if todo else []
            by_id = {t["child_id"]: t for t in todo}
            for rec in results:
                t = by_id[rec["child_id"]]
                row = {
                    **rec,
                    "round": round_,
                    "key": t["key"],
                    "genotype": t["genotype_json"],
                    "phase": "shared" if ws else "standalone",
                }
                history.add_child(row)
                stored[row["child_id"]] = row
                known[(row["phase"], row["key"])] = row
                bar.update(1)
                if rec["reward"] is not None and rec["reward"] > best_seen:
                    best_seen = rec["reward"]
                    bar.set_postfix(best=f"{best_seen:.4f}", refresh=False)
            # Duplicates (of earlier rounds or of this one) carry the trained child's result.
            for cid, d in zip(ids, proposals):
                if cid in stored:
                    continue
                first = known[("shared" if ws else "standalone", space.key(d))]
                row = {
                    **{
                        c: first[c]
                        for c in ("key", "genotype", "reward", "status", "params", "error", "phase")
                    },
                    "child_id": cid,
                    "round": round_,
                    "seconds": 0.0,
                    "duplicate_of": first["child_id"],
                    "status": "duplicate" if first["status"] == "ok" else first["status"],
                }
                history.add_child(row)
                stored[cid] = row
                bar.update(1)
            rewards = [
                stored[cid]["reward"] if stored[cid]["status"] != "failed" else None for cid in ids
            ]
            strategy.observe(proposals, rewards)
            round_ += 1
            rounds_run += 1
            start_id += n
            state = {"strategy": strategy.state_dict()}
            if ws is not None:
                state["weight_sharing"] = ws.state_dict()
            history.save_checkpoint(round_, start_id, state)
            write_outputs(out, history.children(), cfg, final=False)
        if ws is not None:
            executor = executor or build_executor(
                ex["backend"], ex["num_workers"], ex["address"], train_fn, ex["gpus_per_child"]
            )
            _retrain_top(cfg, space, history, executor, round_, bar)
    finally:
        bar.close()
        if executor is not None:
            executor.close()
    children = history.children()
    best = write_outputs(out, children, cfg, final=True)
    return SearchResult(
        out,
        len(children),
        best and best["reward"],
        best and best["child_id"],
        out / "best_genotype.json" if best else None,
        children,
    )


def _task(cfg: dict, space: SearchSpace, cid: int, round_: int, d) -> dict:
    g = space.decode(d)
    return {
        "child_id": cid,
        "round": round_,
        "key": space.key(d),
        "decisions": list(d),
        "genotype": g.to_dict(),
        "genotype_json": space.genotype_json(d),
        "child": cfg["child"],
        "data": cfg["data"],
        "seed": child_seed(cfg["seed"], cid),
        "train_fn": cfg["execution"]["train_fn"],
        "num_threads": 1,
    }


def _retrain_top(cfg, space, history, executor, round_, bar) -> None:
    """Weight sharing's last step: retrain the best few shared-weight children standalone."""
    children = history.children()
    shared = [c for c in children if c["phase"] == "shared" and c["status"] == "ok"]
    shared.sort(key=lambda c: (-c["reward"], c["child_id"]))
    top = shared[: cfg["weight_sharing"]["retrain_top"]]
    done = {c["key"] for c in children if c["phase"] == "standalone"}
    todo = []
    for rank, c in enumerate(top):
        if c["key"] in done:
            continue
        # Ids by rank after the sampled ones: a resumed retraining keeps ids and seeds.
        cid = cfg["max_children"] + rank
        todo.append(_task(cfg, space, cid, round_, space.parse_key(c["key"])))
    if not todo:
        return
    bar.total += len(todo)
    by_id = {t["child_id"]: t for t in todo}
    for rec in executor.run(todo):
        t = by_id[rec["child_id"]]
        history.add_child(
            {
                **rec,
                "round": round_,
                "key": t["key"],
                "genotype": t["genotype_json"],
                "phase": "standalone",
            }
        )
        bar.update(1)
