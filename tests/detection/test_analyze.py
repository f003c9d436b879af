"""tools/analyze_model.py: fvcore's counts for our configs, checked against the paper's table."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasnet_det.detection import engine
from nasnet_det.detection.analyze import analyze_model, classifier_mult_adds

REPO = Path(__file__).resolve().parents[2]
CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TINY = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8"]


def test_classifier_flops_are_the_papers_mult_adds():
    # Paper, Table 2: NASNet-A Mobile 564M mult-adds at 224 px. fvcore's count is one per
    # multiply-add and adds batch norm (one per element): 573M in all, 564M without BN.
    from fvcore.nn import FlopCountAnalysis

    from nasnet_det import build_nasnet

    total = classifier_mult_adds("nasnet_a_mobile")
    assert abs(total / 564e6 - 1) < 0.02, total
    fca = FlopCountAnalysis(build_nasnet("nasnet_a_mobile", use_aux_head=False).eval(),
                            torch.randn(1, 3, 224, 224))  # fmt: skip
    fca.unsupported_ops_warnings(False)
    ops = fca.by_operator()
    assert abs((ops["conv"] + ops["linear"]) / 564e6 - 1) < 0.005, ops


def test_analyze_model_tasks_on_a_config():
    from detectron2.modeling import build_model

    cfg = engine.load_config(CONFIG, TINY)
    out = analyze_model(cfg, ("flop", "parameter", "activation", "structure"), size=64)
    n = sum(p.numel() for p in build_model(cfg).parameters())
    first = out["parameter"].splitlines()[2]  # | model | 0.2M |
    assert first.split("|")[1].strip() == "model"
    assert float(first.split("|")[2].strip().rstrip("MK")) == pytest.approx(
        n / (1e6 if "M" in first else 1e3), abs=0.051
    )
    assert out["flop"].startswith("input 64x64: ") and "G mult-adds" in out["flop"]
    assert "backbone.cells.0" in out["flop"]
    assert "M activations" in out["activation"] and "conv:" in out["activation"]
    assert "GeneralizedRCNN" in out["structure"] and "CellStack" in out["structure"]
    with pytest.raises(ValueError, match="expected some of flop, parameter"):
        analyze_model(cfg, ("flops",))


def test_tool_prints_and_refuses_bad_tasks():
    tool = [sys.executable, str(REPO / "tools" / "analyze_model.py"), "--config-file", CONFIG]
    r = subprocess.run([*tool, "--tasks", "parameter", *TINY], cwd=REPO, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "== parameter ==" in r.stdout and "| model " in r.stdout
    r = subprocess.run([*tool, "--tasks", "speed", *TINY], cwd=REPO, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "expected some of flop" in r.stderr
    assert "Traceback" not in r.stderr
