"""tools/demo.py under bad input: exit 2, one line naming the problem, no traceback, no output
folder created. Every case fails before the search or the detector starts (in-process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

CASES = [
    ("zero-children", ["--search-children", "0"], "--search-children must be a positive integer"),
    ("negative-iters", ["--detector-iters", "-5"], "--detector-iters must be a positive integer"),
    ("negative-pretrain", ["--pretrain-iters", "-1"], "--pretrain-iters must be 0 or more"),
    ("seed-not-a-number", ["--seed", "zero"], "invalid int value"),
    ("output-is-a-file", ["--output", "{tmp}/file.txt"], "file.txt"),
    ("seed-negative", ["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
    ("seed-too-large", ["--seed", str(2**32)], "--seed must be in [0, 2**32)"),
    ("nothing-to-run", ["--skip-search", "--skip-detection"],
     "--skip-search with --skip-detection leaves nothing to run"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(case, tmp_path):
    _, args, message = case
    (tmp_path / "file.txt").write_text("not a folder\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "out"
    if "--output" not in argv:
        argv += ["--output", str(out)]
    before = snapshot(out)
    result = run_tool("demo.py", *argv, "--no-progress")
    assert_clean_failure(result, message, before, out)
    assert not out.exists()
