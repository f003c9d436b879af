"""Zero-cost scores against hand computations on a 3-4-2 ReLU network (numpy, no autograd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nasnet_det.search.zero_cost import grad_norm, naswot, param_count, synflow, zero_cost_scores
from torch import nn

W1 = np.array([[0.5, -1.0, 0.25], [-0.75, 0.5, 1.5], [1.0, 1.0, -1.0], [-0.5, 0.25, 0.5]])
W2 = np.array([[1.0, -2.0, 0.5, 1.0], [0.5, 0.25, -1.0, 2.0]])
X = np.array([[1.0, 0.5, -1.0], [-1.0, 1.0, 0.5], [0.5, -0.5, 2.0], [2.0, 1.0, 1.0]])
Y = np.array([0, 1, 1, 0])


def _net() -> nn.Module:
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1))
        net[2].weight.copy_(torch.tensor(W2))
    return net.double()


def test_synflow_is_the_layer_count_times_the_positive_networks_output():
    # |W| everywhere and an all-ones input: h = |W1| 1, R = 1' |W2| h. Synaptic flow is
    # conserved (Tanaka et al. 2020): sum |W2 * dR/dW2| = sum_ij |W2_ij| h_j = R and
    # sum |W1 * dR/dW1| = sum_jk |W1_jk| colsum_j |W2| = R, so the score is 2 R.
    h = np.abs(W1) @ np.ones(3)
    r = (np.abs(W2) @ h).sum()
    by_layer1 = (np.abs(W1) * np.abs(W2).sum(0)[:, None]).sum()
    assert by_layer1 == pytest.approx(r)
    assert synflow(_net(), (3,)) == pytest.approx(2 * r, rel=1e-12)


def test_naswot_is_the_log_determinant_of_shared_activation_patterns():
    codes = (X @ W1.T > 0).astype(int)  # [4 images, 4 ReLU units]
    k = np.array([[sum(a == b for a, b in zip(ci, cj)) for cj in codes] for ci in codes])
    # 4 units minus the Hamming distance of the patterns: [[4 1 0 2] [1 4 3 1] ...], det 32.
    assert k.tolist() == [[4, 1, 0, 2], [1, 4, 3, 1], [0, 3, 4, 2], [2, 1, 2, 4]]
    want = math.log(32.0)
    assert naswot(_net(), torch.tensor(X)) == pytest.approx(want, rel=1e-10)


def test_grad_norm_is_the_sum_of_per_layer_gradient_norms():
    a = X @ W1.T
    h = np.maximum(a, 0)
    z = h @ W2.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(2)[Y]) / len(X)  # d mean cross-entropy / d logits
    dw2 = dz.T @ h
    dw1 = ((dz @ W2) * (a > 0)).T @ X
    want = np.linalg.norm(dw1) + np.linalg.norm(dw2)
    got = grad_norm(_net(), torch.tensor(X), torch.tensor(Y))
    assert got == pytest.approx(want, rel=1e-10)


def test_scores_leave_the_callers_network_untouched_and_run_on_a_nasnet_child():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s = zero_cost_scores(net, torch.tensor(X), torch.tensor(Y))
    assert s["params"] == param_count(net) == 20
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())

    from nasnet_det.genotypes import get_genotype
    from nasnet_det.nasnet import build_nasnet

    torch.manual_seed(0)
    child = build_nasnet("nasnet_a_cifar", genotype=get_genotype("nasnet_a"), num_cells=1,
                         num_conv_filters=4, stem_multiplier=1.0, num_classes=10,
                         use_aux_head=False, image_size=8)  # fmt: skip
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 10
    s = zero_cost_scores(child, x, y)
    assert all(math.isfinite(v) for v in s.values()) and s["synflow"] > 0
    # NASWOT saw every ReLU: K's diagonal is the number of ReLU units, so log det <= 8 log(it).
    assert s["naswot"] > 0


def test_a_layer_the_output_does_not_use_adds_nothing():
    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.unused = _net(), nn.Linear(3, 3).double()

        def forward(self, x):
            return self.net(x)

    assert synflow(WithUnused(), (3,)) == pytest.approx(synflow(_net(), (3,)))
    x, y = torch.tensor(X), torch.tensor(Y)
    assert grad_norm(WithUnused(), x, y) == pytest.approx(grad_norm(_net(), x, y))
