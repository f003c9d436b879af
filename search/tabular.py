"""A tabular benchmark of the demo's cell space: trained cells looked up instead of trained.

NAS practice (NAS-Bench-101/201) compares strategies against a table of cells trained once, so a
search costs seconds and every strategy meets the same training luck. This module holds

* :class:`Proxy`: the exact training every cell of a table gets (the data, the child network,
  the epochs and the training seeds), stored in the table;
* :func:`sample_cells` and :func:`measure_cell`: distinct uniformly sampled cells of a space,
  each trained once per seed (reward per seed, parameters, mult-adds, training CPU-seconds);
  :func:`train_on_proxy` trains any genotype so (NASNet-A, outside the space, for comparison);
* :class:`RowLog`: the crash-safe append-only file a table is built in (one JSON line per
  cell, flushed and fsynced; a line cut short by ``kill -9`` is dropped on reopening, so a build
  resumes where it stopped);
* :func:`write_table` / :func:`load_table`: the compressed, versioned file a finished (or
  growing) table ships as, inside the package (:data:`TABLE_FILE`);
* :class:`TableSupport`: the table's cells, which a strategy searching the table proposes from
  (random: unqueried cells; the controller: its policy renormalised over them; evolution: the
  nearest table cell to a parent);
* :class:`TabularExecutor`: ``execution.backend: tabular``; a child's reward is the table's reward
  for the seed its training would have used. A genotype the table does not hold is one
  ``ValueError`` naming it, never a guess.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nasnet_det.search.space import Decisions, SearchSpace

from nasnet_det.genotypes import Genotype
from nasnet_det.io import atomic_call

__all__ = [
    "FORMAT",
    "TABLE_FILE",
    "Proxy",
    "Repeatability",
    "RowLog",
    "Table",
    "TableSupport",
    "TabularExecutor",
    "build_child",
    "check_table",
    "load_table",
    "measure_cell",
    "repeatability",
    "sample_cells",
    "split_mean_tau",
    "train_on_proxy",
    "write_table",
]

FORMAT = "nasnet_det.search.tabular/1"
#: The table shipped with the package (built by ``bench/build_table.py``).
TABLE_FILE = Path(__file__).resolve().parent / "tables" / "demo_digit_crops.json.gz"
COLUMNS = ("key", "rewards", "params", "mult_adds", "train_cpu_s")


@dataclass(frozen=True)
class Proxy:
    """How every cell of a table is trained: ``data`` and ``child`` config sections of
    :func:`~nasnet_det.search.child.train_child`, once per seed in ``seeds``.

    The defaults are the shipped table's proxy (``bench/build_table.py build``'s defaults):
    16 px crops, 1,000 training and 2,000 held-out, child N=1 F=8, 3 epochs at batch 32, lr 0.05,
    four training seeds per cell (one training repeats badly: the rewards of a 3-epoch training
    depend on when it leaves the loss plateau; docs/BENCHMARKS.md, "A proxy that repeats")."""

    image_size: int = 16
    train_size: int = 1000
    val_size: int = 2000
    split_seed: int = 0
    num_cells: int = 1
    num_conv_filters: int = 8
    stem_multiplier: float = 1.0
    epochs: int = 3
    batch_size: int = 32
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    dataset: str = "digit_crops"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"Proxy.seeds: expected distinct training seeds, got {self.seeds}")

    def data_cfg(self) -> dict[str, Any]:
        return {"name": self.dataset, "image_size": self.image_size, "train_size": self.train_size,
                "val_size": self.val_size, "split_seed": self.split_seed}  # fmt: skip

    def child_cfg(self) -> dict[str, Any]:
        return {"num_cells": self.num_cells, "num_conv_filters": self.num_conv_filters,
                "stem_multiplier": self.stem_multiplier, "epochs": self.epochs,
                "batch_size": self.batch_size, "eval_batch_size": 500, "lr": self.lr,
                "device": "cpu"}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


def sample_cells(space: SearchSpace, n: int, seed: int) -> list[Decisions]:
    """``n`` distinct uniformly random children of ``space``; the same seed gives the same list,
    and a longer list starts with the shorter one (a table grows without reordering)."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        d = space.sample(rng)
        if space.key(d) not in seen:
            seen.add(space.key(d))
            out.append(d)
    return out


