"""MODEL.WEIGHTS: classification checkpoints load into the detector; wrong ones fail clearly."""

import pickle

import pytest
import torch
from detectron2.modeling import build_model

from nasnet_det.detection import NASNetCheckpointer, classification_to_detectron2, model_zoo
from nasnet_det.detection.checkpoint import CheckpointMismatchError
from nasnet_det.detection.config import get_nasnet_cfg
from nasnet_det.nasnet import build_nasnet


def tiny_cfg(norm="FrozenBN"):
    cfg = get_nasnet_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("Base-NASNet-C4.yaml"))
    cfg.MODEL.NASNET.NUM_CELLS = 1
    cfg.MODEL.NASNET.NUM_CONV_FILTERS = 8
    cfg.MODEL.NASNET.NORM = norm
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def classification_checkpoint(path, **overrides):
    torch.manual_seed(1)
    args = {"num_cells": 1, "num_conv_filters": 8, **overrides}
    net = build_nasnet("nasnet_a_mobile", **args)
    for m in net.modules():  # non-trivial BN statistics, so loading them is visible
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    torch.save({"model": net.state_dict(), "epoch": 3}, path)
    return net.state_dict()


def test_key_mapping_splits_at_reduction_cell_1():
    cfg = tiny_cfg()
    net = build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=8)
    mapped = classification_to_detectron2(net.state_dict(), cfg)
    assert "backbone.stem.conv.weight" in mapped
    # N=1: cells 0..4 form the first stage, 5 (reduction_cell_1) and 6 (cell_2) the second.
    assert "backbone.cells.4.pre0.conv.weight" in mapped
    assert "roi_heads.second_stage.cells.5.pre0.conv.weight" in mapped
    assert not any(k.startswith(("backbone.cells.5", "classifier", "aux_head")) for k in mapped)
    assert not any("classifier" in k or "aux_head" in k for k in mapped)
    # Exactly the NASNet tensors of Detectron2's model: its FrozenBatchNorm2d (made from BN)
    # keeps num_batches_tracked in 0.7.2, so the counters are mapped too; GN keeps no stats.
    for norm in ("FrozenBN", "GN"):
        cfg = tiny_cfg(norm)
        mapped = classification_to_detectron2(net.state_dict(), cfg)
        want = {
            k
            for k in build_model(cfg).state_dict()
            if k.startswith(("backbone.", "roi_heads.second_stage."))
        }
        assert set(mapped) == want


@pytest.mark.parametrize("norm", ["FrozenBN", "GN"])
def test_classification_checkpoint_loads_into_detector(tmp_path, norm):
    path = tmp_path / "imagenet.pth"
    sd = classification_checkpoint(path)
    cfg = tiny_cfg(norm)
    model = build_model(cfg)
    NASNetCheckpointer(model, cfg=cfg).load(str(path))
    got = model.state_dict()
    for key in (
        "stem.conv.weight",
        "cells.3.pre0.conv.weight",
        "cells.6.blocks.0.left.sep1.depthwise.weight",
    ):
        dst = ("roi_heads.second_stage." if key.startswith("cells.6") else "backbone.") + key
        assert torch.equal(got[dst], sd[key])
    if norm == "FrozenBN":
        assert torch.equal(
            got["backbone.cells.2.pre0.bn.running_var"], sd["cells.2.pre0.bn.running_var"]
        )


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "wide.pth"
    classification_checkpoint(path, num_conv_filters=12)
    cfg = tiny_cfg()
    model = build_model(cfg)
    with pytest.raises(CheckpointMismatchError, match="different architecture"):
        NASNetCheckpointer(model, cfg=cfg).load(str(path))


def test_unsafe_or_missing_checkpoint(tmp_path):
    cfg = tiny_cfg()
    model = build_model(cfg)
    ckpt = NASNetCheckpointer(model, cfg=cfg)
    with pytest.raises(ValueError, match="does not exist"):
        ckpt.load(str(tmp_path / "nope.pth"))
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": object()}))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        ckpt.load(str(evil))
