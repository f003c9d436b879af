"""Every writer atomic and clean on a full disk.

A full disk is simulated two ways, neither needing root:

* ``RLIMIT_FSIZE`` in a fresh interpreter (with ``SIGXFSZ`` ignored): every write past the limit
  fails inside the C library with ``EFBIG``, as ``ENOSPC`` does on a full disk, so writers
  implemented in C++ (TorchScript's, safetensors', torch's zip writer) meet the failure where
  they would meet a full disk;
* ``os.fsync`` raising ``OSError(ENOSPC)`` in-process, for the Python side of the same writers.

Each case: exit 2, one line naming the file, no traceback, no file left in the output folder
(no temporary file, no half-written output), the previous output intact.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

from nasnet_det.genotypes import NASNET_A  # noqa: E402
from nasnet_det.nasnet import build_nasnet  # noqa: E402

ROOT = HERE.parents[1]
INSTANT = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TINY = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8", "DATASETS.TEST", "()"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """A tiny pretraining checkpoint and its conversion to our published layout."""
    tmp = tmp_path_factory.mktemp("writers")
    overrides = {"num_cells": 1, "num_conv_filters": 8, "num_classes": 5}
    torch.manual_seed(0)
    sd = build_nasnet("nasnet_a_mobile", **overrides).state_dict()
    arch = {"preset": "nasnet_a_mobile", "overrides": {**overrides, "genotype": NASNET_A.to_dict()}}
    torch.save({"model": sd, "ema": sd, "arch": arch}, tmp / "ckpt.pth")
    r = run_tool("convert_weights.py", "--source", "nasnet_det", "--input", tmp / "ckpt.pth",
                 "--output", tmp / "converted.pth")  # fmt: skip
    assert r.rc == 0, r.stderr
    return {"ckpt": tmp / "ckpt.pth", "converted": tmp / "converted.pth"}


def _capped(limit: int):
    def pre() -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


def _run_capped(tool: str, *args, limit: int, cwd: Path, env: dict | None = None):
    p = subprocess.run(
        [sys.executable, str(ROOT / "tools" / tool), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_capped(limit),
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    from harness import Result

    return Result(p.returncode, p.stdout, p.stderr)


def _out_with_previous(tmp_path: Path, name: str) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"previous output")
    return out


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_convert_weights_on_a_file_size_limit_is_one_line(tmp_path, weights, suffix):
    out = _out_with_previous(tmp_path, f"w{suffix}")
    before = snapshot(out)
    limit = weights["ckpt"].stat().st_size // 4  # the output is about a third of the input
    r = _run_capped("convert_weights.py", "--source", "nasnet_det", "--input", weights["ckpt"],
                    "--output", out / f"w{suffix}", limit=limit, cwd=tmp_path)  # fmt: skip
    assert_clean_failure(r, f"cannot write output '{out / f'w{suffix}'}': file too large", before,
                         out)  # fmt: skip


def test_convert_weights_safetensors_on_a_full_disk_is_one_line(tmp_path, weights, monkeypatch):
    out = _out_with_previous(tmp_path, "w.safetensors")
    before = snapshot(out)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    r = run_tool("convert_weights.py", "--source", "nasnet_det", "--input", weights["ckpt"],
                 "--output", out / "w.safetensors")  # fmt: skip
    monkeypatch.undo()
    assert_clean_failure(r, "w.safetensors': no space left on the device", before, out)


@pytest.mark.parametrize("fmt,name", [("torchscript", "m.ts"), ("onnx", "m.onnx")])
def test_export_on_a_file_size_limit_is_one_line(tmp_path, weights, fmt, name):
    """TorchScript's C++ writer used to end in std::terminate (SIGABRT) and leave its file."""
    out = _out_with_previous(tmp_path, name)
    before = snapshot(out)
    limit = 16_384  # far below the tiny classifier's exported size
    r = _run_capped("export_model.py", "--format", fmt, "--weights", weights["converted"],
                    "--output", out / name, limit=limit, cwd=tmp_path)  # fmt: skip
    assert r.rc != -signal.SIGABRT, r.stderr[-2000:]
    assert_clean_failure(r, f"cannot write {fmt} file '{out / name}': file too large", before, out)


def test_train_net_checkpoint_on_a_file_size_limit_is_one_line(tmp_path):
    """torch's zip writer turned the failed write into ``RuntimeError: unexpected pos``."""
    out = tmp_path / "out"
    args = ["--config-file", INSTANT, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", out, *TINY,
            "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "1"]  # fmt: skip
    # The checkpoint is ~7 MB; the config, log and the digits images are far below 2 MB.
    r = _run_capped("train_net.py", *args, limit=2_000_000, cwd=tmp_path,
                    env={"NASNET_DET_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert_clean_failure(r, f"cannot write checkpoint '{out / 'model_0000000.pth'}': file too")
    assert not [p.name for p in out.iterdir() if p.suffix == ".pth" or ".tmp" in p.name]
    assert not (out / "last_checkpoint").exists()
