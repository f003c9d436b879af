"""Rank correlations between two scorings of the same children (a cheap score vs a trusted one).

A thin wrapper over :func:`scipy.stats.kendalltau` (tau-b, which handles ties) and
:func:`scipy.stats.spearmanr`: it checks the inputs (one clear ``ValueError``) and returns both
coefficients with their two-sided p-values. A constant scoring has no ranking; its coefficients
are ``nan``, as scipy returns them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["RankCorrelation", "rank_correlation", "kendall_tau", "spearman_rho"]


class RankCorrelation(NamedTuple):
    tau: float  # Kendall's tau-b
    tau_p: float
    rho: float  # Spearman's rho
    rho_p: float
    n: int


def _check(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"expected two flat sequences of scores, got shapes {a.shape}, {b.shape}")
    if len(a) != len(b):
        raise ValueError(f"expected two scorings of the same children, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"expected at least 2 children to rank, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("expected finite scores (a failed child has no rank: leave it out)")
    return a, b


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of ``x`` and ``y``."""
    return rank_correlation(x, y).tau


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y``."""
    return rank_correlation(x, y).rho


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> RankCorrelation:
    """Kendall's tau-b and Spearman's rho of two scorings of the same children."""
    from scipy import stats

    a, b = _check(x, y)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return RankCorrelation(math.nan, math.nan, math.nan, math.nan, len(a))
    kt = stats.kendalltau(a, b)
    sr = stats.spearmanr(a, b)
    return RankCorrelation(
        float(kt.statistic), float(kt.pvalue), float(sr.statistic), float(sr.pvalue), len(a)
    )
