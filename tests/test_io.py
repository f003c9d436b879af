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
