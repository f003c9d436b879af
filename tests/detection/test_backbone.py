"""NASNet backbone: output shapes against hand computation and the paper/TF reference numbers."""

import json
import math

import pytest
import torch
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import build_backbone

from nasnet_det.detection.config import get_nasnet_cfg
from nasnet_det.nasnet import build_nasnet

# A toy genotype whose widths are easy to compute by hand: normal cell = states 3 (a concat
# block, 2c) and 4 (c) -> 3c; reduction cell = states 3 and 4 -> 2c.
TOY = {
    "name": "toy",
    "normal": [
        {"left": ["sep_conv_3x3", 0], "right": ["identity", 1], "combine": "add"},
        {"left": ["avg_pool_3x3", 0], "right": ["max_pool_3x3", 1], "combine": "concat"},
        {"left": ["conv_1x1", 2], "right": ["identity", 3], "combine": "add"},
    ],
    "normal_concat": [3, 4],
    "reduce": [
        {"left": ["max_pool_3x3", 0], "right": ["sep_conv_3x3", 1], "combine": "add"},
        {"left": ["avg_pool_3x3", 2], "right": ["identity", 0], "combine": "add"},
        {"left": ["conv_3x3", 3], "right": ["identity", 2], "combine": "add"},
    ],
    "reduce_concat": [3, 4],
}


def nasnet_cfg(preset="nasnet_a_mobile", **nasnet):
    cfg = get_nasnet_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_nasnet_backbone"
    cfg.MODEL.NASNET.PRESET = preset
    if preset == "nasnet_a_large":
        cfg.MODEL.NASNET.NUM_CELLS = 6
        cfg.MODEL.NASNET.NUM_CONV_FILTERS = 168
        cfg.MODEL.NASNET.STEM_MULTIPLIER = 3.0
        cfg.MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT = True
    for k, v in nasnet.items():
        cfg.MODEL.NASNET[k] = v
    return cfg


def test_mobile_rpn_map_is_two_528_channel_cells_at_stride_16():
    # Mobile: middle stack at 2 x 44 filters, 6 states per normal cell -> 528; two cells -> 1056.
    backbone = build_backbone(nasnet_cfg())
    assert backbone.output_shape() == {"nasnet_16": ShapeSpec(channels=1056, stride=16)}
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 224, 224))
    assert out["nasnet_16"].shape == (1, 1056, 14, 14)


def test_large_rpn_map_golden_4032_channels():
    # TF reference: Cell_10 + Cell_11 = 2016 + 2016 = 4032 channels at stride 16. Shapes only:
    # build on the meta device.
    with torch.device("meta"):
        backbone = build_backbone(nasnet_cfg("nasnet_a_large"))
    assert backbone.output_shape() == {"nasnet_16": ShapeSpec(channels=4032, stride=16)}
    assert backbone.cell_names[-2:] == ["cell_10", "cell_11"]


def test_large_331_input_gives_21x21_map_and_skip_input_is_in_the_concat():
    cfg = nasnet_cfg("nasnet_a_large", NUM_CONV_FILTERS=4)
    backbone = build_backbone(cfg).eval()
    # 4 filters x 2 (middle stack) x 6 states = 48 per cell.
    assert backbone.output_shape()["nasnet_16"].channels == 96
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 331, 331))["nasnet_16"]
    assert out.shape == (1, 96, 21, 21)
    # skip_reduction_layer_input: cell_12 (after reduction_cell_1) reads cell_10's output, so
    # the concat must carry cell_10 and cell_11 (outputs 14 and 15).
    model = build_nasnet("nasnet_a_large", num_conv_filters=4, num_classes=0, use_aux_head=False)
    layout = model.layout.second_stage_split()
    assert model.cell_names[layout.start] == "reduction_cell_1"
    assert model.cell_names[layout.start + 1] == "cell_12"
    assert model.prev_index[layout.start + 1] == layout.inputs[0]
    assert [model.cell_names[j - 1] for j in layout.inputs] == ["cell_10", "cell_11"]


