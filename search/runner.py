"""The search runner: one round per :meth:`SearchRunner.step` (propose, train, store, observe,
checkpoint); :meth:`SearchRunner.run` steps until the budget is spent and writes the outputs.

Resuming loads the last round's strategy checkpoint, asks the strategy for that round's
proposals again (it is deterministic given its state), takes the children already stored and
trains only the rest: nothing stored is lost and nothing is trained twice. An architecture that
was trained before (in any round) is not retrained; its child is stored as a ``duplicate``
carrying the earlier result. With ``execution.backend: tabular`` the strategy is restricted to
the table's cells (:meth:`~nasnet_det.search.strategies.base.Strategy.restrict`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nasnet_det.search.child import TrainFn, get_train_fn
from nasnet_det.search.config import SEARCH_KEYS, apply_overrides, resolve_config, to_plain
from nasnet_det.search.data import check_dataset
from nasnet_det.search.executor import build_executor, check_executor
from nasnet_det.search.history import History, HistoryError
from nasnet_det.search.outputs import OUTPUT_FILES, write_outputs
from nasnet_det.search.space import Decisions, SearchSpace
from nasnet_det.search.strategies import build_strategy
from nasnet_det.search.tabular import TableSupport, load_table

from nasnet_det.io import RunFolder

__all__ = ["HISTORY_FILE", "SearchResult", "SearchRunner", "child_seed", "run_search"]

HISTORY_FILE = "history.sqlite"

#: What the search writes into its folder (``--overwrite`` removes these and nothing else).
_OWN_FILES = (HISTORY_FILE, HISTORY_FILE + "-wal", HISTORY_FILE + "-shm", *OUTPUT_FILES)

#: Columns a duplicate child copies from the child that was trained.
_COPIED = ("key", "genotype", "reward", "status", "params", "error", "phase")


@dataclass
class SearchResult:
    output_dir: Path
    num_children: int
    best_reward: float | None
    best_child_id: int | None
    best_genotype: Path | None
    children: list[dict[str, Any]]


def child_seed(seed: int, child_id: int) -> int:
    """The training seed of child ``child_id`` (independent of which worker trains it)."""
    return int(np.random.SeedSequence([seed, child_id]).generate_state(1)[0])


def run_search(
    config: Mapping | None,
    output_dir: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    max_children: int | None = None,
    backend: str | None = None,
    address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool | None = None,
) -> SearchResult:
    """Run (or continue) the search ``config`` describes, writing into ``output_dir``.

    ``max_children``, ``backend`` and ``address`` override the config (checked like it).
    ``train_fn`` replaces the registered child training with a callable that runs in-process.
    """
    cfg = resolve_config(config)
    pairs: list[str] = []
    for key, value in (
        ("max_children", max_children),
        ("execution.backend", backend),
        ("execution.address", address),
    ):
        if value is not None:
            pairs += [key, repr(value)]
    if pairs:
        cfg = apply_overrides(cfg, pairs)
    with SearchRunner(
        cfg, output_dir, resume=resume, overwrite=overwrite, train_fn=train_fn, progress=progress
    ) as runner:
        return runner.run()


class SearchRunner:
    """One search in ``output_dir``; every check runs in the constructor, before any output.

    ``step()`` runs one round and returns ``False`` once the budget is spent; ``finish()``
    retrains the best weight-sharing children (that mode only), writes the final outputs and
    returns the :class:`SearchResult`; ``run()`` does both. Use as a context manager (or call
    ``close()``) to release the history and the worker processes.
    """

    def __init__(
        self,
        config: Mapping | None,
        output_dir: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
        train_fn: TrainFn | None = None,
        progress: bool | None = None,
    ) -> None:
        self.cfg = cfg = resolve_config(config)
        self.out = Path(output_dir)
        self.space = SearchSpace.from_config(cfg.space)
        params = {k: v for k, v in cfg.strategy.items() if k != "name"}
        self.strategy = build_strategy(cfg.strategy.name, self.space, cfg.seed, **params)
        self.train_fn = train_fn  # an explicit callable runs in this process
        self._task_fn = train_fn or get_train_fn(cfg.execution.train_fn)
        if cfg.execution.backend != "tabular":  # a table's children never load the data
            check_dataset(**cfg.data)
        check_executor(cfg.execution.backend, train_fn, cfg.execution.table, self.space)
        if cfg.execution.backend == "tabular":  # the table holds a sliver of the space
            self.strategy.restrict(TableSupport.from_table(load_table(cfg.execution.table)))
        self.scorer = None
        if cfg.mode == "weight_sharing":
            from nasnet_det.search.weight_sharing import SharedScorer

            self.scorer = SharedScorer(
                self.space, to_plain(cfg.weight_sharing), to_plain(cfg.data), cfg.seed
            )
        self.phase = "shared" if self.scorer else "standalone"
        self.executor = None
        self.bar = None
        # A new history that never gets a child or a checkpoint is removed again on failure
        # (and the folder, if this search created it and nothing else is in it).
        self._new = None if resume else (self.out, not self.out.exists())
        db = _prepare_dir(self.out, resume, overwrite)
        try:
            self.history = History(db, create=not resume)
        except BaseException:
            self._discard_unstarted(db)
            raise
        try:
            self._check_stored_config()
            self._restore()
            self.bar = _progress_bar(cfg, self, progress)
        except BaseException:
            self._discard_unstarted(db)
            self.close()
            raise

    def _discard_unstarted(self, db: Path) -> None:
        """Remove the history this run created if it holds nothing to resume from."""
        if self._new is None:
            return
        history = getattr(self, "history", None)
        if history is not None:
            try:
                if history.load_checkpoint() is not None or history.children():
                    return
            except Exception:  # noqa: BLE001 (unreadable: nothing to resume from either)
                pass
            self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        out, created = self._new
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()

    # ------------------------------------------------------------------ state
    def _check_stored_config(self) -> None:
        search_part = {k: to_plain(self.cfg[k]) for k in SEARCH_KEYS}
        stored = self.history.get_meta("config")
        if stored is None:
            self.history.set_meta("config", search_part)
        elif stored != search_part:
            diff = sorted(k for k in SEARCH_KEYS if stored.get(k) != search_part[k])
            raise HistoryError(
                f"{str(self.history.path)!r} was written by a different search (config "
                f"node(s) {diff} differ); use another --output or --overwrite"
            )

    def _restore(self) -> None:
        """Strategy (and shared weights) from the last finished round; children stored so far."""
        self.round, self.next_id = 0, 0
        ckpt = self.history.load_checkpoint()
        if ckpt is not None:
            self.round, self.next_id, state = ckpt
            self.strategy.load_state_dict(state["strategy"])
            if self.scorer is not None:
                self.scorer.load_state_dict(state["weight_sharing"])
        self.stored = {c["child_id"]: c for c in self.history.children()}
        self.known: dict[tuple[str, str], dict] = {}  # (phase, key) -> the trained child's row
        for c in self.stored.values():
            if c["duplicate_of"] is None:
                self.known.setdefault((c["phase"], c["key"]), c)
        rewards = [c["reward"] for c in self.stored.values() if c["reward"] is not None]
        self.best = max(rewards, default=None)

    @property
    def done(self) -> bool:
        """The budget (``max_children`` proposed children) is spent."""
        return self.next_id >= self.cfg.max_children

    # ------------------------------------------------------------------ one round
    def step(self) -> bool:
        """Propose, train and store one round, let the strategy observe it, checkpoint it and
        refresh the leaderboard. Returns ``False`` (doing nothing) once the budget is spent."""
        if self.done:
            return False
        n = min(
            self.cfg.round_size or self.strategy.batch_size, self.cfg.max_children - self.next_id
        )
        ids = list(range(self.next_id, self.next_id + n))
        proposals = self.strategy.propose(n)
        self._check_replay(ids, proposals)
        todo = self._new_tasks(ids, proposals)
        self._store_results(todo, self._train(proposals, todo))
        self._store_duplicates(ids, proposals)
        rewards = [
            self.stored[i]["reward"] if self.stored[i]["status"] != "failed" else None for i in ids
        ]
        self.strategy.observe(proposals, rewards)
        self.round += 1
        self.next_id += n
        state = {"strategy": self.strategy.state_dict()}
        if self.scorer is not None:
            state["weight_sharing"] = self.scorer.state_dict()
        self.history.save_checkpoint(self.round, self.next_id, state)
        write_outputs(self.out, self.history.children(), self.cfg, final=False)
        return True

    def _check_replay(self, ids: Sequence[int], proposals: Sequence[Decisions]) -> None:
        for cid, d in zip(ids, proposals):
            if cid in self.stored and self.stored[cid]["key"] != self.space.key(d):
                raise HistoryError(
                    f"child {cid} in the history is not what the resumed strategy proposes; "
                    "the history belongs to another run or the strategy is not deterministic"
                )

    def _new_tasks(self, ids: Sequence[int], proposals: Sequence[Decisions]) -> list[dict]:
        """Tasks for the children not stored yet whose architecture was never trained."""
        todo, seen_now = [], set()
        for cid, d in zip(ids, proposals):
            k = (self.phase, self.space.key(d))
            if cid in self.stored or k in self.known or k in seen_now:
                continue
            seen_now.add(k)
            todo.append(self._task(cid, d))
        return todo

    def _task(self, cid: int, decisions: Decisions) -> dict:
        """What a worker needs to train one child: plain data plus the training function."""
        return {
            "child_id": cid,
            "round": self.round,
            "key": self.space.key(decisions),
            "decisions": list(decisions),
            "genotype": self.space.decode(decisions).to_dict(),
            "genotype_json": self.space.genotype_json(decisions),
            "child": to_plain(self.cfg.child),
            "data": to_plain(self.cfg.data),
            "seed": child_seed(self.cfg.seed, cid),
            "train_fn": self._task_fn,
            "num_threads": 1,
        }

    def _train(self, proposals: Sequence[Decisions], todo: list[dict]) -> Iterable[dict]:
        if self.scorer is not None:
            return self.scorer.run_round(proposals, todo)
        return self._executor().run(todo) if todo else []

    def _executor(self):
        if self.executor is None:
            ex = self.cfg.execution
            self.executor = build_executor(
                ex.backend, ex.num_workers, ex.address, self.train_fn, ex.gpus_per_child, ex.table
            )
        return self.executor

    def _store_results(self, todo: list[dict], results: Iterable[dict], phase: str | None = None):
        """Store each finished child the moment it finishes (a kill loses no finished child)."""
        by_id = {t["child_id"]: t for t in todo}
        for rec in results:
            t = by_id[rec["child_id"]]
            row = {
                **rec,
                "round": self.round,
                "key": t["key"],
                "genotype": t["genotype_json"],
                "phase": phase or self.phase,
            }
            self.history.add_child(row)
            self.stored[row["child_id"]] = row
            self.known.setdefault((row["phase"], row["key"]), row)
            self._advance_bar(rec["reward"])

    def _store_duplicates(self, ids: Sequence[int], proposals: Sequence[Decisions]) -> None:
        """Children of this round whose architecture was trained before carry its result."""
        for cid, d in zip(ids, proposals):
            if cid in self.stored:
                continue
            first = self.known[(self.phase, self.space.key(d))]
            row = {
                **{c: first[c] for c in _COPIED},
                "child_id": cid,
                "round": self.round,
                "seconds": 0.0,
                "duplicate_of": first["child_id"],
                "status": "duplicate" if first["status"] == "ok" else first["status"],
            }
            self.history.add_child(row)
            self.stored[cid] = row
            self._advance_bar(None)

    def _advance_bar(self, reward: float | None) -> None:
        self.bar.update(1)
        if reward is not None and (self.best is None or reward > self.best):
            self.best = reward
            self.bar.set_postfix(best=f"{reward:.4f}", refresh=False)

    # ------------------------------------------------------------------ the end
    def run(self) -> SearchResult:
        """Step until the budget is spent, then :meth:`finish`."""
        try:
            while self.step():
                pass
        except BaseException:
            self._discard_unstarted(self.history.path)
            raise
        return self.finish()

    def finish(self) -> SearchResult:
        """Weight sharing's standalone retraining, then the final outputs."""
        if self.scorer is not None:
            self._retrain_top()
        self.bar.close()
        children = self.history.children()
        best = write_outputs(self.out, children, self.cfg, final=True)
        return SearchResult(
            self.out,
            len(children),
            best and best["reward"],
            best and best["child_id"],
            self.out / "best_genotype.json" if best else None,
            children,
        )

    def _retrain_top(self) -> None:
        """Retrain the ``retrain_top`` best shared-weight children standalone."""
        children = self.history.children()
        shared = [c for c in children if c["phase"] == "shared" and c["status"] == "ok"]
        shared.sort(key=lambda c: (-c["reward"], c["child_id"]))
        done = {c["key"] for c in children if c["phase"] == "standalone"}
        todo = [
            # Ids by rank after the sampled ones: a resumed retraining keeps ids and seeds.
            self._task(self.cfg.max_children + rank, self.space.parse_key(c["key"]))
            for rank, c in enumerate(shared[: self.cfg.weight_sharing.retrain_top])
            if c["key"] not in done
        ]
        if todo:
            self.bar.total += len(todo)
            self._store_results(todo, self._executor().run(todo), phase="standalone")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.executor is not None:
            self.executor.close()
            self.executor = None
        self.history.close()

    def __enter__(self) -> SearchRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _progress_bar(cfg, runner: SearchRunner, progress: bool | None):
    from tqdm import tqdm

    show = cfg.outputs.progress if progress is None else progress
    return tqdm(
        total=cfg.max_children,
        initial=min(len(runner.stored), cfg.max_children),
        unit="child",
        disable=not show,
        desc=f"{cfg.strategy.name}{'+ws' if runner.scorer else ''}",
        dynamic_ncols=True,
    )


def _prepare_dir(out: Path, resume: bool, overwrite: bool) -> Path:
    """The history's path in ``out`` (:class:`~nasnet_det.io.RunFolder`: an existing history
    needs ``resume`` or ``overwrite``; ``overwrite`` removes the search's own files only)."""
    folder = RunFolder(out, _OWN_FILES, "search history", marker=HISTORY_FILE)
    folder.check(resume, overwrite)
    folder.create(overwrite)
    return out / HISTORY_FILE
