"""Rank correlations: hand-computed golden values and scipy.stats on fixed inputs (ties too)."""

import math
from itertools import combinations

import numpy as np
import pytest
from nasnet_det.search.ranking import kendall_tau, rank_correlation, spearman_rho
from scipy import stats


def _tau_b(x, y):
    """Kendall's tau-b by counting pairs (textbook definition, independent of scipy)."""
    conc = disc = tx = ty = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx == dy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


def _avg_ranks(v):
    v = np.asarray(v, dtype=float)
    r = np.empty(len(v))
    for i, a in enumerate(v):
        r[i] = (v < a).sum() + ((v == a).sum() + 1) / 2
    return r


def _rho(x, y):
    return float(np.corrcoef(_avg_ranks(x), _avg_ranks(y))[0, 1])


def test_golden_values_without_ties():
    # 7 concordant, 3 discordant pairs: tau = 0.4; rank differences squared sum to 8:
    # rho = 1 - 6 * 8 / (5 * 24) = 0.6.
    x, y = [1, 2, 3, 4, 5], [3, 1, 2, 5, 4]
    assert kendall_tau(x, y) == pytest.approx(0.4, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(0.6, abs=1e-12)
    assert kendall_tau(x, x[::-1]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(4))
def test_matches_scipy_and_pair_counting_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Accuracies on 400 images repeat: round to force ties, as real rewards have.
    x = np.round(rng.uniform(0.7, 0.95, 31), 2)
    y = np.round(x + rng.normal(0, 0.05, 31), 2)
    c = rank_correlation(x, y)
    assert c.tau == pytest.approx(_tau_b(x, y), abs=1e-12)
    assert c.rho == pytest.approx(_rho(x, y), abs=1e-12)
    kt, sr = stats.kendalltau(x, y), stats.spearmanr(x, y)
    assert (c.tau, c.tau_p) == pytest.approx((kt.statistic, kt.pvalue), abs=1e-12)
    assert (c.rho, c.rho_p) == pytest.approx((sr.statistic, sr.pvalue), abs=1e-12)
    assert c.n == 31


def test_constant_scoring_is_undefined_not_a_number():
    c = rank_correlation([0.5] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], names=("AP", "reward"))
    assert math.isnan(c.tau) and math.isnan(c.rho) and not c.defined
    assert c.describe() == "undefined (every AP is tied at 0.5)"
    c = rank_correlation([0.1, 0.2, 0.3, 0.4, 0.5], [0.0] * 5)
    assert c.describe() == "undefined (every y is tied at 0)"


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_fewer_than_five_points_is_undefined(n):
    # 3 points in the same order: scipy says tau = rho = 1.0 (p 0.33 / 0.0); we say undefined.
    x = list(range(n))
    c = rank_correlation(x, x)
    assert math.isnan(c.tau) and math.isnan(c.rho) and math.isnan(c.tau_p) and c.n == n
    assert c.describe() == f"undefined (n={n}: fewer than 5 points)"


def test_five_points_are_defined_and_described():
    c = rank_correlation([1, 2, 3, 4, 5], [3, 1, 2, 5, 4])
    assert c.defined and c.reason is None
    kt, sr = (
        stats.kendalltau([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]),
        stats.spearmanr([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]),
    )
    assert c.describe() == (
        f"Kendall tau 0.40 (p {kt.pvalue:.2g}), Spearman rho 0.60 (p {sr.pvalue:.2g}), n=5"
    )


@pytest.mark.parametrize(
    "x, y, message",
    [
        ([1, 2, 3], [1, 2], "same children, got 3 and 2"),
        ([1, float("nan")], [1, 2], "finite scores"),
        ([[1, 2]], [[1, 2]], "flat sequences"),
    ],
)
def test_bad_input_is_one_clear_error(x, y, message):
    with pytest.raises(ValueError, match=message):
        rank_correlation(x, y)
