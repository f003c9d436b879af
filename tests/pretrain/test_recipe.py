"""The recipe's pieces against hand-computed values (TF semantics)."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from nasnet_det.pretrain.config import apply_overrides, get_cfg, load_config, to_dict
from nasnet_det.pretrain.data import EpochSampler, Preprocess
from nasnet_det.pretrain.optim import ExponentialWarmup, ModelEma, RMSPropTF, param_groups


def test_rmsprop_tf_two_steps_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = RMSPropTF([p], lr=0.1, decay=0.9, momentum=0.9, eps=1.0)
    p.grad = torch.tensor([0.5])
    opt.step()
    # ms = 0.9 * 1 + 0.1 * 0.25 = 0.925; mom = 0.1 * 0.5 / sqrt(0.925 + 1)
    mom1 = 0.1 * 0.5 / math.sqrt(1.925)
    assert p.item() == pytest.approx(1.0 - mom1, abs=1e-7)
    p.grad = torch.tensor([-1.0])
    opt.step()
    ms2 = 0.9 * 0.925 + 0.1 * 1.0
    mom2 = 0.9 * mom1 + 0.1 * -1.0 / math.sqrt(ms2 + 1.0)
    assert p.item() == pytest.approx(1.0 - mom1 - mom2, abs=1e-7)


def test_weight_decay_only_on_weights():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    decay, no_decay = param_groups(net, 4e-5)
    assert decay["params"] == [net[0].weight] and decay["weight_decay"] == 4e-5
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0


def test_staircase_decay_with_warmup():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = ExponentialWarmup(
        opt,
        0.04,
        steps_per_epoch=10,
        decay=0.97,
        decay_epochs=2.4,
        warmup_epochs=1.0,
        warmup_lr=0.0,
    )
    assert opt.param_groups[0]["lr"] == 0.0
    assert s.lr_at(5) == pytest.approx(0.02)  # half-way through the warm-up
    assert s.lr_at(10) == pytest.approx(0.04)
    assert s.lr_at(23) == pytest.approx(0.04)  # epoch 2.3 < 2.4
    assert s.lr_at(24) == pytest.approx(0.04 * 0.97)
    assert s.lr_at(100) == pytest.approx(0.04 * 0.97**4)  # floor(10 / 2.4) = 4
    for _ in range(24):
        s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04 * 0.97)


def test_ema_uses_tf_num_updates_warmup():
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = ModelEma(net, decay=0.9999)
    torch.nn.init.constant_(net.weight, 1.0)
    ema.update(net)  # decay min(0.9999, 1 / 10) = 0.1
    assert ema.module.weight.item() == pytest.approx(0.9)
    ema.update(net)  # decay 2 / 11
    assert ema.module.weight.item() == pytest.approx(0.9 * 2 / 11 + 9 / 11)


def test_sampler_shards_whole_batches_and_resumes_mid_epoch():
    a = EpochSampler(10, batch_size=2, seed=3, rank=0, world=2)
    b = EpochSampler(10, batch_size=2, seed=3, rank=1, world=2)
    assert a.num_batches == 2  # 10 // (2 x 2), the remainder is dropped
    ia, ib = a.indices(), b.indices()
    assert len(ia) == len(ib) == 4 and not set(ia) & set(ib)
    a.set_epoch(0, start_batch=1)
    assert a.indices() == ia[2:]
    a.set_epoch(1)
    assert a.indices() != ia
    val = EpochSampler(5, 2, rank=1, world=2, shuffle=False)
    assert val.indices() == [1, 3]


def test_inception_crop_is_a_function_of_the_seed():
    import random

    img = Image.new("RGB", (64, 48), (200, 10, 10))
    pre = Preprocess(image_size=32)
    x = pre(img, random.Random("0/1/2"))
    assert x.shape == (3, 32, 32) and torch.equal(x, pre(img, random.Random("0/1/2")))
    assert x[0].max() == pytest.approx(200 / 255 * 2 - 1, abs=1e-2)  # mean = std = 0.5
    ev = Preprocess(image_size=32, train=False)(img)
    assert ev.shape == (3, 32, 32)


def test_config_layers_and_overrides(tmp_path):
    cfg = load_config(None, ["optim.lr", "0.02", "data.scale", "[0.35, 1]"])
    assert cfg.optim.lr == 0.02 and cfg.data.scale == [0.35, 1]
    assert cfg.optim.rmsprop_eps == get_cfg().optim.rmsprop_eps == 1.0
    cfg = apply_overrides(cfg, ["model.overrides.num_cells", "2", "optim.lr", "1"])
    assert to_dict(cfg.model.overrides) == {"num_cells": 2}
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # typed by the default
    with pytest.raises(ValueError, match="optim.lr expects a float"):
        apply_overrides(cfg, ["optim.lr", "abc"])
    with pytest.raises(ValueError, match="unknown config key optim.lrr"):
        apply_overrides(cfg, ["optim.lrr", "0.1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2]\n")
    with pytest.raises(ValueError, match="config key optim is a section"):
        load_config(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_config_files_inherit_through_base(tmp_path):
    (tmp_path / "base.yaml").write_text("optim:\n  lr: 0.5\n  batch_size: 8\n")
    (tmp_path / "run.yaml").write_text("_BASE_: base.yaml\noptim:\n  batch_size: 2\n")
    cfg = load_config(tmp_path / "run.yaml", ["train.epochs", "3"])
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.train.epochs) == (0.5, 2, 3)
    assert cfg.optim.label_smoothing == 0.1  # untouched keys keep the defaults


@pytest.mark.parametrize(
    "name", ["nasnet_a_mobile", "nasnet_a_large", "searched_genotype", "instant_test"]
)
def test_shipped_configs_load(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / f"configs/ImageNet/{name}.yaml"
    assert "_BASE_:" in path.read_text()  # every shipped config is a delta on the base
    cfg = load_config(path)
    size = {"nasnet_a_large": 331, "instant_test": 96}.get(name, 224)
    assert cfg.data.image_size == size
    assert cfg.optim.label_smoothing == 0.1 and cfg.optim.aux_weight == 0.4