def test_custom_genotype_json(tmp_path):
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(TOY))
    cfg = nasnet_cfg(GENOTYPE=str(path), NUM_CELLS=1, NUM_CONV_FILTERS=8)
    backbone = build_backbone(cfg).eval()
    # N=1: the second stage reads reduction_cell_0 (2 x 16) and cell_1 (3 x 16): 32 + 48.
    assert backbone.output_shape() == {"nasnet_16": ShapeSpec(channels=80, stride=16)}
    assert backbone.cell_names == [
        "cell_stem_0",
        "cell_stem_1",
        "cell_0",
        "reduction_cell_0",
        "cell_1",
    ]
    # The cells are the toy genotype's: 3 blocks, the second one concatenating.
    assert len(backbone.cells[2].blocks) == 3
    assert backbone.cells[2].blocks[1].combine == "concat"
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 96, 128))["nasnet_16"]
    assert out.shape == (2, 80, 6, 8)


def test_fpn_features_strides_and_channels():
    cfg = nasnet_cfg(NUM_CELLS=1, NUM_CONV_FILTERS=8, OUT_FEATURES=["c2", "c3", "c4", "c5"])
    cfg.MODEL.BACKBONE.NAME = "build_nasnet_fpn_backbone"
    cfg.MODEL.FPN.IN_FEATURES = ["c2", "c3", "c4", "c5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    fpn = build_backbone(cfg).eval()
    bottom = fpn.bottom_up.output_shape()
    # NASNet-A: stem cells 4 x 2 and 4 x 4 (reduction: 4 states) ; normal cells 6 x c.
    assert {k: (v.channels, v.stride) for k, v in bottom.items()} == {
        "c2": (8, 4),
        "c3": (48, 8),
        "c4": (96, 16),
        "c5": (192, 32),
    }
    with torch.no_grad():
        out = fpn(torch.randn(1, 3, 128, 160))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "p2": (32, 40),
        "p3": (16, 20),
        "p4": (8, 10),
        "p5": (4, 5),
        "p6": (2, 3),
    }


@pytest.mark.parametrize("norm", ["FrozenBN", "BN", "SyncBN", "GN"])
def test_norms(norm):
    backbone = build_backbone(nasnet_cfg(NUM_CELLS=1, NUM_CONV_FILTERS=8, NORM=norm))
    kinds = {type(m).__name__ for m in backbone.modules()}
    expected = {
        "FrozenBN": "FrozenBatchNorm2d",
        "BN": "BatchNorm2d",
        "SyncBN": "SyncBatchNorm",
        "GN": "GroupNorm",
    }[norm]
    assert expected in kinds
    others = {"FrozenBatchNorm2d", "BatchNorm2d", "SyncBatchNorm", "GroupNorm"} - {expected}
    assert not kinds & others
    if norm == "GN":
        # 2-channel stem cell -> gcd(32, 2) = 2 groups; 32-wide -> 32 groups.
        groups = {
            m.num_channels: m.num_groups for m in backbone.modules() if hasattr(m, "num_groups")
        }
        assert groups[2] == 2 and groups[32] == 32
        assert all(math.gcd(32, c) == g for c, g in groups.items())


def test_freeze_at():
    backbone = build_backbone(nasnet_cfg(NUM_CELLS=1, NUM_CONV_FILTERS=8, NORM="BN", FREEZE_AT=3))
    # Outputs 0..2 frozen: the stem conv, cell_stem_0 and cell_stem_1.
    assert not any(p.requires_grad for p in backbone.stem.parameters())
    assert not any(p.requires_grad for p in backbone.cells[1].parameters())
    assert isinstance(backbone.cells[1].pre0.bn, FrozenBatchNorm2d)
    assert all(p.requires_grad for p in backbone.cells[2].parameters())
    with pytest.raises(ValueError, match="freeze_at"):
        build_backbone(nasnet_cfg(NUM_CELLS=1, NUM_CONV_FILTERS=8, FREEZE_AT=99))
