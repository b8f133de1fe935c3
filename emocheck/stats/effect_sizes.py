"""Effect sizes: Cohen's d / Hedges' g and their intervals (noncentral-t inversion or BCa bootstrap)."""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from emocheck.stats._common import CI_METHODS, _check_confidence, _design, _nct_cdf, _samples




def hedges_correction(df: float) -> float:
    """Exact small-sample bias correction J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2)) (Hedges 1981).

    Computed through log-gamma so it does not overflow for large df. J -> 1 as df -> inf.
    """
    if df <= 1:
        return float("nan")
    return float(math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2))


def cohens_d(x, y=None, *, paired: bool = False, hedges: bool = False) -> float:
    """Cohen's d, signed mean(x) - mean(y).

    * independent (y given, paired=False): (mean(x) - mean(y)) / pooled SD, where the pooled
      variance weights each sample variance (ddof=1) by n - 1;
    * paired (paired=True): d_z = mean(x - y) / sd(x - y, ddof=1);
    * one-sample (y None): mean(x) / sd(x, ddof=1).

    ``hedges=True`` multiplies by the exact correction :func:`hedges_correction` with
    df = n1 + n2 - 2 (independent) or df = n - 1 (paired / one-sample), i.e. the degrees of freedom
    of the SD in the denominator. This is Hedges' g.
    """
    x, y = _samples(x, y, paired)
    d, df, _ = _design(x, y, paired)
    return d * hedges_correction(df) if hedges else d


def _d_vectorized(paired: bool, one_sample: bool):
    """Cohen's d as a scipy-bootstrap 'vectorized' statistic (works along ``axis``).

    Vectorising avoids thousands of Python calls per bootstrap (BCa also runs a jackknife).
    """
    if one_sample:
        def stat(x, axis=-1):
            return np.mean(x, axis=axis) / np.std(x, axis=axis, ddof=1)
    elif paired:
        def stat(x, y, axis=-1):
            z = x - y
            return np.mean(z, axis=axis) / np.std(z, axis=axis, ddof=1)
    else:
        def stat(x, y, axis=-1):
            n1, n2 = x.shape[axis], y.shape[axis]
            pooled = ((n1 - 1) * np.var(x, axis=axis, ddof=1)
                      + (n2 - 1) * np.var(y, axis=axis, ddof=1)) / (n1 + n2 - 2)
            return (np.mean(x, axis=axis) - np.mean(y, axis=axis)) / np.sqrt(pooled)
    return stat


def _nct_ncp_for_cdf(t_obs: float, df: float, target: float) -> float:
    """Noncentrality δ with nct.cdf(t_obs; df, δ) == target.

    The cdf is strictly decreasing in δ, so bracket around t_obs and let brentq find the root.
    """
    def f(ncp):
        return _nct_cdf(t_obs, df, ncp) - target

    # Start the bracket at t_obs +- a few standard errors and widen until the sign changes.
    width = 2.0 + 0.5 * abs(t_obs)
    lo, hi = t_obs - width, t_obs + width
    for _ in range(60):
        flo, fhi = f(lo), f(hi)
        if flo >= 0 and fhi <= 0:
            break
        if flo < 0:
            lo -= width
        if fhi > 0:
            hi += width
        width *= 2
    else:  # pragma: no cover - only for absurd t values
        return float("nan")
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=500))


def cohens_d_ci(
    x,
    y=None,
    *,
    paired: bool = False,
    hedges: bool = False,
    confidence: float = 0.95,
    method: str = "analytic",
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Two-sided ``confidence`` interval for Cohen's d (or Hedges' g with ``hedges=True``).

    ``method='analytic'``: the exact interval obtained by inverting the noncentral t distribution
    (Steiger & Fouladi 1997; Cumming & Finch 2001; as in R's MBESS::ci.smd). The observed
    t = d * scale (scale = sqrt(n), or sqrt(n1 n2/(n1+n2)) with the pooled SD) follows a noncentral
    t with df = n - 1 (or n1 + n2 - 2) and noncentrality δ = d_true * scale; the interval is
    [δ_lo, δ_hi] / scale with nct.cdf(t; df, δ_lo) = 1 - a/2 and nct.cdf(t; df, δ_hi) = a/2.
    For paired data this treats the differences as one sample (d_z). With ``hedges=True`` both
    bounds are multiplied by J(df) (a monotone rescaling, so coverage is unchanged).

    ``method='bootstrap'``: BCa interval from :func:`scipy.stats.bootstrap` (pairs resampled
    together when paired) with ``np.random.default_rng(seed)``.
    """
    _check_confidence(confidence)
    x, y = _samples(x, y, paired)
    d, df, scale = _design(x, y, paired)
    j = hedges_correction(df) if hedges else 1.0
    if method == "analytic":
        if not np.isfinite(d):
            return float("nan"), float("nan")
        a = 1.0 - confidence
        t_obs = d * scale
        lo = _nct_ncp_for_cdf(t_obs, df, 1.0 - a / 2) / scale
        hi = _nct_ncp_for_cdf(t_obs, df, a / 2) / scale
        return lo * j, hi * j
    if method == "bootstrap":
        one_sample = y is None
        data = (x,) if one_sample else (x, y)
        from emocheck.stats.bootstrap import _scipy_bootstrap

        lo, hi = _scipy_bootstrap(
            data, _d_vectorized(paired, one_sample), vectorized=True, paired=paired and not one_sample,
            confidence=confidence, n_resamples=n_resamples, seed=seed, method="BCa",
        )
        return lo * j, hi * j
    raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")



def ci_from_nct(t_obs: float, df: float, scale: float, confidence: float) -> tuple[float, float]:
    """Two-sided ``confidence`` interval for d when t = d * scale follows a noncentral t(df, d * scale).

    The inversion behind :func:`cohens_d_ci` for any design whose t statistic is d times a known
    (or plugged-in) scale, e.g. the direction-level test of :mod:`emocheck.stats.directions`.
    """
    _check_confidence(confidence)
    if not (np.isfinite(t_obs) and scale > 0):
        return float("nan"), float("nan")
    a = 1.0 - confidence
    return (_nct_ncp_for_cdf(t_obs, df, 1.0 - a / 2) / scale,
            _nct_ncp_for_cdf(t_obs, df, a / 2) / scale)
