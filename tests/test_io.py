"""nasnet_det.io: outputs appear whole or not at all; failures are one line."""

import errno
import json
import os

import pytest
import torch

from nasnet_det import io


def test_atomic_json_and_torch(tmp_path):
    io.atomic_write_json(tmp_path / "a" / "m.json", {"ap": 1.5})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"ap": 1.5}
    io.atomic_save_torch({"w": torch.ones(2)}, tmp_path / "c.pth")
    assert torch.load(tmp_path / "c.pth", weights_only=True)["w"].sum() == 2
    assert sorted(os.listdir(tmp_path)) == ["a", "c.pth"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["m.json"]


def test_disk_full_is_one_line(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(io.OutputError, match="m.json.*no space left"):
        io.atomic_write_text(tmp_path / "m.json", "x" * 100)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert os.listdir(tmp_path) == []


def test_bad_output_paths(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(io.OutputError, match="is a folder"):
        io.atomic_write_text(tmp_path, "x")
    with pytest.raises(io.OutputError, match="is a file, expected a folder"):
        io.check_output_dir(tmp_path / "file")
    with pytest.raises(io.OutputError, match="not a folder|is a file"):
        io.atomic_write_text(tmp_path / "file" / "m.json", "x")


def test_read_only_folder(tmp_path, monkeypatch):
    # Root ignores permission bits, so the check's answer is what is simulated here.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(io.OutputError, match="not writable: permission denied"):
        io.check_output_dir(tmp_path)


def test_run_folder_refuses_resumes_and_overwrites_only_its_own_files(tmp_path):
    """One helper for pretraining, the search and the transfer study: every refusal before
    anything is written; --overwrite removes the run's files and nothing else."""
    out = tmp_path / "run"
    folder = io.RunFolder(out, ("last.pth", "tb"), "training run")
    with pytest.raises(io.RunFolderError, match="--resume and --overwrite exclude each other"):
        folder.check(resume=True, overwrite=True)
    with pytest.raises(io.RunFolderError, match="--resume: no training run to continue in"):
        folder.check(resume=True, overwrite=False)
    assert not out.exists()  # checks write nothing
    folder.check(resume=False, overwrite=False)
    folder.create()
    (out / "last.pth").write_text("x")
    (out / "tb").mkdir()
    (out / "tb" / "events").write_text("x")
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(io.RunFolderError, match="already holds a training run; pass --resume"):
        folder.check(resume=False, overwrite=False)
    folder.check(resume=True, overwrite=False)
    folder.check(resume=False, overwrite=True)
    folder.create(overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    err = io.RunFolder(out, ("study.json",), "transfer study").conflict("with another k")
    assert (
        str(err)
        == f"{str(out)!r} already holds a transfer study with another k; use another --output"
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(io.RunFolderError, match="is a file, expected a folder"):
        io.RunFolder(tmp_path / "file", ("a",), "search history").check(False, False)
    # A marker: only that file means "a run is here".
    marked = io.RunFolder(out, ("history.sqlite", "mine.txt"), "search history", "history.sqlite")
    marked.check(resume=False, overwrite=False)
    with pytest.raises(io.RunFolderError, match=r"\(history.sqlite is missing\)"):
        marked.check(resume=True, overwrite=False)
