"""tools/pretrain_imagenet.py under bad input: exit 2, one line naming the problem, no traceback,
the output folder exactly as it was (no new, changed or temporary file). Tools run in-process."""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "pretrain_test_data", ROOT / "tests/pretrain/conftest.py"
)
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)
make_dataset = _data.make_dataset  # tests/pretrain's generated class folders
INSTANT = ROOT / "configs/ImageNet/instant_test.yaml"
TOOL = "pretrain_imagenet.py"
ONE_STEP = ["train.epochs", "1", "train.max_steps", "1"]


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset and a real one-step run of instant_test (copied into each case's OUT)."""
    root = tmp_path_factory.mktemp("pretrain_reliability")
    data = make_dataset(root / "data")
    run = root / "run"
    res = run_tool(TOOL, "--config", INSTANT, "--data", data, "--output", run, "--no-progress",
                   *ONE_STEP)  # fmt: skip
    assert res.rc == 0, res.stderr
    return data, run


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


# Each case: (id, arguments, expected substring of the one error line, what to prepare).
# Placeholders: {cfg} instant_test.yaml, {data} the dataset, {out} OUT, {tmp} a scratch folder.
# Preparations: "run" copies a finished run into OUT; "empty" leaves OUT an empty folder;
# "none" leaves no OUT; others are named below.
TRAIN = ["--config", "{cfg}", "--data", "{data}", "--output", "{out}", "--no-progress"]
CASES = [
    ("existing-run", TRAIN, "already holds a training run; pass --resume", "run"),
    ("resume-and-overwrite", [*TRAIN, "--resume", "--overwrite"], "exclude each other", "run"),
    ("negative-lr", [*TRAIN, "optim.lr", "-0.1"], "optim.lr must be a number > 0", "empty"),
    ("zero-epochs", [*TRAIN, "train.epochs", "0"], "train.epochs must be an integer >= 1", "empty"),
    ("lr-not-a-number", [*TRAIN, "optim.lr", "abc"], "optim.lr expects a float", "empty"),
    ("unknown-key-cli", [*TRAIN, "optim.lrr", "0.1"], "unknown config key optim.lrr", "empty"),
    ("odd-overrides", [*TRAIN, "optim.lr"], "KEY VALUE pairs", "empty"),
    ("bad-interpolation", [*TRAIN, "data.interpolation", "nearest"],
     "data.interpolation must be one of bilinear, bicubic", "empty"),
    ("crop-scale-reversed", [*TRAIN, "data.scale", "[0.9, 0.1]"], "data.scale must be", "empty"),
    ("unknown-preset", [*TRAIN, "model.preset", "nasnet_b"], "unknown preset 'nasnet_b'", "empty"),
    ("unknown-model-field", [*TRAIN, "model.overrides.num_cellz", "2"],
     "unknown build_nasnet argument", "empty"),
    ("zero-cells", [*TRAIN, "model.overrides.num_cells", "0"], "num_cells must be a positive",
     "empty"),
    ("missing-genotype", [*TRAIN, "model.overrides.genotype", "{tmp}/nope.json"],
     "does not exist", "empty"),
    ("classes-disagree", [*TRAIN, "model.overrides.num_classes", "5"], "num_classes is 5",
     "empty"),
    ("batch-too-large", [*TRAIN, "optim.batch_size", "100"], "fewer than one global batch",
     "empty"),
    ("unknown-key-yaml", ["--config", "{tmp}/unknown.yaml", *TRAIN[2:]],
     "unknown config key optim.momentumm", "empty"),
    ("missing-config", ["--config", "{tmp}/missing.yaml", *TRAIN[2:]], "does not exist", "empty"),
    ("config-is-folder", ["--config", "{tmp}", *TRAIN[2:]], "is a folder", "empty"),
    ("config-not-utf8", ["--config", "{tmp}/latin1.yaml", *TRAIN[2:]], "is not UTF-8", "empty"),
    ("config-malformed", ["--config", "{tmp}/broken.yaml", *TRAIN[2:]], "is not valid YAML",
     "empty"),
    ("config-python-tag", ["--config", "{tmp}/evil.yaml", *TRAIN[2:]], "builds Python objects",
     "empty"),
    ("config-empty", ["--config", "{tmp}/empty.yaml", *TRAIN[2:]], "is empty", "empty"),
    ("config-section-is-list", ["--config", "{tmp}/list.yaml", *TRAIN[2:]],
     "config key optim is a section", "empty"),
    ("data-missing", ["--config", "{cfg}", "--data", "{tmp}/nowhere", "--output", "{out}"],
     "is not a directory", "empty"),
    ("data-no-images", ["--config", "{cfg}", "--data", "{tmp}/textonly", "--output", "{out}"],
     "no images found", "empty"),
    ("data-val-class-missing", ["--config", "{cfg}", "--data", "{tmp}/noval", "--output",
     "{out}"], "missing from val/: class1", "empty"),
    ("output-is-a-file", ["--config", "{cfg}", "--data", "{data}", "--output", "{tmp}/file.txt"],
     "is a file", "empty"),
    ("output-read-only", TRAIN, "not writable", "read-only"),
    ("disk-full", TRAIN, "no space left on the device", "disk-full"),
    ("resume-disk-full", [*TRAIN, "--resume"], "no space left on the device", "run+disk-full"),
    ("resume-nothing", [*TRAIN, "--resume"], "no training run to continue", "empty"),
    ("resume-truncated", [*TRAIN, "--resume"], "could not be read", "run+truncated"),
    ("resume-pickle", [*TRAIN, "--resume"], "could not be read", "run+pickle"),
    ("no-output", ["--config", "{cfg}", "--data", "{data}"], "--output is required", "empty"),
    ("no-config", ["--data", "{data}", "--output", "{out}"], "--config is required", "empty"),
    ("eval-without-weights", ["--eval-only", "--data", "{data}"], "needs --weights", "empty"),
    ("eval-missing-weights", ["--eval-only", "--data", "{data}", "--weights", "{tmp}/w.pth"],
     "w.pth", "empty"),
    ("eval-unknown-weight-name", ["--eval-only", "--data", "{data}", "--weights",
     "nasnet://timm/nope"], "nasnet://timm/nope", "empty"),
    ("data-all-unreadable", ["--config", "{cfg}", "--data", "{tmp}/unreadable", "--output",
     "{out}", "--no-progress"], "none of the first 24 training images", "none"),
    ("data-one-class", ["--config", "{cfg}", "--data", "{tmp}/oneclass", "--output", "{out}",
     "--no-progress"], "has 1 class folder (class0): a classifier needs at least 2", "none"),
    ("config-without-checkpoint", TRAIN,
     "holds files of a run (config.yaml, tb) but no last.pth to resume from; pass --overwrite",
     "run-without-checkpoint"),
]  # fmt: skip


def _scratch(tmp: Path, data: Path) -> None:
    """The bad files the table points at."""
    _write(tmp / "unknown.yaml", "_BASE_: " + str(INSTANT) + "\noptim:\n  momentumm: 0.9\n")
    _write(tmp / "latin1.yaml", "# caf\xe9\noptim:\n  lr: 0.1\n".encode("latin-1"))
    _write(tmp / "broken.yaml", "optim:\n  lr: [0.1\n")
    _write(tmp / "evil.yaml", f"optim: !!python/object/apply:os.system ['touch {tmp}/marker']\n")
    _write(tmp / "empty.yaml", "")
    _write(tmp / "list.yaml", "optim: [1, 2]\n")
    _write(tmp / "file.txt", "I am a file, not a folder\n")
    for split in ("train", "val"):
        (tmp / "textonly" / split / "cat").mkdir(parents=True)
        _write(tmp / "textonly" / split / "cat" / "notes.txt", "no images here")
    shutil.copytree(data, tmp / "noval")
    shutil.rmtree(tmp / "noval" / "val" / "class1")
    shutil.copytree(data, tmp / "unreadable")
    for f in (tmp / "unreadable" / "train").rglob("*.png"):
        _write(f, b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)  # a PNG signature, then nothing
    for split in ("train", "val"):
        shutil.copytree(data / split / "class0", tmp / "oneclass" / split / "class0")


def _prepare(how: str, out: Path, run: Path, monkeypatch) -> None:
    if how.startswith("run"):
        shutil.copytree(run, out)
    elif how != "none":
        out.mkdir()
    if how.endswith("truncated"):
        blob = (out / "last.pth").read_bytes()
        _write(out / "last.pth", blob[: len(blob) // 3])
    if how.endswith("pickle"):
        torch.save({"model": {}, "hook": _Opaque()}, out / "last.pth")
    if how == "run-without-checkpoint":  # a run that never wrote its first checkpoint
        (out / "last.pth").unlink()
        (out / "metrics.jsonl").unlink(missing_ok=True)
    if how == "read-only":
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False)
    if how == "run+disk-full":  # as if stopped at step 1 of 12: resuming has work to do
        ckpt = torch.load(out / "last.pth", weights_only=True)
        ckpt["config"]["train"].update(max_steps=0, epochs=2)
        torch.save(ckpt, out / "last.pth")
    if how.endswith("disk-full"):
        monkeypatch.setattr(os, "fsync", _no_space)


@pytest.mark.parametrize("args,message,how", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(previous_run, tmp_path, monkeypatch, args, message, how):
    data, run = previous_run
    tmp, out = tmp_path / "scratch", tmp_path / "out"
    tmp.mkdir()
    _scratch(tmp, data)
    _prepare(how, out, run, monkeypatch)
    before, scratch_before = snapshot(out), snapshot(tmp)
    values = {"cfg": INSTANT, "data": data, "out": out, "tmp": tmp}
    result = run_tool(TOOL, *(a.format(**values) for a in args))
    monkeypatch.undo()
    assert_clean_failure(result, message, before, out)
    assert snapshot(tmp) == scratch_before  # nothing written beside OUT either
    assert not (tmp / "marker").exists()  # the yaml tag did not run
    if how == "none":
        assert not out.exists()


def test_table_covers_at_least_fifteen_inputs():
    assert len(CASES) >= 15 and len({c[0] for c in CASES}) == len(CASES)


def test_overwrite_starts_over_and_resume_of_a_finished_run_writes_nothing(previous_run, tmp_path):
    """The two ways into an existing run: --overwrite replaces it (other files stay); --resume
    of a finished run says so and changes nothing. (Resuming an interrupted run: test_train.py.)"""
    data, run = previous_run
    out = tmp_path / "out"
    shutil.copytree(run, out)
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    base = ["--config", INSTANT, "--data", data, "--output", out, "--no-progress"]
    res = run_tool(TOOL, *base, "--overwrite", "train.epochs", "1")
    assert res.rc == 0, res.stderr
    first = torch.load(out / "last.pth", weights_only=True)
    assert (first["epoch"], first["step"]) == (1, 6) and (out / "notes.txt").read_text() == "mine"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"epoch": 1' in lines[0]
    before = snapshot(out)
    res = run_tool(TOOL, *base, "--resume")
    assert res.rc == 0 and "is complete (step 6); nothing to do" in res.stdout, res.stderr
    assert snapshot(out) == before


class _Opaque:
    pass


def test_resume_removes_stale_temporaries_of_its_own(previous_run, tmp_path):
    """A kill during the write of last.pth leaves ``.last.pth.<random>.tmp``; the resumed run
    removes it (and only files named like its own writers' temporaries)."""
    data, run = previous_run
    out = tmp_path / "out"
    shutil.copytree(run, out)
    ckpt = torch.load(out / "last.pth", weights_only=True)
    ckpt["config"]["train"].update(max_steps=2)  # one more step to take
    torch.save(ckpt, out / "last.pth")
    (out / ".last.pth.k3j9x2.tmp").write_bytes(b"half a checkpoint")
    (out / ".config.yaml.a1b2c3.tmp").write_text("half a config")
    (out / ".notes.txt.tmp").write_text("not ours")
    res = run_tool(TOOL, "--config", INSTANT, "--data", data, "--output", out, "--no-progress",
                   "--resume")  # fmt: skip
    assert res.rc == 0, res.stderr
    assert "removed temporary files of an interrupted write" in res.stdout
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert left == [".notes.txt.tmp"]
    assert torch.load(out / "last.pth", weights_only=True)["step"] == 2


def test_loss_exactly_zero_at_the_first_step_stops_and_leaves_no_run(
    previous_run, tmp_path, monkeypatch
):
    """A loss of exactly 0 before any training (here: the criterion made to return 0) is one
    line; the new run's config.yaml, metrics and tb/ go with it (it has no checkpoint)."""
    data, _ = previous_run
    out = tmp_path / "out"
    real = torch.nn.CrossEntropyLoss.forward
    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward",
                        lambda self, x, y: real(self, x, y) * 0.0)  # fmt: skip
    res = run_tool(TOOL, "--config", INSTANT, "--data", data, "--output", out, "--no-progress")
    monkeypatch.undo()
    assert_clean_failure(res, "the training loss is exactly 0 at the first step")
    assert not out.exists()


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(
    previous_run, tmp_path, monkeypatch
):
    """A full disk at the first last.pth: before, config.yaml and tb/ stayed (and the next
    start needed --overwrite); an existing folder's other files stay."""
    data, _ = previous_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    real = os.fsync

    def fsync(fd):
        if "last.pth" in os.readlink(f"/proc/self/fd/{fd}"):
            _no_space()
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    res = run_tool(TOOL, "--config", INSTANT, "--data", data, "--output", out, "--no-progress")
    monkeypatch.undo()
    assert_clean_failure(res, "last.pth': no space left on the device")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
