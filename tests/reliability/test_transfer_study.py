"""tools/transfer_study.py under bad input: exit 2, one line naming the problem, no traceback,
the output folder exactly as it was. Every case fails before any cell trains (in-process)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

TOOL = "transfer_study.py"


def _cell(i: int) -> dict:
    """NASNet-A's cell with the i-th normal pair's first op changed: distinct real cells."""
    from nasnet_det.genotypes import NASNET_A

    d = NASNET_A.to_dict()
    ops = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"]
    d["normal"][0]["left"][0] = ops[i % len(ops)]
    d["name"] = f"cell{i}"
    return d


def _search(folder: Path, n: int = 4) -> Path:
    """A finished-search folder as the runner leaves it: leaderboard.csv and the history."""
    from nasnet_det.search.history import History

    folder.mkdir(parents=True)
    with open(folder / "leaderboard.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "child_id", "reward", "status", "phase", "genotype"])
        for i in range(n):
            w.writerow([i + 1, i, 0.9 - 0.1 * i, "ok", "standalone", json.dumps(_cell(i))])
    h = History(folder / "history.sqlite", create=True)
    h.set_meta("config", {"seed": 0, "child": {"epochs": 1}, "data": {"name": "digits"}})
    h.close()
    return folder


# (id, arguments, expected substring of the one error line). {s}: a 4-child search, {out}: OUT.
CASES = [
    ("no-search-folder", ["--search", "{tmp}/nothing", "--k", "2"], "is not a finished search"),
    ("search-is-a-file", ["--search", "{tmp}/file.txt", "--k", "2"], "is not a finished search"),
    ("k-too-small", ["--search", "{s}", "--k", "1"], "--k must be at least 2"),
    ("k-too-large", ["--search", "{s}", "--k", "5"], "4 distinct trained children, fewer than k=5"),
    ("zero-detector-iters", ["--search", "{s}", "--k", "2", "--detector-iters", "0"],
     "detector_iters must be a positive integer"),
    ("zero-pretrain-iters", ["--search", "{s}", "--k", "2", "--pretrain-iters", "0"],
     "pretrain_iters must be a positive integer"),
    ("negative-workers", ["--search", "{s}", "--k", "2", "--workers", "-1"],
     "--workers must be 0 or more"),
    ("k-not-a-number", ["--search", "{s}", "--k", "two"], "invalid int value"),
    ("output-is-a-file", ["--search", "{s}", "--k", "2", "--output", "{tmp}/file.txt"],
     "file.txt"),
    ("study-of-another-budget", ["--search", "{s}", "--k", "2", "--detector-iters", "7"],
     "holds a transfer study with another search, k, budget or seeds"),
    ("table-missing", ["--table", "{tmp}/no_table.json.gz", "--k", "2"],
     "no_table.json.gz' does not exist"),
    ("table-not-gzip", ["--table", "{tmp}/file.txt", "--k", "2"],
     "is not a gzip-compressed table"),
    ("table-and-search", ["--search", "{s}", "--table", "--k", "2"],
     "not allowed with argument"),
    ("seeds-repeated", ["--table", "--k", "2", "--seeds", "1", "1"],
     "--seeds must be distinct integers, got [1, 1]"),
    # {n1}: one more cell than the shipped table holds, {n}: its cell count.
    ("table-k-too-large", ["--table", "--k", "{n1}"], "the table has {n} cells, fewer than k={n1}"),
    # A hand-edited leaderboard: refused before OUT exists (it used to be created first).
    ("leaderboard-reward-text", ["--search", "{tmp}/edited/reward", "--k", "2"],
     "line 3: reward 'high' and child_id '1' must be a number and an integer"),
    ("leaderboard-genotype-not-a-cell", ["--search", "{tmp}/edited/cell", "--k", "2"],
     "line 2: genotype: unknown field(s) ['n']"),
    ("leaderboard-genotype-not-json", ["--search", "{tmp}/edited/json", "--k", "2"],
     "line 4: genotype is not JSON"),
    ("leaderboard-not-utf8", ["--search", "{tmp}/edited/latin1", "--k", "2"],
     "is not a CSV file we can read"),
    ("leaderboard-no-status", ["--search", "{tmp}/edited/columns", "--k", "2"],
     "lacks columns ['status']"),
]  # fmt: skip


def _edited(tmp: Path) -> None:
    """Searches whose leaderboard.csv was edited by hand, one defect each."""
    edits = {
        "reward": lambda t: t.replace(",0.8,", ",high,", 1),
        "cell": lambda t: t.replace('"{""name"": ""cell0""', '"{""name"": ""x"", ""n"": 1', 1),
        "json": lambda t: t.replace('"{""name"": ""cell2""', '"{""name"" ""cell2""', 1),
        "columns": lambda t: t.replace(",status,", ",state,", 1),
    }
    for name, edit in {**edits, "latin1": None}.items():
        board = _search(tmp / "edited" / name) / "leaderboard.csv"
        if edit is None:
            extra = "5,9,0.1,ok,standalone,caf\xe9\n".encode("latin-1")
            board.write_bytes(board.read_bytes() + extra)
        else:
            text = board.read_text()
            assert edit(text) != text, name
            board.write_text(edit(text))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(case, tmp_path):
    name, args, message = case
    search = _search(tmp_path / "search")
    _edited(tmp_path)
    (tmp_path / "file.txt").write_text("not a folder\n")
    out = tmp_path / "out"
    if name == "study-of-another-budget":
        out.mkdir()
        plan = {"search": str(search.resolve()), "k": 2, "budget": {}, "cells": []}
        (out / "study.json").write_text(json.dumps(plan))
    from nasnet_det.search.tabular import load_table

    n = len(load_table().rows)
    subs = {"{s}": str(search), "{tmp}": str(tmp_path), "{out}": str(out), "{n1}": str(n + 1),
            "{n}": str(n)}  # fmt: skip
    argv = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    if "--output" not in argv:
        argv += ["--output", str(out)]
    for k, v in subs.items():
        message = message.replace(k, v)
    before = snapshot(out)
    result = run_tool(TOOL, *argv, "--no-progress")
    assert_clean_failure(result, message, before, out)


def test_a_crashed_worker_is_one_line(tmp_path, monkeypatch):
    """A worker that dies (here: it calls os._exit instead of training its cell, as an OOM kill
    would end it) breaks the process pool; the tool says so in one line, exit 2, not a
    BrokenProcessPool traceback."""
    import concurrent.futures
    import os

    search = _search(tmp_path / "search")

    class DyingPool(concurrent.futures.ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            return super().submit(os._exit, 3)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", DyingPool)
    out = tmp_path / "out"
    result = run_tool(TOOL, "--search", search, "--k", "2", "--output", out, "--workers", "2",
                      "--no-progress")  # fmt: skip
    monkeypatch.undo()
    assert_clean_failure(result, "a worker process died while training a cell")
    assert not list((out / "cells").iterdir())  # no cell record from the dead workers
