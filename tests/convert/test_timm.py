"""timm nasnetalarge -> ours: logits parity through tools/convert_weights.py, and bad files."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasnet_det import build_nasnet

TOOL = Path(__file__).resolve().parents[2] / "tools" / "convert_weights.py"
timm = pytest.importorskip("timm")


def randomize_bn(model):
    # Fresh BN layers are the identity map; random statistics make the parity test sensitive.
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.slow
def test_timm_logits_parity(tmp_path):
    ref = timm.create_model("nasnetalarge", pretrained=False).eval()
    randomize_bn(ref)
    torch.save(ref.state_dict(), tmp_path / "in.pth")
    r = run_tool("--source", "timm", "--arch", "nasnetalarge",
                 "--input", tmp_path / "in.pth", "--output", tmp_path / "out.pth")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(tmp_path / "out.pth", weights_only=True)
    ours = build_nasnet("nasnet_a_large", num_classes=1000, use_aux_head=False).eval()
    ours.load_state_dict(ckpt["model"], strict=True)
    with torch.no_grad():
        for size in (331, 224):
            x = torch.randn(2, 3, size, size)
            diff = (ours(x) - ref(x)).abs().max().item()
            assert diff <= 1e-4, (size, diff)


def test_safetensors_output_and_bad_inputs(tmp_path):
    small = {"conv0.conv.weight": torch.zeros(96, 3, 3, 3), "fc.weight": torch.zeros(2, 2)}
    torch.save(small, tmp_path / "wrong.pth")
    r = run_tool("--source", "timm", "--arch", "nasnetalarge",
                 "--input", tmp_path / "wrong.pth", "--output", tmp_path / "o.pth")  # fmt: skip
    assert r.returncode == 2
    assert "no counterpart" in r.stderr and "fc.weight" in r.stderr
    assert not (tmp_path / "o.pth").exists()

    r = run_tool("--source", "timm", "--arch", "nasnetamobile",
                 "--input", tmp_path / "wrong.pth", "--output", tmp_path / "o.pth")  # fmt: skip
    assert r.returncode == 2 and "unknown architecture 'nasnetamobile'" in r.stderr

    r = run_tool("--source", "timm", "--arch", "nasnetalarge",
                 "--input", tmp_path / "missing.pth", "--output", tmp_path / "o.pth")  # fmt: skip
    assert r.returncode == 2 and "does not exist" in r.stderr

    # A pickle holding arbitrary objects is refused without the opt-in flag.
    torch.save({"model": {"w": torch.zeros(1)}, "opt": Path("x")}, tmp_path / "pickled.pth")
    r = run_tool("--source", "timm", "--arch", "nasnetalarge",
                 "--input", tmp_path / "pickled.pth", "--output", tmp_path / "o.pth")  # fmt: skip
    assert r.returncode == 2 and "--allow-pickle" in r.stderr
    assert not (tmp_path / "o.pth").exists()


@pytest.mark.slow
def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import load_file

    ref = timm.create_model("nasnetalarge", pretrained=False)
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "in.pth")
    out = tmp_path / "out.safetensors"
    r = run_tool("--source", "timm", "--arch", "nasnetalarge",
                 "--input", tmp_path / "in.pth", "--output", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    ours = build_nasnet("nasnet_a_large", num_classes=1000, use_aux_head=False)
    ours.load_state_dict(load_file(str(out)), strict=True)
