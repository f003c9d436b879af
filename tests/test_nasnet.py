"""The builder against the paper's tables and the reference ports' structure."""

import json
import random

import pytest
import torch

from nasnet_det import build_nasnet, list_presets
from nasnet_det.nasnet import NASNet, NASNetConfig, NASNetOutput, nasnet_config


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "preset, overrides, paper",
    [
        ("nasnet_a_mobile", {}, 5.3e6),  # 4@1056
        ("nasnet_a_large", {}, 88.9e6),  # 6@4032
    ],
)
def test_parameter_counts_match_the_paper(preset, overrides, paper):
    # The paper counts the inference network (no auxiliary head).
    m = build_nasnet(preset, use_aux_head=False, **overrides)
    assert abs(n_params(m) - paper) / paper < 0.01


def test_parameter_counts_match_the_reference_ports_exactly():
    # timm's nasnetalarge (NASNET_FACTS.md) and Cadene's nasnetamobile, 1000 classes.
    assert n_params(build_nasnet("nasnet_a_large", use_aux_head=False)) == 88_753_150
    assert n_params(build_nasnet("nasnet_a_mobile", use_aux_head=False)) == 5_289_978


def test_cifar_parameter_count_matches_the_paper_as_rounded():
    # 6@768: the paper prints 3.3M (two significant figures); TF-slim's construction gives
    # 3,346,538, which rounds to it.
    m = build_nasnet("nasnet_a_cifar", use_aux_head=False)
    assert round(n_params(m) / 1e5) / 10 == 3.3
    assert m.num_features == 768


@pytest.mark.slow
def test_mult_adds_match_the_paper():
    fvcore = pytest.importorskip("fvcore.nn")
    for preset, size, paper in [("nasnet_a_mobile", 224, 564e6), ("nasnet_a_large", 331, 23.8e9)]:
        m = build_nasnet(preset, use_aux_head=False).eval()
        flops = fvcore.FlopCountAnalysis(m, torch.randn(1, 3, size, size))
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        assert abs(flops.total() - paper) / paper < 0.02, (preset, flops.total())


def test_feature_info_matches_timm_nasnetalarge():
    m = build_nasnet("nasnet_a_large", num_classes=1000)
    info = {f.get("name", f["module"]): (f["num_chs"], f["reduction"]) for f in m.feature_info}
    # timm's taps: conv0, cell_stem_0, cell_5, cell_11, cell_17 (NASNET_FACTS.md).
    assert info["stem"] == (96, 2)
    assert info["cell_stem_0"] == (168, 4)
    assert info["cell_5"] == (1008, 8)
    assert info["cell_11"] == (2016, 16)
    assert info["cell_17"] == (4032, 32)
    assert len(m.cells) == 22 and m.num_features == 4032
    # skip_reduction_layer_input: cell_6 reads cell_4, cell_12 reads cell_10 (as timm wires it).
    idx = {n: i for i, n in enumerate(m.cell_names)}
    assert m.prev_index[idx["cell_6"]] == idx["cell_4"] + 1
    assert m.prev_index[idx["cell_12"]] == idx["cell_10"] + 1


def test_mobile_wiring_matches_cadene():
    m = build_nasnet("nasnet_a_mobile")
    idx = {n: i for i, n in enumerate(m.cell_names)}
    # Cadene: cell_6(reduction_cell_0, cell_3) in its numbering = our cell_4 reads cell_3.
    assert m.prev_index[idx["cell_4"]] == idx["cell_3"] + 1
    assert m.prev_index[idx["reduction_cell_0"]] == idx["cell_2"] + 1


def test_forward_surface_and_aux_head():
    m = build_nasnet("nasnet_a_mobile", num_classes=7, num_conv_filters=8, image_size=96)
    x = torch.randn(2, 3, 96, 96)
    m.train()
    out = m(x)
    assert isinstance(out, NASNetOutput)
    assert out.logits.shape == (2, 7) and out.aux_logits.shape == (2, 7)
    m.eval()
    feats = m.forward_features(x)
    assert feats.shape == (2, m.num_features, 3, 3)
    assert torch.allclose(m.forward_head(feats), m(x))
    assert m.forward_head(feats, pre_logits=True).shape == (2, m.num_features)
    # The aux head's last conv spans the whole pooled map: 96px -> 6px at stride 16 -> 1x1 pool.
    assert m.aux_head.conv.kernel_size == (1, 1)
    large = build_nasnet("nasnet_a_large", num_conv_filters=8)
    assert large.aux_head.conv.kernel_size == (6, 6)  # 331 -> 21 -> (21 - 5) // 3 + 1


def test_any_genotype_builds_and_trains(tmp_path, random_genotype):
    rng = random.Random(1)
    for i in range(4):
        g = random_genotype(rng, num_blocks=rng.randint(2, 5))
        path = tmp_path / "g.json"
        g.to_json(path)
        stem = "cifar" if i % 2 else "imagenet"
        size = 33 if stem == "cifar" else 83  # odd sizes exercise TF's asymmetric padding
        m = build_nasnet(
            "nasnet_a_cifar", genotype=str(path), stem=stem, num_cells=1, num_conv_filters=4,
            num_classes=3, image_size=size, drop_path_keep_prob=0.5,
        )  # fmt: skip
        assert m.genotype == g
        m.train()
        m.set_drop_path_progress(1.0)
        out = m(torch.randn(2, 3, size, size))
        loss = out.logits.sum() + out.aux_logits.sum() if isinstance(out, tuple) else out.sum()
        loss.backward()
        assert all(p.grad is not None for p in m.classifier.parameters())
        # Reported channels and strides are the real ones.
        m.eval()
        outs = m.forward_outputs(torch.randn(1, 3, size, size), keep=range(len(m.cells) + 1))
        assert sorted(outs) == list(range(len(m.feature_info)))
        for info, y in zip(m.feature_info, (outs[j] for j in sorted(outs))):
            assert y.shape[1] == info["num_chs"]
            assert y.shape[2] == -(-size // info["reduction"]) or info["module"] == "stem"


def test_bad_builder_arguments():
    assert list_presets() == ["nasnet_a_cifar", "nasnet_a_large", "nasnet_a_mobile"]
    with pytest.raises(ValueError, match="unknown preset 'nasnet_b'; expected one of"):
        build_nasnet("nasnet_b")
    with pytest.raises(ValueError, match=r"unknown build_nasnet argument\(s\) \['num_layers'\]"):
        build_nasnet("nasnet_a_mobile", num_layers=3)
    with pytest.raises(ValueError, match="num_cells must be a positive integer"):
        build_nasnet("nasnet_a_mobile", num_cells=0)
    with pytest.raises(ValueError, match="does not exist"):
        build_nasnet("nasnet_a_mobile", genotype="missing/cell.json")


def test_config_rebuilds_its_network_from_json_alone(random_genotype):
    # A checkpoint stores NASNetConfig.to_dict(): the genotype inline, no separate file needed.
    g = random_genotype(random.Random(7), num_blocks=3)
    cfg = nasnet_config("nasnet_a_mobile", genotype=g, num_cells=1, num_conv_filters=4)
    back = NASNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.genotype == g
    a, b = NASNet(cfg).state_dict(), NASNet(back).state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['cells'\]"):
        NASNetConfig.from_dict({**cfg.to_dict(), "cells": 3})
