"""The tabular benchmark: the crash-safe row log (a real SIGKILL), the shipped file format, the
``tabular`` backend returning the stored rewards, and a search on a table being deterministic."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from nasnet_det.search.runner import child_seed, run_search
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.tabular import (
    FORMAT,
    Proxy,
    RowLog,
    Table,
    TabularExecutor,
    header,
    load_table,
    sample_cells,
    write_table,
)

REPO = Path(__file__).resolve().parents[2]
# 1 block, 2 ops, one combiner: 2 * 2 inputs * 2 * 2 ops = 16 cells per cell type, 256 children:
# a table can hold every child, so any strategy can run against it.
TINY = SearchSpace(num_blocks=1, ops=("identity", "avg_pool_3x3"), combiners=("add",))


def _full_table(tmp_path: Path) -> tuple[Path, dict]:
    """Every child of TINY with made-up rewards per seed (the backend's lookup under test)."""
    rng = np.random.default_rng(0)
    rows = {}
    for d in itertools.product(*(range(n) for n in TINY.num_choices())):
        r = np.round(rng.uniform(0.2, 0.9, 2), 4).tolist()
        params = int(rng.integers(1000, 10000))
        rows[TINY.key(d)] = {"key": TINY.key(d), "rewards": r, "params": params,
                             "mult_adds": 1000, "train_cpu_s": [1.5, 2.5]}  # fmt: skip
    path = tmp_path / "table.json.gz"
    write_table(path, header(TINY, Proxy(), 0), list(rows.values()))
    return path, rows


def test_sample_cells_are_distinct_uniform_and_a_prefix_of_longer_lists():
    cells = sample_cells(TINY, 200, seed=3)
    assert len({TINY.key(d) for d in cells}) == 200
    assert sample_cells(TINY, 50, seed=3) == cells[:50]
    # Uniform: the first decision (input_a of block 0, 2 choices) splits about evenly.
    space = SearchSpace(num_blocks=3)
    first = [d[0] for d in sample_cells(space, 2000, seed=0)]
    assert abs(np.mean(first) - 0.5) < 0.04  # 4.5 sigma of a fair coin over 2000 draws


def test_row_log_survives_a_cut_line_and_refuses_another_header(tmp_path):
    head = header(TINY, Proxy(), 0)
    log = RowLog(tmp_path / "rows.jsonl", head)
    log.append({"key": "a", "rewards": [0.5, 0.6]})
    log.append({"key": "b", "rewards": [0.7, 0.8]})
    with open(tmp_path / "rows.jsonl", "a") as f:
        f.write('{"key": "c", "rew')  # what a kill in the middle of a write leaves
    again = RowLog(tmp_path / "rows.jsonl", head)
    assert [r["key"] for r in again.rows] == ["a", "b"]
    again.append({"key": "c", "rewards": [0.1, 0.2]})
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["key"] == "c"
    with pytest.raises(ValueError, match="another proxy, space or sampling seed"):
        RowLog(tmp_path / "rows.jsonl", header(TINY, Proxy(epochs=9), 0))


def test_table_file_round_trip_and_bad_files(tmp_path):
    path, rows = _full_table(tmp_path)
    table = load_table(path)
    assert table.head["format"] == FORMAT and table.proxy == Proxy()
    assert len(table.rows) == 256 and table.rows == rows
    assert table.space == TINY
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(json.dumps({"format": "other/9"}).encode()))
    with pytest.raises(ValueError, match="has format 'other/9'"):
        load_table(bad)
    (tmp_path / "plain.json").write_text("{}")
    with pytest.raises(ValueError, match="not a gzip-compressed table"):
        load_table(tmp_path / "plain.json")
    with pytest.raises(ValueError, match="does not exist"):
        load_table(tmp_path / "missing.json.gz")


def test_tabular_executor_returns_the_stored_reward_of_the_seed(tmp_path):
    path, rows = _full_table(tmp_path)
    ex = TabularExecutor(path)
    keys = list(rows)[:3]
    tasks = [{"child_id": i, "genotype": TINY.decode(TINY.parse_key(k)).to_dict(), "seed": s}
             for i, (k, s) in enumerate(zip(keys, [4, 7, 10]))]  # fmt: skip
    out = list(ex.run(tasks))
    assert [o["reward"] for o in out] == [rows[keys[0]]["rewards"][0],
                                          rows[keys[1]]["rewards"][1],
                                          rows[keys[2]]["rewards"][0]]  # fmt: skip
    assert [o["seconds"] for o in out] == [1.5, 2.5, 1.5]
    assert all(o["status"] == "ok" and o["params"] == rows[k]["params"] for o, k in zip(out, keys))


