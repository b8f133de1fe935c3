"""Shared input checks and noncentral-t helpers of emocheck.stats (private)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st


ALTERNATIVES = ("two-sided", "greater", "less")
ADJUST_METHODS = ("bonferroni", "holm", "bh", "none")
CI_METHODS = ("analytic", "bootstrap")
# Effect sizes for which Comparison.n_required reports the sample size needed for 80% power.
N_REQUIRED_EFFECTS = (0.2, 0.3, 0.5)



def _as_1d(a, name: str) -> np.ndarray:
    """Float 1-D copy of an array-like; ValueError (not silent broadcasting) for other shapes."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim != 1:
        arr = np.squeeze(arr)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {np.shape(a)}")
    return arr


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _samples(x, y, paired: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate the (x, y, paired) triple shared by the effect-size and test functions."""
    x = _as_1d(x, "x")
    if y is None:
        if paired:
            raise ValueError("paired=True needs a second sample y")
        return x, None
    y = _as_1d(y, "y")
    if paired and x.size != y.size:
        raise ValueError(
            f"paired samples must have equal length: x has {x.size} values, y has {y.size}"
        )
    return x, y


def _design(x: np.ndarray, y: np.ndarray | None, paired: bool):
    """Reduce a design to what the t machinery needs.

    Returns (d, df, scale) where d is Cohen's d (pooled for independent samples), df the degrees
    of freedom of the matching *pooled/paired/one-sample* t statistic, and scale the factor with
    t = d * scale (sqrt(n) for one-sample/paired, sqrt(n1 n2 / (n1 + n2)) for independent).
    """
    if y is None or paired:
        z = x if y is None else x - y
        n = z.size
        # Zero SD gives +-inf (or NaN for 0/0): callers that must refuse it (compare) check first.
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.mean(z) / np.std(z, ddof=1)), n - 1, math.sqrt(n)
    n1, n2 = x.size, y.size
    return _pooled_d(x, y), n1 + n2 - 2, math.sqrt(n1 * n2 / (n1 + n2))


def _pooled_d(x: np.ndarray, y: np.ndarray) -> float:
    n1, n2 = x.size, y.size
    pooled_var = ((n1 - 1) * np.var(x, ddof=1) + (n2 - 1) * np.var(y, ddof=1)) / (n1 + n2 - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((np.mean(x) - np.mean(y)) / np.sqrt(pooled_var))


def _nct_sf(t, df, ncp):
    """P(T > t) for T ~ noncentral t(df, ncp)."""
    return _st.nct.sf(t, df, ncp)


def _nct_cdf(t, df, ncp):
    """P(T <= t), computed as P(-T >= -t) with -T ~ nct(df, -ncp).

    scipy's nct.cdf returns NaN in parts of the far tails (e.g. t=-3, df=58, ncp=11) while
    nct.sf is finite everywhere we checked, so every lower tail goes through sf.
    """
    return _st.nct.sf(-np.asarray(t, dtype=float), df, -ncp)

