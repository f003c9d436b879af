"""tools/search_cells.py under bad input: exit 2, one line naming the problem, no traceback, the
output folder exactly as it was (none created, no temporary file). Tools run in-process."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/search/instant_test.yaml"
TOOL = "search_cells.py"
# In-process children, no bar, one tiny round: a case that got past the checks would finish.
FAST = ["execution.num_workers", "0", "max_children", "1", "strategy.batch_size", "1"]
RUN = ["--config", "{cfg}", "--output", "{out}", "--no-progress"]


class _Payload:
    """Unpickling this runs a shell command: what a hostile file would carry."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


# Each case: (id, arguments, expected substring of the one error line, what to prepare).
# Placeholders: {cfg} instant_test.yaml, {out} OUT, {tmp} a scratch folder (bad files). OUT is
# "none" (absent: it must stay absent), "empty" (an empty folder), "run" (a finished search),
# "corrupt" (a history that is not SQLite) or "read-only".
CASES = [
    ("max-children-flag-0", [*RUN, "--max-children", "0", *FAST[:2]], "--max-children must be >= 1",
     "none"),
    ("max-children-key-0", [*RUN, *FAST[:2], "max_children", "0"],
     "max_children must be an integer >= 1, got 0", "none"),
    ("negative-lr", [*RUN, *FAST, "child.lr", "-1"], "child.lr must be a number > 0, got -1.0",
     "none"),
    ("zero-epochs", [*RUN, *FAST, "child.epochs", "0"], "child.epochs must be an integer >= 1",
     "none"),
    ("lr-not-a-number", [*RUN, *FAST, "child.lr", "abc"], "child.lr expects a float", "none"),
    ("unknown-key-cli", [*RUN, *FAST, "child.epoch", "3"], "unknown config key child.epoch",
     "none"),
    ("unknown-node-cli", [*RUN, *FAST, "chld.epochs", "3"], "unknown config key chld.epochs",
     "none"),
    ("unknown-strategy-param", [*RUN, *FAST, "strategy.temperature", "2"],
     "unknown config key strategy.temperature for strategy 'random'", "none"),
    ("odd-overrides", [*RUN, *FAST, "child.epochs"], "KEY VALUE pairs", "none"),
    ("unknown-strategy", [*RUN, *FAST, "strategy.name", "bayes"], "strategy.name must be one of"
     " evolution, ppo, random, reinforce, got 'bayes'", "none"),
    ("evolution-sizes", [*RUN, *FAST, "strategy.name", "evolution", "strategy.population_size",
     "4"], "sample_size <= population_size", "none"),
    ("unknown-op", [*RUN, *FAST, "space.ops", "[identity, conv_9x9]"], "unknown op 'conv_9x9'",
     "none"),
    ("unknown-dataset", [*RUN, *FAST, "data.name", "mnist"], "data.name must be one of"
     " cifar10, digits, digit_crops, got 'mnist'", "none"),
    ("tabular-missing-table", [*RUN, *FAST, "execution.backend", "tabular", "execution.table",
     "{tmp}/missing.json.gz"], "missing.json.gz' does not exist", "none"),
    ("tabular-table-not-gzip", [*RUN, *FAST, "execution.backend", "tabular", "execution.table",
     "{tmp}/broken.yaml"], "is not a gzip-compressed table", "none"),
    ("tabular-other-space", [*RUN, *FAST, "execution.backend", "tabular"],
     "is not the table's", "none"),
    ("split-too-large", [*RUN, *FAST, "data.train_size", "1700", "data.val_size", "200"],
     "at most 1797", "none"),
    ("round-size-0", [*RUN, *FAST, "round_size", "0"], "round_size must be an integer >= 1",
     "none"),
    ("train-fn-module-path", [*RUN, *FAST, "execution.train_fn", "os:system"],
     "'os:system' is not a registered training function", "none"),
    ("train-fn-in-yaml", ["--config", "{tmp}/train_fn.yaml", *RUN[2:]],
     "not a registered training function", "none"),
    ("unknown-key-yaml", ["--config", "{tmp}/unknown.yaml", *RUN[2:]],
     "unknown config key child.epoch", "none"),
    ("missing-config", ["--config", "{tmp}/missing.yaml", *RUN[2:]], "does not exist", "none"),
    ("config-is-folder", ["--config", "{tmp}", *RUN[2:]], "is a folder", "none"),
    ("config-not-utf8", ["--config", "{tmp}/latin1.yaml", *RUN[2:]], "is not UTF-8", "none"),
    ("config-malformed", ["--config", "{tmp}/broken.yaml", *RUN[2:]], "is not valid YAML",
     "none"),
    ("config-python-tag", ["--config", "{tmp}/evil.yaml", *RUN[2:]], "builds Python objects",
     "none"),
    ("config-empty", ["--config", "{tmp}/empty.yaml", *RUN[2:]], "is empty", "none"),
    ("cifar-missing", [*RUN, *FAST, "data.name", "cifar10", "data.root", "{tmp}/nowhere"],
     "cifar-10-batches-py", "none"),
    ("cifar-incomplete", [*RUN, *FAST, "data.name", "cifar10", "data.root", "{tmp}/cifar_part"],
     "incomplete: missing", "none"),
    ("cifar-wrong-pickles", [*RUN, *FAST, "data.name", "cifar10", "data.root",
     "{tmp}/cifar_evil"], "data_batch_2' is corrupt or not a CIFAR batch", "none"),
    ("cifar-not-pickles", [*RUN, *FAST, "data.name", "cifar10", "data.root", "{tmp}/cifar_text"],
     "data_batch_1' is corrupt or not a CIFAR batch", "none"),
    ("output-is-a-file", ["--config", "{cfg}", "--output", "{tmp}/file.txt", *FAST],
     "is a file, expected a folder", "none"),
    ("output-read-only", [*RUN, *FAST], "not writable", "read-only"),
    ("existing-history", [*RUN, *FAST], "already holds a search history; pass --resume", "run"),
    ("resume-nothing", [*RUN, "--resume", *FAST], "no search history", "empty"),
    ("resume-and-overwrite", [*RUN, "--resume", "--overwrite"], "exclude each other", "run"),
    ("resume-changed-search", [*RUN, "--resume", *FAST, "seed", "1"],
     "written by a different search", "run"),
    ("resume-corrupt-history", [*RUN, "--resume", *FAST], "corrupt or not a search history",
     "corrupt"),
    ("no-config", ["--output", "{out}"], "--config is required", "none"),
    ("compare-no-leaderboard", ["--compare", "{tmp}", "--output", "{out}/x.png"],
     "no leaderboard.csv", "none"),
    ("compare-bad-leaderboard", ["--compare", "{tmp}/bad_run", "--output", "{out}/x.png"],
     "is not a search leaderboard", "none"),
    ("compare-output-folder", ["--compare", "{tmp}/bad_run", "--output", "{tmp}"],
     "is a folder", "none"),
]  # fmt: skip


