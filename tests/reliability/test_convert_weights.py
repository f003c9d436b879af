"""tools/convert_weights.py under bad input and faults: exit 2, one line naming the file or flag,
no traceback, the output folder as it was (a previous output intact, no temporary file), no
payload ever runs. In-process; weight files are tiny (one cell per stack, 8 filters)."""

from __future__ import annotations

import errno
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import (  # noqa: E402
    Payload,
    assert_clean_failure,
    make_read_only,
    run_tool,
    snapshot,
)

from nasnet_det.genotypes import NASNET_A  # noqa: E402
from nasnet_det.nasnet import build_nasnet  # noqa: E402

TOOL = "convert_weights.py"
OURS = ["--source", "nasnet_det", "--input"]
OUT = ["--output", "{out}/w.pth"]


# (id, arguments, expected substring of the one error line). OUT holds a previous w.pth that
# must stay byte-identical. Placeholders: {tmp} scratch files, {out} OUT.
CASES = [
    ("input-missing", [*OURS, "{tmp}/nope.pth", *OUT], "does not exist"),
    ("input-folder", [*OURS, "{tmp}", *OUT], "is a folder"),
    ("input-empty", [*OURS, "{tmp}/empty.pth", *OUT], "is empty"),
    ("input-text", [*OURS, "{tmp}/text.pth", *OUT], "is not a PyTorch or safetensors weights file"),
    ("input-truncated", [*OURS, "{tmp}/truncated.pth", *OUT], "is truncated or damaged"),
    ("input-flipped-4k", [*OURS, "{tmp}/flipped.pth", *OUT], "fails its CRC-32 check"),
    ("input-pickle-payload", [*OURS, "{tmp}/evil.pth", *OUT], "--allow-pickle"),
    ("input-legacy-pickle-payload", [*OURS, "{tmp}/evil.bin", *OUT], "refusing to unpickle"),
    ("input-bad-safetensors", [*OURS, "{tmp}/bad.safetensors", *OUT],
     "is not a valid safetensors file"),
    ("input-no-tensors", ["--source", "timm", "--arch", "nasnetalarge", "--input",
     "{tmp}/no_tensors.pth", *OUT], "holds no tensors"),
    ("input-other-architecture", [*OURS, "{tmp}/bare.pth", "--arch", "nasnet_a_mobile", *OUT],
     "does not match the architecture"),
    ("arch-unknown", ["--source", "timm", "--arch", "nasnet_z", "--input", "{tmp}/good.pth",
     *OUT], "unknown architecture 'nasnet_z'"),
    ("arch-missing", ["--source", "timm", "--input", "{tmp}/good.pth", *OUT],
     "--arch is required for --source timm"),
    ("arch-wrong-preset", [*OURS, "{tmp}/good.pth", "--arch", "nasnet_a_large", *OUT],
     "not 'nasnet_a_large'"),
    ("source-unknown", ["--source", "tf", "--input", "{tmp}/good.pth", *OUT],
     "argument --source: invalid choice"),
    ("output-suffix", [*OURS, "{tmp}/good.pth", "--output", "{out}/w.txt"],
     "must end in .pth, .pt or .safetensors"),
    ("output-is-a-folder", [*OURS, "{tmp}/good.pth", "--output", "{out}/folder.pth"],
     "is a folder"),
    ("output-parent-is-a-file", [*OURS, "{tmp}/good.pth", "--output", "{out}/w.pth/x.pth"],
     "is a file"),
    ("output-read-only", [*OURS, "{tmp}/good.pth", "--output", "{out}/ro/w.pth"],
     "is not writable"),
    ("detectron2-safetensors", [*OURS, "{tmp}/good.pth", "--for", "detectron2", "--output",
     "{out}/w.safetensors"], "--for detectron2 writes a .pth file"),
    ("det-config-without-for", [*OURS, "{tmp}/good.pth", "--det-config", "{tmp}/evil.yaml",
     *OUT], "--det-config is used only with --for detectron2"),
    ("det-config-missing", [*OURS, "{tmp}/good.pth", "--for", "detectron2", "--det-config",
     "{tmp}/nope.yaml", *OUT], "does not exist"),
    ("output-is-the-input", [*OURS, "{out}/w.pth", *OUT], "is the --input file"),
    ("det-config-python-tag", [*OURS, "{tmp}/good.pth", "--for", "detectron2", "--det-config",
     "{tmp}/evil.yaml", *OUT], "builds Python objects"),
]  # fmt: skip