def test_a_genotype_outside_the_table_is_one_clear_error(tmp_path):
    path, rows = _full_table(tmp_path)
    missing = list(rows)[0]
    full = load_table(path)
    table = Table(full.head, {k: v for k, v in full.rows.items() if k != missing}, str(path))
    g = TINY.decode(TINY.parse_key(missing))
    with pytest.raises(ValueError, match=rf"genotype {missing} is not in the table .*255 cells"):
        table.lookup(g)
    other = SearchSpace(num_blocks=1, ops=("identity", "conv_1x1"), combiners=("add",))
    with pytest.raises(ValueError, match="outside the table's space"):
        table.lookup(other.decode((0, 0, 1, 0, 0) * 2).to_dict())  # conv_1x1: not in TINY


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_a_search_on_the_table_is_deterministic_per_seed(tmp_path, instant_config, strategy):
    path, rows = _full_table(tmp_path)
    space = ["space.num_blocks", "1", "space.ops", "['identity', 'avg_pool_3x3']",
             "space.combiners", "['add']"]  # fmt: skip
    runs = []
    for i, seed in enumerate([5, 5, 6]):
        cfg = instant_config("execution.backend", "tabular", "execution.table", str(path),
                             "strategy.name", strategy, "max_children", "24", "seed", str(seed),
                             "data.name", "cifar10", "data.root", str(tmp_path / "no_data"),
                             *space)  # fmt: skip
        res = run_search(cfg, tmp_path / f"s{i}")
        runs.append([(c["key"], c["reward"]) for c in res.children])
        for c in res.children:  # the stored reward of the child's seed, nothing trained
            if c["status"] == "ok":
                seeded = rows[c["key"]]["rewards"][child_seed(seed, c["child_id"]) % 2]
                assert c["reward"] == seeded
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert len(runs[0]) == 24


def test_the_table_builder_resumes_after_sigkill_without_retraining(tmp_path):
    log = tmp_path / "rows.jsonl"
    cmd = [sys.executable, str(REPO / "bench" / "build_table.py"), "build", "--log", str(log),
           "--cells", "40", "--image-size", "8", "--train-size", "32", "--val-size", "16",
           "--epochs", "1", "--filters", "4", "--batch-size", "32",
           "--seeds", "0", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):  # header + 2 rows
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = log.read_text().splitlines()
    stored = [json.loads(x) for x in before[1:] if x.endswith("}")]
    assert 2 <= len(stored) < 40
    cmd[cmd.index("--cells") + 1] = str(len(stored) + 2)  # finish two more cells
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(x) for x in log.read_text().splitlines()[1:]]
    assert rows[: len(stored)] == stored  # nothing stored was trained again or rewritten
    space = SearchSpace.from_config(json.loads(before[0])["space"])
    assert [r["key"] for r in rows] == [space.key(d) for d in sample_cells(space, len(rows), 0)]
    assert all(len(r["rewards"]) == 2 and 0 <= min(r["rewards"]) for r in rows)
    assert all(r["params"] > 0 and r["mult_adds"] > 0 for r in rows)
    ship = tmp_path / "t.json.gz"
    subprocess.run([*cmd[:2], "ship", "--log", str(log), "--output", str(ship)], env=env,
                   check=True, capture_output=True)  # fmt: skip
    assert set(load_table(ship).rows) == {r["key"] for r in rows}


@pytest.mark.slow
def test_the_shipped_table_retrains_within_its_seed_spread():
    """One cell of the shipped slice (its cheapest), trained live with its first seed at the
    table's exact proxy settings, lands within the stored seeds' distribution: within 3 standard
    deviations of their mean. Not bit-equal and not inside the min-max range: float rounding of
    other CPU kernels moves one 3-epoch training about as much as another seed does (with
    ONEDNN_MAX_CPU_ISA=AVX2 this cell's seed 0 gave 0.547 against the stored 0.52, the four
    seeds spanning 0.435-0.52)."""
    from nasnet_det.search.child import run_child

    table = load_table()
    assert table.head["format"] == FORMAT and len(table.rows) >= 50
    row = min(table.rows.values(), key=lambda r: sum(r["train_cpu_s"]))
    proxy, space = table.proxy, table.space
    genotype = space.decode(space.parse_key(row["key"]))
    task = {"child_id": 0, "genotype": genotype.to_dict(), "child": proxy.child_cfg(),
            "data": proxy.data_cfg(), "seed": proxy.seeds[0], "num_threads": 1}  # fmt: skip
    rec = run_child(task)
    assert rec["status"] == "ok", rec["error"]
    mean, sd = statistics.mean(row["rewards"]), statistics.stdev(row["rewards"])
    assert abs(rec["reward"] - mean) <= 3 * max(sd, 0.01), (rec["reward"], row["rewards"])
    assert rec["params"] == row["params"]
