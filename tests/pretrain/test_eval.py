"""--eval-only: each source's preprocessing, background class of 1001-way checkpoints."""

from __future__ import annotations

import pytest

from nasnet_det.convert import save_checkpoint
from nasnet_det.convert.hub import load_weights
from nasnet_det.nasnet import build_nasnet
from nasnet_det.pretrain import evaluate_weights

TINY = {"num_cells": 1, "num_conv_filters": 8, "use_aux_head": False}


def _converted(path, preset, source, num_classes):
    overrides = {**TINY, "num_classes": num_classes}
    sd = build_nasnet(preset, **overrides).state_dict()
    save_checkpoint(path, sd, {"preset": preset, "overrides": overrides, "source": source})


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_weights_get_timms_preprocessing(tmp_path, suffix):
    path = tmp_path / f"large{suffix}"
    _converted(path, "nasnet_a_large", "timm:nasnetalarge", 1000)
    conv = load_weights(path)
    assert conv.preset == "nasnet_a_large"
    assert conv.preprocessing == {
        "image_size": 331, "crop_pct": 0.911, "interpolation": "bicubic",
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    }  # fmt: skip


def test_our_weights_without_recorded_preprocessing_get_the_recipes(tmp_path):
    """A converted file of our own network that records no preprocessing: the pretraining
    recipe's evaluation crop at the preset's size (Mobile 224, Large 331)."""
    for preset, size in (("nasnet_a_mobile", 224), ("nasnet_a_large", 331)):
        path = tmp_path / f"{preset}.pth"
        _converted(path, preset, f"nasnet_det:{preset}", 10)
        pre = load_weights(path).preprocessing
        assert pre == {
            "image_size": size, "crop_pct": 0.875, "interpolation": "bilinear",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
        }  # fmt: skip


def test_cadene_1001_classes_drop_the_background_logit(tmp_path, dataset):
    path = tmp_path / "mobile.pth"
    _converted(path, "nasnet_a_mobile", "pretrainedmodels:nasnetamobile", 4)  # 3 + background
    r = evaluate_weights(path, dataset, num_workers=0, batch_size=4)
    assert r["preprocessing"]["image_size"] == 224 and r["preprocessing"]["crop_pct"] == 0.875
    assert r["images"] == 6 and 0 <= r["top1"] <= r["top5"] == 100.0  # 3 classes: top-5 is all
    _converted(path, "nasnet_a_mobile", "pretrainedmodels:nasnetamobile", 7)
    with pytest.raises(ValueError, match="predict 7 classes but"):
        evaluate_weights(path, dataset, num_workers=0)
