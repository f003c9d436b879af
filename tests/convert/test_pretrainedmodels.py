"""Cadene's pretrainedmodels NASNets, randomly initialised, converted: same logits as ours.

Nothing is downloaded: the reference networks are built with random weights and batch-norm
statistics calibrated on a batch then perturbed, so that every layer matters to the logits.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from nasnet_det.convert import convert_state_dict, load_state_dict_file

pretrainedmodels = pytest.importorskip("pretrainedmodels")

ROOT = Path(__file__).resolve().parents[2]


def _cadene(arch: str, num_classes: int, calib_size: int) -> torch.nn.Module:
    """Cadene's ``arch`` with random weights and random-but-sane batch-norm statistics."""
    torch.manual_seed(0)
    ref = getattr(pretrainedmodels, arch)(num_classes=num_classes, pretrained=None)
    g = torch.Generator().manual_seed(1)
    bns = [m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.3, generator=g)
            m.momentum = 1.0  # running stats := this batch's stats
        ref.train()
        ref.features(torch.randn(2, 3, calib_size, calib_size, generator=g))
        for m in bns:
            std = m.running_var.sqrt()
            m.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=g))
            m.running_var.mul_(torch.empty(std.shape).uniform_(0.7, 1.4, generator=g))
    return ref.eval()


def _cadene_logits(ref: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Cadene's logits() hard-codes the final pool for the native size; pool globally instead.
    return ref.last_linear(torch.relu(ref.features(x)).mean((2, 3)))


def _ours(ref: torch.nn.Module, arch: str, **extra):
    conv = convert_state_dict("pretrainedmodels", arch, ref.state_dict())
    model = (
        conv.build_model()
        if not extra
        else type(conv)(conv.state_dict, conv.preset, {**conv.overrides, **extra}).build_model()
    )
    model.load_state_dict(conv.state_dict, strict=True)
    return conv, model.eval()


@pytest.fixture(scope="module")
def mobile_pair():
    """Cadene's mobile (calibrated at 96 px: cheap, and 96 = 32 x 3 is a size where it equals TF)
    and its conversion."""
    ref = _cadene("nasnetamobile", 1000, 96)
    conv, ours = _ours(ref, "nasnetamobile")
    return ref, conv, ours


@torch.no_grad()
def test_mobile_logits_parity_native_and_other_size(mobile_pair):
    ref, conv, ours = mobile_pair
    assert conv.preset == "nasnet_a_mobile" and conv.overrides["pool_pad"] == "tf"
    torch.manual_seed(2)
    x = torch.randn(1, 3, 224, 224)
    expected = ref(x)  # Cadene's own forward at its native size
    assert expected.std() > 0.3
    assert (ours(x) - expected).abs().max() <= 1e-4
    # 192 = 32 x 6: Cadene's padding equals TF SAME there (H = 32k or 32k - 1).
    x = torch.randn(1, 3, 192, 192)
    assert (ours(x) - _cadene_logits(ref, x)).abs().max() <= 1e-4


@torch.no_grad()
def test_mobile_parity_is_sensitive_to_padding(mobile_pair):
    ref, _, ours = mobile_pair
    torch.manual_seed(3)
    # Average pools that count the padding (timm's large port) give other logits.
    _, counted = _ours(ref, "nasnetamobile", pool_pad="timm")
    x = torch.randn(1, 3, 224, 224)
    assert (counted(x) - ref(x)).abs().max() > 1e-3
    # At 225 the stem conv gives an even side, where Cadene pads a stride-2 op symmetrically
    # and TF SAME does not: documented, not matchable.
    x = torch.randn(1, 3, 225, 225)
    assert (ours(x) - _cadene_logits(ref, x)).abs().max() > 1e-2


def test_mobile_1001_classes_and_gapped_cell_names():
    ref = pretrainedmodels.nasnetamobile(num_classes=1001, pretrained=None)
    sd = ref.state_dict()
    assert "cell_6.conv_1x1.conv.weight" in sd and "cell_4.conv_1x1.conv.weight" not in sd
    conv = convert_state_dict("pretrainedmodels", "nasnetamobile", sd)
    assert conv.overrides["num_classes"] == 1001
    model = conv.build_model()
    # Cadene's cell_6 (first cell after reduction_cell_0) is our cell_4.
    i = model.cell_names.index("cell_4")
    assert torch.equal(
        conv.state_dict[f"cells.{i}.pre0.conv.weight"], sd["cell_6.conv_1x1.conv.weight"]
    )
    model.load_state_dict(conv.state_dict, strict=True)


def test_checkpoint_of_another_architecture_is_refused():
    sd = pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None).state_dict()
    with pytest.raises(ValueError, match="nasnetalarge"):
        convert_state_dict("pretrainedmodels", "nasnetalarge", sd)
    with pytest.raises(ValueError, match="no counterpart|does not match"):
        convert_state_dict("timm", "nasnetalarge", sd)
    with pytest.raises(ValueError, match="expected one of"):
        convert_state_dict("pretrainedmodels", "nasnet_b", sd)


def _convert_tool():
    spec = importlib.util.spec_from_file_location(
        "convert_weights", ROOT / "tools/convert_weights.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tool_writes_weights_only_checkpoint_and_refuses_bad_input(tmp_path, capsys):
    tool = _convert_tool()
    sd = pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None).state_dict()
    src = tmp_path / "cadene.pth"
    torch.save(sd, src)
    out_dir = tmp_path / "out"
    out = out_dir / "mobile.safetensors"
    args = ["--source", "pretrainedmodels", "--arch", "nasnetamobile", "--input", str(src)]
    assert tool.main([*args, "--output", str(out)]) == 0
    loaded = load_state_dict_file(out)
    assert loaded["cells.0.pre0.conv.weight"].shape == sd["cell_stem_0.conv_1x1.conv.weight"].shape

    # Another architecture: one clear error, nothing written.
    bad_out = out_dir / "large.pth"
    wrong = ["--source", "pretrainedmodels", "--arch", "nasnetalarge", "--input", str(src)]
    assert tool.main([*wrong, "--output", str(bad_out)]) == 2
    assert "error" in capsys.readouterr().err
    # A pickle with arbitrary objects, without the opt-in flag.
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": sd, "extra": _Opaque()}, pickled)
    assert tool.main([*args[:4], "--input", str(pickled), "--output", str(bad_out)]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert sorted(p.name for p in out_dir.iterdir()) == ["mobile.safetensors"]


class _Opaque:
    pass


@pytest.mark.slow
@torch.no_grad()
def test_large_logits_parity_native_and_other_size():
    ref = _cadene("nasnetalarge", 1000, 107)
    conv, ours = _ours(ref, "nasnetalarge")
    assert conv.preset == "nasnet_a_large" and conv.overrides["pool_pad"] == "tf"
    torch.manual_seed(2)
    x = torch.randn(1, 3, 331, 331)
    assert (ours(x) - ref(x)).abs().max() <= 1e-4
    # 107 = 32 * 3 + 11: Cadene's padding equals TF SAME there.
    x = torch.randn(1, 3, 107, 107)
    expected = _cadene_logits(ref, x)
    assert expected.std() > 0.2
    assert (ours(x) - expected).abs().max() <= 1e-4