def mult_adds(genotype: Genotype, proxy: Proxy, num_classes: int = 10) -> int:
    """Multiply-adds of one forward pass of the proxy's child on one image (fvcore's count)."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    model = build_child(genotype, proxy, num_classes).eval()
    s = proxy.image_size
    fca = FlopCountAnalysis(model, torch.zeros(1, 3, s, s))
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    return int(fca.total())


def build_child(genotype: Genotype, proxy: Proxy, num_classes: int = 10):
    """The untrained child network the proxy trains (a CIFAR-style NASNet of ``genotype``)."""
    from nasnet_det.nasnet import build_nasnet

    return build_nasnet("nasnet_a_cifar", genotype=genotype, num_cells=proxy.num_cells,
                        num_conv_filters=proxy.num_conv_filters,
                        stem_multiplier=proxy.stem_multiplier, num_classes=num_classes,
                        use_aux_head=False, drop_path_keep_prob=1.0,
                        image_size=proxy.image_size)  # fmt: skip


def train_on_proxy(genotype: Genotype, proxy: Proxy) -> dict[str, Any]:
    """Train ``genotype`` once per proxy seed in this process (one thread, deterministic
    algorithms, as a search worker trains it): ``{"rewards", "params", "train_cpu_s"}``. Any
    genotype, in the table's space or not (the transfer study measures NASNet-A so)."""
    from nasnet_det.search.child import run_child
    from nasnet_det.search.data import cached_dataset

    cached_dataset(proxy.data_cfg())  # rendered once per process, outside the timed training
    rewards, cpu, params = [], [], None
    for s in proxy.seeds:
        task = {"child_id": 0, "genotype": genotype.to_dict(), "child": proxy.child_cfg(),
                "data": proxy.data_cfg(), "seed": s, "num_threads": 1}  # fmt: skip
        start = time.process_time()
        rec = run_child(task)
        cpu.append(round(time.process_time() - start, 2))
        if rec["status"] != "ok":
            raise RuntimeError(f"cell {genotype.name!r} seed {s} failed: {rec['error']}")
        rewards.append(rec["reward"])
        params = rec["params"]
    return {"rewards": rewards, "params": params, "train_cpu_s": cpu}


def measure_cell(space: SearchSpace, decisions: Decisions, proxy: Proxy) -> dict[str, Any]:
    """One table row: the child ``decisions`` trained by :func:`train_on_proxy`, its key and
    mult-adds."""
    import torch

    genotype = space.decode(decisions)
    try:
        trained = train_on_proxy(genotype, proxy)
    except RuntimeError as e:
        raise RuntimeError(f"{space.key(decisions)}: {e}") from None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        madds = mult_adds(genotype, proxy)
    finally:
        torch.set_num_threads(threads)
    return {"key": space.key(decisions), "rewards": trained["rewards"],
            "params": trained["params"], "mult_adds": madds,
            "train_cpu_s": trained["train_cpu_s"]}  # fmt: skip


def header(space: SearchSpace, proxy: Proxy, sample_seed: int) -> dict[str, Any]:
    """What a table's rows mean: the format, the space, the proxy and the sampling seed."""
    return {"format": FORMAT, "space": {"num_blocks": space.num_blocks, "ops": list(space.ops),
            "combiners": list(space.combiners)}, "proxy": proxy.to_dict(),
            "sample_seed": sample_seed, "columns": list(COLUMNS)}  # fmt: skip


