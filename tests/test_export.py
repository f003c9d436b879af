"""Classification export: ONNX Runtime and TorchScript logits within 1e-4 of PyTorch, for a
tiny NASNet-A (weights from a converted checkpoint file), also through tools/export_model.py."""

import sys
from pathlib import Path

import pytest
import torch

from nasnet_det import build_nasnet
from nasnet_det.convert import save_checkpoint
from nasnet_det.export import export_classifier, export_weights, load_exported, run_exported

sys.path.insert(0, str(Path(__file__).resolve().parent / "reliability"))
from harness import run_tool  # noqa: E402

TINY = {"num_cells": 1, "num_conv_filters": 8, "num_classes": 10, "use_aux_head": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = build_nasnet("nasnet_a_mobile", **TINY).eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding errors would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    meta = {"preset": "nasnet_a_mobile", "overrides": TINY, "source": "test:tiny"}
    save_checkpoint(path, model.state_dict(), meta)
    return model, path


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_exported_logits_match_pytorch(tiny, tmp_path, fmt, suffix):
    model, _ = tiny
    out = export_classifier(model, tmp_path / f"m{suffix}", fmt, 64)
    x = torch.randn(3, 3, 64, 64)  # traced at batch 1: the batch axis is free
    with torch.no_grad():
        ref = model(x)
    (got,) = run_exported(load_exported(out), x)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    assert not list(tmp_path.glob(".*tmp*"))


def test_export_weights_reads_a_converted_checkpoint(tiny, tmp_path):
    _, path = tiny
    report = export_weights(str(path), tmp_path / "m.onnx", "onnx", 64)
    assert report["source"] == "test:tiny" and report["max_abs_diff"] < 1e-4


def test_tool_writes_and_reports_parity(tiny, tmp_path):
    _, path = tiny
    out = tmp_path / "m.ts"
    r = run_tool("export_model.py", "--format", "torchscript", "--weights", path,
                 "--image-size", "64", "--output", out)  # fmt: skip
    assert r.rc == 0, r.stderr
    assert out.is_file() and "max |exported - PyTorch| = " in r.stdout
    diff = float(r.stdout.rsplit("= ", 1)[1])
    assert diff < 1e-4


@pytest.mark.parametrize(
    "args,message",
    [
        (["--format", "onnx", "--weights", "missing.pth"], "does not exist"),
        (["--format", "onnx", "--weights", "nasnet://timm/nope"], "unknown weight name"),
        (["--format", "coreml", "--weights", "x.pth"], "invalid choice"),
        (
            ["--format", "onnx", "--weights", "x.pth", "--image-size", "8"],
            "must be in [32, 4096], got 8",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "out.onnx"
    r = run_tool("export_model.py", *args, "--output", out, cwd=tmp_path)
    assert r.rc == 2 and message in r.stderr.strip().splitlines()[-1]
    assert not out.exists()