def _training_checkpoint(path: Path) -> None:
    """The layout nasnet_det.pretrain writes (see tests/convert/test_ours.py)."""
    overrides = {"num_cells": 1, "num_conv_filters": 8, "num_classes": 5}
    torch.manual_seed(0)
    sd = build_nasnet("nasnet_a_mobile", **overrides).state_dict()
    arch = {"preset": "nasnet_a_mobile", "overrides": {**overrides, "genotype": NASNET_A.to_dict()}}
    torch.save({"model": sd, "ema": sd, "arch": arch}, path)


def _scratch(tmp: Path) -> None:
    cmd = f"touch {tmp / 'marker'}"
    _training_checkpoint(tmp / "good.pth")
    blob = (tmp / "good.pth").read_bytes()
    middle = len(blob) // 2
    (tmp / "truncated.pth").write_bytes(blob[:middle])
    flipped = blob[:middle] + bytes(b ^ 0xFF for b in blob[middle : middle + 4096])
    (tmp / "flipped.pth").write_bytes(flipped + blob[middle + 4096 :])
    (tmp / "empty.pth").write_bytes(b"")
    (tmp / "text.pth").write_text("not weights\n")
    torch.save({"model": {"w": torch.zeros(1)}, "x": Payload(cmd)}, tmp / "evil.pth")
    (tmp / "evil.bin").write_bytes(pickle.dumps({"model": Payload(cmd)}))
    (tmp / "bad.safetensors").write_bytes(b"\xff" * 64)
    torch.save({"model": {"lr": 0.1, "epoch": 3}}, tmp / "no_tensors.pth")
    torch.save(build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=8).state_dict(),
               tmp / "bare.pth")  # fmt: skip
    (tmp / "evil.yaml").write_text(f'X: !!python/object/apply:os.system ["{cmd}"]\n')


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("convert_scratch")
    _scratch(tmp)
    return tmp


def _out(folder: Path) -> Path:
    folder.mkdir()
    (folder / "w.pth").write_bytes(b"previous output")
    (folder / "folder.pth").mkdir()
    (folder / "ro").mkdir()
    return folder


@pytest.mark.parametrize("args,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(scratch, tmp_path, monkeypatch, args, message):
    out = _out(tmp_path / "out")
    make_read_only(monkeypatch, out / "ro")
    before, scratch_before = snapshot(out), snapshot(scratch)
    result = run_tool(TOOL, *(a.format(tmp=scratch, out=out) for a in args))
    monkeypatch.undo()
    (out / "ro").chmod(0o755)
    assert_clean_failure(result, message, before, out)
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]
    assert snapshot(scratch) == scratch_before
    assert not (scratch / "marker").exists()  # no pickle or yaml tag ran


def test_table_covers_at_least_twelve_inputs():
    assert len(CASES) >= 12 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name", ["w.pth", "w.safetensors"])
def test_disk_full_keeps_the_previous_output(scratch, tmp_path, monkeypatch, name):
    out = _out(tmp_path / "out")
    (out / name).write_bytes(b"previous output")
    before = snapshot(out)

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    result = run_tool(TOOL, *OURS, str(scratch / "good.pth"), "--output", str(out / name))
    monkeypatch.undo()
    assert_clean_failure(result, "no space left on the device", before, out)
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]


def test_allow_pickle_is_the_opt_in(scratch, tmp_path):
    """A legacy pickle of plain tensors converts once the user opts in (and only then)."""
    sd = torch.load(scratch / "good.pth", map_location="cpu", weights_only=True)
    legacy = tmp_path / "legacy.pth"
    sd["note"] = _Note("trusted")
    with open(legacy, "wb") as f:
        torch.save(sd, f, _use_new_zipfile_serialization=False)
    out = tmp_path / "w.pth"
    refused = run_tool(TOOL, *OURS, str(legacy), "--output", str(out))
    assert_clean_failure(refused, "--allow-pickle")
    ok = run_tool(TOOL, *OURS, str(legacy), "--output", str(out), "--allow-pickle")
    assert ok.rc == 0, ok.stderr
    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert torch.equal(saved["model"]["stem.conv.weight"], sd["ema"]["stem.conv.weight"])


class _Note:
    def __init__(self, text: str) -> None:
        self.text = text