def _fake_cifar(folder: Path, bad: dict[int, bytes] | None = None, files: int = 5) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, files + 1):
        batch = {
            "data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, 10)],
        }
        blob = (bad or {}).get(i) or pickle.dumps(batch)
        (folder / f"data_batch_{i}").write_bytes(blob)


def _scratch(tmp: Path) -> None:
    """The bad files the table points at."""
    marker = tmp / "marker"
    (tmp / "unknown.yaml").write_text(f"_BASE_: {INSTANT}\nchild:\n  epoch: 3\n")
    (tmp / "train_fn.yaml").write_text(f"_BASE_: {INSTANT}\nexecution:\n  train_fn: os:system\n")
    (tmp / "latin1.yaml").write_bytes("# caf\xe9\nseed: 1\n".encode("latin-1"))
    (tmp / "broken.yaml").write_text("child:\n  epochs: [1\n")
    (tmp / "evil.yaml").write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    (tmp / "empty.yaml").write_text("")
    (tmp / "file.txt").write_text("I am a file, not a folder\n")
    _fake_cifar(tmp / "cifar_part" / "cifar-10-batches-py", files=2)
    evil = pickle.dumps({"data": _Payload(f"touch {marker}"), "labels": [0]})
    _fake_cifar(tmp / "cifar_evil" / "cifar-10-batches-py", bad={2: evil})
    _fake_cifar(tmp / "cifar_text" / "cifar-10-batches-py", bad={1: b"just some text\n"})
    (tmp / "bad_run").mkdir()
    (tmp / "bad_run" / "leaderboard.csv").write_text("rank,score\n1,abc\n")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real finished one-child search (copied into OUT by the cases that need one)."""
    run = tmp_path_factory.mktemp("search_reliability") / "run"
    res = run_tool(TOOL, "--config", INSTANT, "--output", run, "--no-progress", *FAST,
                   "outputs.diagrams", "false")  # fmt: skip
    assert res.rc == 0, res.stderr
    assert (run / "rewards.png").is_file()
    return run


def _prepare(how: str, out: Path, run: Path, monkeypatch) -> None:
    if how == "run":
        shutil.copytree(run, out)
    elif how != "none":
        out.mkdir()
    if how == "corrupt":
        (out / "history.sqlite").write_bytes(b"not a database " * 100)
    if how == "read-only":
        out.chmod(0o555)
        if os.geteuid() == 0:  # root writes anywhere; make the check see what a user would
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: False)


@pytest.mark.parametrize("args,message,how", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(finished_run, tmp_path, monkeypatch, args, message, how):
    tmp, out = tmp_path / "scratch", tmp_path / "out"
    tmp.mkdir()
    _scratch(tmp)
    _prepare(how, out, finished_run, monkeypatch)
    before, scratch_before = snapshot(out), snapshot(tmp)
    values = {"cfg": INSTANT, "out": out, "tmp": tmp}
    result = run_tool(TOOL, *(a.format(**values) for a in args))
    monkeypatch.undo()
    assert_clean_failure(result, message, before, out)
    assert snapshot(tmp) == scratch_before  # nothing written beside OUT either
    assert not (tmp / "marker").exists()  # no yaml tag, pickle or config-named function ran
    if how == "none":
        assert not out.exists()


def test_table_covers_at_least_twenty_inputs():
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def _fail_writes(match: str):
    """``os.fsync`` that fails like a full disk for files whose name contains ``match``."""
    real = os.fsync

    def fsync(fd):
        if match in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    return fsync


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_disk_full_on_the_plot_is_one_line_and_keeps_the_previous_plot(
    finished_run, tmp_path, monkeypatch
):
    """A resumed search whose disk fills while it writes rewards.png: one line naming the file
    and the cause, no temporary file left, the previous rewards.png intact."""
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    plot = (out / "rewards.png").read_bytes()
    monkeypatch.setattr(os, "fsync", _fail_writes("rewards.png"))
    result = run_tool(TOOL, "--config", INSTANT, "--output", out, "--no-progress", "--resume",
                      *FAST[:2], "max_children", "2", "strategy.batch_size", "1",
                      "outputs.diagrams", "false")  # fmt: skip
    monkeypatch.undo()
    assert_clean_failure(result, "no space left on the device")
    assert "rewards.png" in result.stderr
    assert _temporaries(out) == [] and (out / "rewards.png").read_bytes() == plot


def test_disk_full_from_the_start_is_one_line(tmp_path, monkeypatch):
    """Every write fails: one line, no temporary file; only the history (the resume point,
    written by SQLite) is left, holding the children that finished."""
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", _fail_writes(str(out)))
    result = run_tool(TOOL, "--config", INSTANT, "--output", out, "--no-progress", *FAST)
    monkeypatch.undo()
    assert_clean_failure(result, "no space left on the device")
    assert "leaderboard.csv" in result.stderr
    assert _temporaries(out) == [] and sorted(snapshot(out)) == ["history.sqlite"]


def test_history_of_a_search_that_never_started_is_removed(tmp_path):
    """SQLite meets a full disk (here: RLIMIT_FSIZE of 1 KB in a fresh interpreter, below one
    database page) while it creates the history: one line, and no history.sqlite (nor the
    folder) of a search that stored nothing is left to demand --resume or --overwrite."""
    import resource
    import signal
    import subprocess

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, str(ROOT / "tools" / TOOL), "--config", str(INSTANT), "--output",
         str(out), "--no-progress", *FAST],
        capture_output=True, text=True, timeout=600, preexec_fn=cap,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    from harness import Result

    assert_clean_failure(Result(p.returncode, p.stdout, p.stderr), "cannot write search history")
    assert not out.exists()
