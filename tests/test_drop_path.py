"""ScheduledDropPath (TF-slim v3): keep rates per cell and step, statistics, identity, eval."""

import pytest
import torch

from nasnet_det import Block, Branch, build_nasnet
from nasnet_det.cells import CellBlock
from nasnet_det.drop_path import drop_path, scheduled_keep_prob, training_progress
from nasnet_det.ops import OpConfig


def test_keep_prob_formula_hand_computed():
    # Large: 18 normal + 2 reduction + 2 stem cells = 22; drop_path_keep_prob 0.7.
    assert scheduled_keep_prob(0.7, 21, 22, 1.0) == pytest.approx(0.7)
    assert scheduled_keep_prob(0.7, 0, 22, 1.0) == pytest.approx(1 - (1 / 22) * 0.3)
    assert scheduled_keep_prob(0.7, 10, 22, 0.5) == pytest.approx(1 - 0.5 * (11 / 22) * 0.3)
    assert scheduled_keep_prob(0.7, 21, 22, 0.0) == 1.0
    assert scheduled_keep_prob(0.7, 21, 22, 3.0) == pytest.approx(0.7)  # t is capped at 1
    assert training_progress(125_000, 250_000) == 0.5
    assert training_progress(400_000, 250_000) == 1.0


def test_model_sets_keep_rate_per_cell_and_step():
    # CIFAR: 18 normal + 2 reduction cells = 20 cells, drop_path_keep_prob 0.6.
    m = build_nasnet("nasnet_a_cifar", num_conv_filters=4)
    assert len(m.cells) == 20
    assert all(c.drop_path_keep_prob == 1.0 for c in m.cells.values())
    m.set_drop_path_progress(0.25)
    for i, cell in enumerate(m.cells.values()):
        assert cell.drop_path_keep_prob == pytest.approx(1 - 0.25 * (i + 1) / 20 * 0.4)


def test_drop_path_statistics():
    torch.manual_seed(0)
    x = torch.ones(40_000, 2, 1, 1)
    y = drop_path(x, 0.7, training=True)
    kept = y[:, 0, 0, 0] != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(y[:, 0], y[:, 1])  # one decision per example
    assert torch.equal(x, torch.ones_like(x))  # input untouched
    assert drop_path(x, 0.7, training=False) is x


def test_identity_branches_are_never_dropped_and_eval_is_untouched():
    cfg = OpConfig()
    ones, zeros = torch.ones(20_000, 1, 2, 2), torch.zeros(20_000, 1, 2, 2)
    pool = CellBlock(
        Block(Branch("avg_pool_3x3", 0), Branch("identity", 1)), [1, 1], 1, False, cfg
    ).train()
    y = pool([ones, zeros], keep_prob=0.6)[:, 0, 0, 0]
    assert abs((y != 0).float().mean().item() - 0.6) < 0.015
    ident = CellBlock(
        Block(Branch("identity", 0), Branch("avg_pool_3x3", 1)), [1, 1], 1, False, cfg
    ).train()
    assert torch.equal(ident([ones, zeros], keep_prob=0.6), ones)
    pool.eval()
    assert torch.equal(pool([ones, zeros], keep_prob=0.6), ones)
