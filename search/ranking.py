"""Rank correlations between two scorings of the same children (a cheap score vs a trusted one).

A thin wrapper over :func:`scipy.stats.kendalltau` (tau-b, which handles ties) and
:func:`scipy.stats.spearmanr`: it checks the inputs (one clear ``ValueError``) and returns both
coefficients with their two-sided p-values.

A correlation that cannot mean anything is *undefined*, never a number: with fewer than
:data:`MIN_POINTS` points (3 points rank perfectly by chance one time in six, and scipy then
reports tau 1.00), or when every value of one scoring is the same (no ranking at all). Its
coefficients are ``nan``, :attr:`RankCorrelation.reason` says why, and
:meth:`RankCorrelation.describe` prints ``undefined (reason)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["MIN_POINTS", "RankCorrelation", "rank_correlation", "kendall_tau", "spearman_rho"]

MIN_POINTS = 5


class RankCorrelation(NamedTuple):
    tau: float  # Kendall's tau-b (nan when undefined)
    tau_p: float
    rho: float  # Spearman's rho (nan when undefined)
    rho_p: float
    n: int
    reason: str | None = None  # why the correlation is undefined; None when it is defined

    @property
    def defined(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        """``Kendall tau 0.40 (p 0.48), Spearman rho 0.60 (p 0.28), n=5`` or
        ``undefined (n=3: fewer than 5 points)``."""
        if not self.defined:
            return f"undefined ({self.reason})"
        return (
            f"Kendall tau {self.tau:.2f} (p {self.tau_p:.2g}), "
            f"Spearman rho {self.rho:.2f} (p {self.rho_p:.2g}), n={self.n}"
        )


def _check(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"expected two flat sequences of scores, got shapes {a.shape}, {b.shape}")
    if len(a) != len(b):
        raise ValueError(f"expected two scorings of the same children, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("expected finite scores (a failed child has no rank: leave it out)")
    return a, b


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of ``x`` and ``y`` (``nan`` when undefined)."""
    return rank_correlation(x, y).tau


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (``nan`` when undefined)."""
    return rank_correlation(x, y).rho


def undefined_reason(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> str | None:
    """Why a rank correlation of ``a`` and ``b`` means nothing, or None when it does."""
    if len(a) < MIN_POINTS:
        return f"n={len(a)}: fewer than {MIN_POINTS} points"
    for v, name in zip((a, b), names):
        if np.ptp(v) == 0:
            return f"every {name} is tied at {v[0]:g}"
    return None


def rank_correlation(
    x: Sequence[float], y: Sequence[float], names: tuple[str, str] = ("x", "y")
) -> RankCorrelation:
    """Kendall's tau-b and Spearman's rho of two scorings of the same children; undefined
    (``nan``, with the reason, naming the scorings by ``names``) below :data:`MIN_POINTS`
    points or when either scoring is constant."""
    from scipy import stats

    a, b = _check(x, y)
    reason = undefined_reason(a, b, names)
    if reason is not None:
        return RankCorrelation(math.nan, math.nan, math.nan, math.nan, len(a), reason)
    kt = stats.kendalltau(a, b)
    sr = stats.spearmanr(a, b)
    return RankCorrelation(
        float(kt.statistic), float(kt.pvalue), float(sr.statistic), float(sr.pvalue), len(a)
    )