class RowLog:
    """An append-only JSON-lines file: the header line, then one row per line, each flushed and
    fsynced before :meth:`append` returns. Reopening drops a last line cut short by a kill and
    refuses a file whose header differs (another proxy, space or sampling seed)."""

    def __init__(self, path: str | os.PathLike, head: dict[str, Any]) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if not self.path.exists():
            text = json.dumps(head, sort_keys=True) + "\n"
            atomic_call(self.path, lambda tmp: Path(tmp).write_text(text), what="table log")
        raw = self.path.read_bytes()
        good = 0
        for i, line in enumerate(raw.splitlines(keepends=True)):
            if not line.endswith(b"\n"):
                break  # cut short by a kill: dropped below
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                if i == 0:
                    raise ValueError(f"{str(self.path)!r} is not a table log") from None
                break
            if i == 0 and obj != json.loads(json.dumps(head)):
                raise ValueError(
                    f"{str(self.path)!r} holds a table of another proxy, space or sampling "
                    "seed; use another file"
                )
            if i > 0:
                self.rows.append(obj)
            good += len(line)
        if good < len(raw):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)


def write_table(path: str | os.PathLike, head: dict[str, Any], rows: Sequence[dict]) -> Path:
    """The shipped form: gzip-compressed JSON, the header plus rows as lists in column order."""
    cols = head["columns"]
    doc = {**head, "rows": [[r[c] for c in cols] for r in rows]}
    data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)
    return atomic_call(path, lambda tmp: Path(tmp).write_bytes(data), what="table")


@dataclass
class Table:
    """A loaded table: its header and the rows by key (``space.key`` of the decisions)."""

    head: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(repr=False)
    path: str = ""
    digest: str = ""  # sha256 of the file's bytes: the table's identity wherever it lies

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_config(self.head["space"])

    @property
    def proxy(self) -> Proxy:
        return Proxy(**self.head["proxy"])

    @property
    def transfer(self) -> dict[str, dict[str, list]]:
        """Detection results of the cells a transfer study trained (by key: ``seeds``,
        ``accuracy_pct``, ``AP``, ``AP50``, one value per seed); empty for most cells."""
        return self.head.get("transfer", {}).get("cells", {})

    def mean_rewards(self) -> dict[str, float]:
        return {k: float(np.mean(r["rewards"])) for k, r in self.rows.items()}

    def lookup(self, genotype: Genotype | dict) -> dict[str, Any]:
        """The row of ``genotype``; one ``ValueError`` when the table does not hold it."""
        g = genotype if isinstance(genotype, Genotype) else Genotype.from_dict(genotype)
        try:
            key = self.space.key(self.space.encode(g))
        except ValueError as e:
            raise ValueError(f"genotype is outside the table's space ({e})") from None
        if key not in self.rows:
            raise ValueError(
                f"genotype {key} is not in the table {self.path!r} ({len(self.rows)} cells): "
                "the tabular backend only looks cells up; search the table's cells or train "
                "this one (backend local)"
            )
        return self.rows[key]


_TABLES: dict[str, Table] = {}


