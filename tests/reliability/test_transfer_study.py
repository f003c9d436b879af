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


def _search(folder: Path, n: int = 4) -> Path:
    """A finished-search folder as the runner leaves it: leaderboard.csv and the history."""
    from nasnet_det.search.history import History

    folder.mkdir(parents=True)
    with open(folder / "leaderboard.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "child_id", "reward", "status", "phase", "genotype"])
        for i in range(n):
            w.writerow([i + 1, i, 0.9 - 0.1 * i, "ok", "standalone", json.dumps({"i": i})])
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
     "holds a transfer study with another search, k or budget"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(case, tmp_path):
    name, args, message = case
    search = _search(tmp_path / "search")
    (tmp_path / "file.txt").write_text("not a folder\n")
    out = tmp_path / "out"
    if name == "study-of-another-budget":
        out.mkdir()
        plan = {"search": str(search.resolve()), "k": 2, "budget": {}, "cells": []}
        (out / "study.json").write_text(json.dumps(plan))
    subs = {"{s}": str(search), "{tmp}": str(tmp_path), "{out}": str(out)}
    argv = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    if "--output" not in argv:
        argv += ["--output", str(out)]
    before = snapshot(out)
    result = run_tool(TOOL, *argv, "--no-progress")
    assert_clean_failure(result, message, before, out)
