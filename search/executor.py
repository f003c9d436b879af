"""Where children train: in-process, local worker processes (default) or a Ray cluster; or,
with ``tabular``, where their trained results are looked up (:mod:`nasnet_det.search.tabular`).

An executor takes a list of child tasks and yields their result records as they finish (in any
order). Failures inside a child are caught by :func:`~nasnet_det.search.child.run_child`; a
worker process that dies (killed, out of memory) fails its children here instead.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nasnet_det.search.child import run_child, worker_init

__all__ = [
    "check_executor",
    "build_executor",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
    "BACKENDS",
]

BACKENDS = ("local", "ray", "tabular")


def _died(task: dict, why: str) -> dict[str, Any]:
    return {
        "child_id": task["child_id"],
        "reward": None,
        "params": None,
        "status": "failed",
        "error": why,
        "seconds": None,
    }


class InlineExecutor:
    """Children run one after another in this process (``num_workers: 0``; also accepts a
    training callable, which worker processes cannot)."""

    def __init__(self, train_fn: Callable | None = None) -> None:
        self.train_fn = train_fn

    def run(self, tasks: Sequence[dict]) -> Iterator[dict]:
        for t in tasks:
            yield run_child(t, self.train_fn)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``num_workers`` spawned processes (one torch thread each), kept across rounds."""

    def __init__(self, num_workers: int) -> None:
        self.num_workers = num_workers
        self.pool: ProcessPoolExecutor | None = None

    def _spawn(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=worker_init
        )

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = self._spawn(self.num_workers)
        return self.pool

    def run(self, tasks: Sequence[dict]) -> Iterator[dict]:
        # A dying worker breaks the whole pool and fails every unfinished future, culprit or
        # not. Unfinished children go round once more; those broken twice then run one at a
        # time in a worker of their own, where only a real culprit dies.
        attempts = {t["child_id"]: 0 for t in tasks}
        pending, isolate = list(tasks), []
        while pending:
            futures = {self._pool().submit(run_child, t): t for t in pending}
            pending, broke = [], False
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for f in done:
                    t = futures.pop(f)
                    try:
                        yield f.result()
                    except BrokenProcessPool:
                        broke = True
                        attempts[t["child_id"]] += 1
                        (isolate if attempts[t["child_id"]] >= 2 else pending).append(t)
            if broke:
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = None
        pool = None
        for t in isolate:
            pool = pool or self._spawn(1)
            try:
                yield pool.submit(run_child, t).result()
            except BrokenProcessPool:
                yield _died(t, "worker process died (killed, e.g. out of memory)")
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
        if pool is not None:
            pool.shutdown(wait=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class RayExecutor:
    """Children as Ray tasks (one CPU each). ``address``: an existing cluster (``"auto"`` or
    ``"ray://host:10001"``); ``None`` starts a local Ray with ``num_workers`` CPUs."""

    def __init__(
        self, num_workers: int, address: str | None = None, gpus_per_child: float = 0
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("the ray backend needs Ray: pip install ray") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = max(1, num_workers)
            ray.init(**kwargs)
            self.started = True
        self.remote = ray.remote(num_cpus=1, num_gpus=gpus_per_child, max_retries=0)(run_child)

    def run(self, tasks: Sequence[dict]) -> Iterator[dict]:
        refs = {self.remote.remote(t): t for t in tasks}
        while refs:
            done, _ = self.ray.wait(list(refs), num_returns=1)
            for r in done:
                t = refs.pop(r)
                try:
                    yield self.ray.get(r)
                except self.ray.exceptions.RayError as e:
                    yield _died(t, f"ray task failed: {type(e).__name__}: {str(e)[:300]}")

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def check_executor(
    backend: str, train_fn: Callable | None = None, table: str | None = None, space=None
) -> None:
    """Refuse, before a search writes anything, an executor :func:`build_executor` would refuse
    (``tabular``: a missing or foreign table file, or a table of another ``space``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "tabular":
        from nasnet_det.search.tabular import check_table

        check_table(table, space)
    if backend == "ray":
        if train_fn is not None:
            raise ValueError(
                "the ray backend trains with a registered execution.train_fn; a train_fn "
                "callable runs in this process only (backend local)"
            )
        if importlib.util.find_spec("ray") is None:
            raise ValueError("the ray backend needs Ray: pip install ray")


def build_executor(
    backend: str,
    num_workers: int,
    address: str | None = None,
    train_fn: Callable | None = None,
    gpus_per_child: float = 0,
    table: str | None = None,
):
    """``local`` with ``num_workers: 0`` (or a ``train_fn`` callable) runs in-process; otherwise
    each task carries its (registered) training function to the workers. ``tabular`` looks
    children up in ``table`` (None: the shipped one)."""
    check_executor(backend, train_fn, table)
    if backend == "tabular":
        from nasnet_det.search.tabular import TabularExecutor

        return TabularExecutor(table)
    if backend == "ray":
        return RayExecutor(num_workers, address, gpus_per_child)
    if num_workers == 0 or train_fn is not None:
        return InlineExecutor(train_fn)
    return LocalExecutor(num_workers)