def load_table(path: str | os.PathLike | None = None) -> Table:
    """The table at ``path`` (None: the shipped :data:`TABLE_FILE`), read once per process; a
    missing, corrupt or foreign file is one ``ValueError``."""
    p = str(Path(path or TABLE_FILE).resolve())
    if p in _TABLES:
        return _TABLES[p]
    import zlib

    from nasnet_det.limits import LIMITS, limit, read_input_bytes

    packed = read_input_bytes(p, "json", "execution.table")  # a regular file, bounded
    cap = limit("json")
    try:
        unpacker = zlib.decompressobj(wbits=31)  # gzip, inflated at most to the JSON limit
        text = unpacker.decompress(packed, cap + 1)
        if len(text) > cap or unpacker.unconsumed_tail:
            raise ValueError(
                f"execution.table {p!r} inflates to more than {cap >> 20} MB "
                f"(raise the limit with {LIMITS['json'].env}=<MB>)"
            )
        if not unpacker.eof:
            raise EOFError("the compressed data ends early")
        doc = json.loads(text)
    except (zlib.error, EOFError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        raise ValueError(f"execution.table {p!r} is not a gzip-compressed table ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"execution.table {p!r} has format {got!r}; expected {FORMAT!r}")
    try:
        cols = list(doc["columns"])
        rows = {str(r[0]): dict(zip(cols, r)) for r in doc.pop("rows")}
    except (KeyError, TypeError, IndexError):
        raise ValueError(
            f"execution.table {p!r} lacks its columns or rows (format {FORMAT!r})"
        ) from None
    import hashlib

    _TABLES[p] = Table(doc, rows, p, hashlib.sha256(packed).hexdigest())
    return _TABLES[p]


def check_table(path: str | os.PathLike | None, space: SearchSpace | None = None) -> Table:
    """The table at ``path`` (see :func:`load_table`); one ``ValueError`` when ``space`` is not
    the table's (every child would then be missing from it)."""
    table = load_table(path)
    if space is not None and space != table.space:
        raise ValueError(
            f"the search space ({space.num_blocks} blocks, ops {list(space.ops)}, combiners "
            f"{list(space.combiners)}) is not the table's ({table.head['space']}); set space: "
            f"to the table's to search it"
        )
    return table


class TableSupport:
    """The cells a table holds, as decision sequences (``cells``: ``[n, T]`` int64, in key
    order, so every draw depends on the generator alone): what a strategy restricted to a table
    proposes from (:meth:`~nasnet_det.search.strategies.base.Strategy.restrict`)."""

    def __init__(self, space: SearchSpace, keys: Sequence[str]) -> None:
        self.space = space
        self.keys = sorted(set(keys))
        if not self.keys:
            raise ValueError("a table support needs at least one cell")
        self.cells = np.array([space.validate(space.parse_key(k)) for k in self.keys], np.int64)
        self.index = {k: i for i, k in enumerate(self.keys)}

    @classmethod
    def from_table(cls, table: Table) -> TableSupport:
        return cls(table.space, list(table.rows))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, decisions: Sequence[int]) -> bool:
        return self.space.key(decisions) in self.index

    def cell(self, i: int) -> Decisions:
        return tuple(int(v) for v in self.cells[i])

    def draw(self, rng: np.random.Generator, n: int, exclude: Any = ()) -> list[Decisions]:
        """``n`` distinct cells drawn uniformly among those whose key is not in ``exclude``;
        once those run out, the rest uniformly among all cells."""
        free = [i for i, k in enumerate(self.keys) if k not in exclude]
        take = min(n, len(free))
        picks = [int(i) for i in rng.choice(free, take, replace=False)] if take else []
        picks += [int(i) for i in rng.integers(len(self.keys), size=n - take)]
        return [self.cell(i) for i in picks]

    def nearest(
        self, parent: Sequence[int], rng: np.random.Generator, exclude: Any = ()
    ) -> Decisions:
        """A table cell other than ``parent`` at the smallest Hamming distance from it (number of
        decisions that differ), ties broken at random: mutation restricted to the table. Cells
        whose key is in ``exclude`` (those proposed already) are passed over while any other is
        left, so a mutation is a new query. A table holding only ``parent`` returns it."""
        dist = (self.cells != np.asarray(self.space.validate(parent))[None, :]).sum(1)
        far = dist.max() + 1
        dist[dist == 0] = far if len(self) > 1 else 0
        taken = [self.index[k] for k in exclude if k in self.index]
        if taken:
            free = dist.copy()
            free[taken] = far + 1
            if free.min() < far:  # a cell neither the parent nor proposed is left
                dist = free
        best = np.flatnonzero(dist == dist.min())
        return self.cell(int(rng.choice(best)))


class TabularExecutor:
    """``execution.backend: tabular``: each child's record from the table, in task order. The
    reward is the table's reward for training seed ``seed % len(seeds)`` (the search's child
    seed picks one of the stored trainings, as a fresh training would draw its luck); the
    seconds are that training's CPU-seconds."""

    def __init__(self, table: str | os.PathLike | None = None) -> None:
        self.table = load_table(table)

    def run(self, tasks: Sequence[dict]) -> Iterator[dict]:
        for t in tasks:
            row = self.table.lookup(t["genotype"])
            i = int(t["seed"]) % len(row["rewards"])
            yield {"child_id": t["child_id"], "reward": float(row["rewards"][i]),
                   "params": int(row["params"]), "status": "ok", "error": "",
                   "seconds": float(row["train_cpu_s"][i])}  # fmt: skip

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Repeatability:
    """How well a table's reward repeats under fresh training seeds, from ``rewards[cell, seed]``.

    Variance components of the two-way model ``reward = cell + seed + noise`` (a seed's shift
    shared by all cells moves no rank, so it is not noise): ``cell_var`` (between cells) and
    ``noise_var`` (a training's own luck), in squared accuracy points. ``icc`` is the correlation
    of two single trainings of a cell, and Spearman-Brown's ``reliability(k)`` that of two means
    of ``k`` fresh trainings each; :meth:`predicted_tau` turns it into Kendall's tau for normal
    scores, ``2 / pi * arcsin(r)``. ``eval_se`` is the binomial standard error of one accuracy on
    ``val_size`` images at the median reward (the held-out set's share of the noise).
    """

    cells: int
    seeds: int
    cell_var: float
    noise_var: float
    seed_shift: tuple[float, ...]
    eval_se: float

    @property
    def icc(self) -> float:
        return self.reliability(1)

    def reliability(self, k: int) -> float:
        total = self.cell_var + self.noise_var / k
        return max(0.0, self.cell_var / total) if total > 0 else float("nan")

    def predicted_tau(self, k: int) -> float:
        return float(2 / np.pi * np.arcsin(self.reliability(k)))

    def seeds_for(self, tau: float, at_most: int = 64) -> int | None:
        """The fewest averaged trainings per cell whose mean repeats at ``tau`` (None: more than
        ``at_most``)."""
        return next((k for k in range(1, at_most + 1) if self.predicted_tau(k) >= tau), None)


def repeatability(rewards: Any, val_size: int) -> Repeatability:
    """:class:`Repeatability` of ``rewards[cell, seed]`` (accuracy points, >= 2 cells and seeds;
    fewer is one ``ValueError``)."""
    r = np.asarray(rewards, dtype=float)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2:
        raise ValueError(f"repeatability needs rewards [cells >= 2, seeds >= 2], got {r.shape}")
    n, s = r.shape
    cell_mean, seed_mean, grand = r.mean(1), r.mean(0), r.mean()
    resid = r - cell_mean[:, None] - seed_mean[None, :] + grand
    noise = float((resid**2).sum() / ((n - 1) * (s - 1)))
    ms_cells = s * float(((cell_mean - grand) ** 2).sum()) / (n - 1)
    p = float(np.median(r)) / 100
    return Repeatability(n, s, max(0.0, (ms_cells - noise) / s), noise,
                         tuple(float(v) for v in seed_mean - grand),
                         100 * float(np.sqrt(p * (1 - p) / val_size)))  # fmt: skip


def split_mean_tau(rewards: Any, k: int) -> tuple[float, float, float]:
    """Kendall tau of the mean of seeds ``0..k-1`` against the mean of seeds ``k..2k-1`` (two
    disjoint sets of fresh trainings), with its 95% bootstrap interval (cells resampled,
    percentile method): ``(tau, lo, hi)``."""
    from scipy import stats

    r = np.asarray(rewards, dtype=float)
    if r.shape[1] < 2 * k:
        raise ValueError(f"split_mean_tau(k={k}) needs {2 * k} seeds per cell, got {r.shape[1]}")
    a, b = r[:, :k].mean(1), r[:, k : 2 * k].mean(1)
    tau = float(stats.kendalltau(a, b).statistic)
    res = stats.bootstrap((a, b), lambda x, y: stats.kendalltau(x, y).statistic, paired=True,
                          vectorized=False, n_resamples=2000, method="percentile",
                          rng=np.random.default_rng(0))  # fmt: skip
    lo, hi = res.confidence_interval
    return tau, float(lo), float(hi)
