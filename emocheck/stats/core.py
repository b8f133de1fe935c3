"""Statistics engine of emocheck: effect sizes, tests, corrections, power and the verdict rule.

Every function here is a plain function on array-likes; nothing depends on pytest, so the same
numbers can be reproduced in a notebook or a report.

Verdict logic
-------------
A claim says "treated differs from control in direction D by at least ``min_d``" where D is one of
``ALTERNATIVES``: ``'greater'`` (treated > control, d > 0), ``'less'`` (treated < control, d < 0) or
``'two-sided'`` (either direction). :func:`compare` turns the two samples into a
:class:`Comparison`, which carries two p-values:

* ``p_value``: the test of *no effect* in the claimed direction (Welch t for independent
  samples, paired t for paired samples; one-sided unless the claim is two-sided);
* ``p_min_effect``: the test that the effect *exceeds* ``min_d`` in the claimed direction
  (:func:`min_effect_test`, a noncentral-t test of H0: d <= min_d for 'greater',
  H0: d >= -min_d for 'less', H0: |d| <= min_d for 'two-sided').

Both p-values are corrected for the family of claims that is being tested together
(:func:`adjust_pvalues`; missing family members count as p = 1 via ``n_tests``). A claim with
direction 'greater' and threshold ``min_d`` is **supported** only when

  (a) the corrected ``p_value`` < alpha, and
  (b) the corrected ``p_min_effect`` < alpha.

Without correction, (b) is equivalent to the lower bound of the one-sided (1 - alpha) confidence
interval for d (the lower end of the two-sided 1 - 2*alpha interval stored in the Comparison)
clearing ``min_d``: the analytic interval and the min-effect test invert the same noncentral t
distribution. 'less' mirrors the rule (the upper bound must lie below ``-min_d``), and 'two-sided'
uses the two-sided versions of both tests. Anything else -- including NaN p-values -- is
"not supported". :func:`verdict` implements exactly this rule.

Conventions
-----------
* d is always signed treated - control (d_z, the mean difference over the SD of the differences,
  when paired; mean / SD for one sample).
* All SDs use ddof=1. Independent samples use the pooled SD (weights n - 1).
* Seeds: every resampling function takes ``seed`` and builds its own ``np.random.Generator``, so
  results are reproducible and independent of global random state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as _st

from emocheck.errors import EvidenceError

ALTERNATIVES = ("two-sided", "greater", "less")
ADJUST_METHODS = ("bonferroni", "holm", "bh", "none")
CI_METHODS = ("analytic", "bootstrap")
# Effect sizes for which Comparison.n_required reports the sample size needed for 80% power.
N_REQUIRED_EFFECTS = (0.2, 0.3, 0.5)

__all__ = [
    "ALTERNATIVES",
    "Comparison",
    "TTest",
    "adjust_pvalues",
    "auc",
    "auc_ci",
    "bootstrap_ci",
    "cohens_d",
    "cohens_d_ci",
    "compare",
    "hedges_correction",
    "k_selection_bootstrap",
    "min_effect_test",
    "power",
    "required_n",
    "ttest",
    "verdict",
]


# ----------------------------------------------------------------------------------------------
# Input helpers
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Effect sizes
# ----------------------------------------------------------------------------------------------


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
        lo, hi = _scipy_bootstrap(
            data, _d_vectorized(paired, one_sample), vectorized=True, paired=paired and not one_sample,
            confidence=confidence, n_resamples=n_resamples, seed=seed, method="BCa",
        )
        return lo * j, hi * j
    raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")


# ----------------------------------------------------------------------------------------------
# t-tests
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TTest:
    """Result of :func:`ttest`. ``kind`` is 'welch', 'paired' or 'one-sample'."""

    t: float
    df: float
    p: float
    alternative: str
    kind: str


def _t_pvalue(t: float, df: float, alternative: str) -> float:
    if alternative == "greater":
        return float(_st.t.sf(t, df))
    if alternative == "less":
        return float(_st.t.cdf(t, df))
    return float(min(1.0, 2.0 * _st.t.sf(abs(t), df)))


def ttest(x, y=None, *, paired: bool = False, alternative: str = "two-sided") -> TTest:
    """t-test of no difference (matches scipy.stats.ttest_ind(equal_var=False)/ttest_rel/ttest_1samp).

    independent: Welch's unequal-variance t with Welch-Satterthwaite df (a non-integer float);
    paired: one-sample t on x - y; one-sample (y None): H0 mean(x) = 0.
    ``alternative='greater'`` tests mean(x) > mean(y).
    """
    _check_alternative(alternative)
    x, y = _samples(x, y, paired)
    if y is None or paired:
        z = x if y is None else x - y
        n = z.size
        t = float(np.mean(z) / (np.std(z, ddof=1) / math.sqrt(n)))
        df = float(n - 1)
        kind = "one-sample" if y is None else "paired"
    else:
        n1, n2 = x.size, y.size
        v1, v2 = np.var(x, ddof=1) / n1, np.var(y, ddof=1) / n2
        t = float((np.mean(x) - np.mean(y)) / math.sqrt(v1 + v2))
        df = float((v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)))
        kind = "welch"
    return TTest(t=t, df=df, p=_t_pvalue(t, df, alternative), alternative=alternative, kind=kind)


def min_effect_test(
    x, y=None, *, paired: bool = False, min_d: float = 0.0, alternative: str = "greater"
) -> float:
    """p-value of the test that the standardized effect exceeds ``min_d`` in the claimed direction.

    The statistic is the pooled-variance t (independent), the paired t, or the one-sample t,
    t = d * scale. Under the boundary of H0 (true d = min_d) it follows a noncentral t with
    df = n1 + n2 - 2 (or n - 1) and noncentrality min_d * scale, where scale = sqrt(n) for
    paired/one-sample and sqrt(n1 n2 / (n1 + n2)) for independent samples.

    * 'greater': H0: d <= min_d, p = P(T >= t | ncp = +min_d*scale);
    * 'less':    H0: d >= -min_d, p = P(T <= t | ncp = -min_d*scale);
    * 'two-sided' (extension): H0: |d| <= min_d,
      p = P(|T| >= |t| | ncp = min_d*scale) (exact size at |d| = min_d).

    With min_d = 0 this is the ordinary one-sided (or two-sided) Student t-test: pooled variance
    for independent samples -- *not* Welch -- because only the pooled statistic has a noncentral t
    distribution indexed by d. ``min_d`` is a magnitude and must be >= 0.
    """
    _check_alternative(alternative)
    if not (min_d >= 0 and np.isfinite(min_d)):
        raise ValueError(f"min_d must be a finite magnitude >= 0, got {min_d}")
    x, y = _samples(x, y, paired)
    d, df, scale = _design(x, y, paired)
    if not np.isfinite(d):
        return float("nan")
    t_obs = d * scale
    ncp = min_d * scale
    if ncp == 0:
        # Central case: scipy's t is more accurate in the far tails than nct with nc = 0.
        return _t_pvalue(t_obs, df, alternative)
    if alternative == "greater":
        return float(_nct_sf(t_obs, df, ncp))
    if alternative == "less":
        return float(_nct_cdf(t_obs, df, -ncp))
    a = abs(t_obs)
    if a < ncp:
        # p is near 1 here: 1 - P(-a < T < a) avoids summing two tails that each carry nct's
        # absolute rounding error (which made p non-monotone in min_d).
        p = 1.0 - (_nct_cdf(a, df, ncp) - _nct_cdf(-a, df, ncp))
    else:
        p = _nct_sf(a, df, ncp) + _nct_cdf(-a, df, ncp)
    return float(min(1.0, max(0.0, p)))


# ----------------------------------------------------------------------------------------------
# Multiple comparisons
# ----------------------------------------------------------------------------------------------


def adjust_pvalues(pvalues, method: str = "holm", *, n_tests: int | None = None) -> np.ndarray:
    """Adjust p-values for multiple comparisons; returns an array the shape of ``pvalues``.

    methods: 'bonferroni' (min(1, m p)), 'holm' (step-down, FWER), 'bh' (Benjamini-Hochberg
    step-up, FDR), 'none' (unchanged copy). Reject a hypothesis when its adjusted p <= the level.

    NaN entries stay NaN and are not counted in the family size m (a claim that produced no
    p-value is not a test). Values outside [0, 1] raise ValueError.

    ``n_tests``: the size m of the whole family when only some of its members were run (e.g. a
    ``-k`` selection). The len(pvalues) - (#NaN) values present are adjusted as if the other
    n_tests - (#present) members had p = 1 -- the most conservative assumption -- so running a
    subset never makes a claim easier to pass. NaN entries therefore count as not-run members
    when ``n_tests`` is given. ``n_tests < len(pvalues)`` raises ValueError.
    """
    if method not in ADJUST_METHODS:
        raise ValueError(f"method must be one of {ADJUST_METHODS}, got {method!r}")
    p = np.asarray(pvalues, dtype=float)
    shape = p.shape
    p = p.ravel()
    if n_tests is not None:
        if int(n_tests) != n_tests or n_tests < p.size:
            raise ValueError(
                f"n_tests ({n_tests}) must be an integer >= the number of p-values ({p.size})"
            )
    ok = ~np.isnan(p)
    pv = p[ok]
    if np.any((pv < 0) | (pv > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {pv[(pv < 0) | (pv > 1)][:5]}")
    out = np.full(p.shape, np.nan)
    if method == "none" or pv.size == 0:
        out[ok] = pv
        return out.reshape(shape)
    m = pv.size if n_tests is None else int(n_tests)
    # Pad with p = 1 for the members not run; they sort last, so they only enlarge m.
    full = np.concatenate([pv, np.ones(m - pv.size)])
    if method == "bonferroni":
        adj = np.minimum(1.0, m * full)
    else:
        order = np.argsort(full, kind="mergesort")  # stable: ties keep input order
        ranked = full[order]
        i = np.arange(1, m + 1)
        if method == "holm":
            # adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))
            adj_sorted = np.maximum.accumulate(np.minimum(1.0, (m - i + 1) * ranked))
        else:  # bh
            # adj_(i) = min_{j >= i} min(1, m p_(j) / j)
            adj_sorted = np.minimum.accumulate((m * ranked / i)[::-1])[::-1]
            adj_sorted = np.minimum(1.0, adj_sorted)
        adj = np.empty(m)
        adj[order] = adj_sorted
    out[ok] = adj[: pv.size]
    return out.reshape(shape)


# ----------------------------------------------------------------------------------------------
# Power
# ----------------------------------------------------------------------------------------------


def _power_from(ncp: float, df: float, alpha: float, alternative: str) -> float:
    if alternative == "greater":
        return float(_nct_sf(_st.t.isf(alpha, df), df, ncp))
    if alternative == "less":
        return float(_nct_cdf(_st.t.ppf(alpha, df), df, ncp))
    crit = _st.t.isf(alpha / 2, df)
    # Both rejection tails count (as in G*Power and statsmodels).
    return float(_nct_sf(crit, df, ncp) + _nct_cdf(-crit, df, ncp))


def power(
    d: float,
    n: int,
    *,
    n2: int | None = None,
    paired: bool = False,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> float:
    """Power of the t-test at true effect ``d`` (signed; 'greater' needs d > 0 to have power).

    paired / one-sample: n pairs, df = n - 1, noncentrality d sqrt(n).
    independent: n and n2 per group (n2 defaults to n), pooled-variance t, df = n + n2 - 2,
    noncentrality d sqrt(n n2 / (n + n2)). Matches statsmodels TTestPower / TTestIndPower.
    """
    _check_alternative(alternative)
    _check_confidence(1 - alpha)
    if paired:
        if n2 is not None:
            raise ValueError("n2 is only meaningful for independent samples")
        if n < 2:
            raise ValueError(f"need n >= 2 pairs, got {n}")
        return _power_from(d * math.sqrt(n), n - 1, alpha, alternative)
    n2 = n if n2 is None else n2
    if n < 2 or n2 < 2:
        raise ValueError(f"need at least 2 per group, got n={n}, n2={n2}")
    return _power_from(d * math.sqrt(n * n2 / (n + n2)), n + n2 - 2, alpha, alternative)


def required_n(
    d: float,
    power: float = 0.8,
    alpha: float = 0.05,
    paired: bool = False,
    alternative: str = "two-sided",
) -> int:
    """Smallest n (pairs if paired, PER GROUP for independent equal groups) with power >= ``power``.

    Exact noncentral-t power (:func:`power`), i.e. the ceiling of statsmodels' solve_power and
    G*Power's value. ``d`` is read as a magnitude in the claimed direction (|d| is used; for
    one-sided alternatives the effect is assumed to point the claimed way).
    Reference: independent, two-sided, alpha .05, power .8 -> d .2: 394 (Cohen's 1988 table,
    built on a normal approximation, prints 393), d .5: 64, d .8: 26; paired d_z .5: 34.
    """
    _check_alternative(alternative)
    if not (0 < power < 1):
        raise ValueError(f"power must be in (0, 1), got {power}")
    d = abs(float(d))
    if not (d > 0 and np.isfinite(d)):
        raise ValueError(f"d must be a nonzero finite effect size, got {d}")
    sign = -1.0 if alternative == "less" else 1.0
    pow_fn = globals()["power"]  # the parameter 'power' shadows the function

    def achieved(n: int) -> float:
        return pow_fn(sign * d, n, paired=paired, alpha=alpha, alternative=alternative)

    # Normal-approximation start, then walk: power is increasing in n for d != 0.
    a = alpha / 2 if alternative == "two-sided" else alpha
    z = _st.norm.isf(a) + _st.norm.ppf(power)
    guess = (z / d) ** 2 * (1 if paired else 2)
    n = max(2, int(math.floor(guess)) - 2)
    while n > 2 and achieved(n) >= power:
        n -= 1
    limit = 10**8
    while achieved(n) < power:
        n += 1 if n < 10_000 else max(1, n // 1000)
        if n > limit:  # pragma: no cover
            raise ValueError(f"required n exceeds {limit} for d={d}")
    # The coarse steps above 10_000 may overshoot; step back to the smallest n.
    while n > 2 and achieved(n - 1) >= power:
        n -= 1
    return int(n)


# ----------------------------------------------------------------------------------------------
# AUC and bootstrap
# ----------------------------------------------------------------------------------------------


def auc(pos, neg) -> float:
    """AUC = P(pos > neg) + 0.5 P(pos == neg), from the Mann-Whitney U with mid-ranks.

    Equals sklearn.metrics.roc_auc_score on labels (1 for pos, 0 for neg) without building the
    n_pos x n_neg comparison matrix.
    """
    pos = _as_1d(pos, "pos")
    neg = _as_1d(neg, "neg")
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auc needs at least one positive and one negative value")
    ranks = _st.rankdata(np.concatenate([pos, neg]))  # average ranks handle ties as 1/2
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def _auc_vectorized(pos, neg, axis=-1):
    """AUC along ``axis`` for scipy.stats.bootstrap (vectorized=True)."""
    pos = np.moveaxis(pos, axis, -1)
    neg = np.moveaxis(neg, axis, -1)
    n1, n2 = pos.shape[-1], neg.shape[-1]
    ranks = _st.rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)
    return (ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n2)


def _scipy_bootstrap(data, statistic, *, vectorized, paired, confidence, n_resamples, seed, method):
    """scipy.stats.bootstrap with a seeded Generator; returns (low, high) floats.

    scipy >= 1.15 calls the seed argument ``rng``; older versions ``random_state``.
    """
    _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    kwargs = dict(
        paired=paired, vectorized=vectorized, confidence_level=confidence,
        n_resamples=n_resamples, method=method,
    )
    try:
        res = _st.bootstrap(data, statistic, rng=rng, **kwargs)
    except TypeError:  # pragma: no cover - scipy < 1.15
        res = _st.bootstrap(data, statistic, random_state=rng, **kwargs)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def auc_ci(
    pos, neg, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
    *, method: str = "percentile",
) -> tuple[float, float]:
    """Stratified bootstrap CI for :func:`auc`: pos and neg are resampled separately.

    scipy.stats.bootstrap resamples each of several independent samples on its own, which is
    exactly the stratified scheme (class sizes are kept fixed). The percentile method is the
    default because AUC often sits at 0 or 1, where BCa's acceleration is undefined.
    """
    pos = _as_1d(pos, "pos")
    neg = _as_1d(neg, "neg")
    if pos.size < 2 or neg.size < 2:
        raise ValueError("auc_ci needs at least 2 positive and 2 negative values")
    return _scipy_bootstrap(
        (pos, neg), _auc_vectorized, vectorized=True, paired=False, confidence=confidence,
        n_resamples=n_resamples, seed=seed, method=method,
    )


def bootstrap_ci(
    statistic: Callable,
    *samples,
    paired: bool = False,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: str = "BCa",
) -> tuple[float, float]:
    """Thin wrapper around scipy.stats.bootstrap with ``np.random.default_rng(seed)``.

    ``statistic(*samples) -> float`` is called once per resample (vectorized=False), so any
    Python function works. ``paired=True`` resamples the same indices in every sample.
    Degenerate bootstrap distributions give NaN bounds (scipy warns).
    """
    if not samples:
        raise ValueError("bootstrap_ci needs at least one sample")
    data = tuple(_as_1d(s, f"samples[{i}]") for i, s in enumerate(samples))
    return _scipy_bootstrap(
        data, statistic, vectorized=False, paired=paired, confidence=confidence,
        n_resamples=n_resamples, seed=seed, method=method,
    )


# ----------------------------------------------------------------------------------------------
# Comparison: everything a claim needs, in one record
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """All numbers behind one claim (treated vs control). Build it with :func:`compare`.

    ``d_ci_low``/``d_ci_high``: two-sided interval at 1 - 2*alpha for one-sided alternatives (so
    the relevant end is the one-sided 1 - alpha bound) and 1 - alpha for two-sided claims.
    ``n_required`` maps effect sizes (0.2, 0.3, 0.5) to the n (pairs, or per group) for 80% power.
    """

    n_treated: int
    n_control: int
    paired: bool
    alternative: str
    min_d: float
    alpha: float
    mean_treated: float
    mean_control: float
    mean_difference: float
    d: float
    hedges_g: float
    d_ci_low: float
    d_ci_high: float
    ci_method: str
    t: float
    df: float
    p_value: float
    p_min_effect: float
    power: float
    n_required: dict = field(default_factory=dict)

    @property
    def ci_confidence(self) -> float:
        """Confidence level of (d_ci_low, d_ci_high)."""
        return _ci_confidence(self.alpha, self.alternative)

    def to_dict(self) -> dict:
        """Plain builtins only (float/int/str/bool, str-keyed dicts): JSON- and xdist-safe."""
        out = {}
        for key, value in asdict(self).items():
            if key == "n_required":
                out[key] = {str(k): int(v) for k, v in value.items()}
            elif isinstance(value, (bool, np.bool_)):
                out[key] = bool(value)
            elif isinstance(value, (int, np.integer)):
                out[key] = int(value)
            elif isinstance(value, (float, np.floating)):
                out[key] = float(value)
            else:
                out[key] = str(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        """Inverse of :meth:`to_dict` (e.g. on the xdist controller)."""
        data = dict(data)
        data["n_required"] = {float(k): int(v) for k, v in data.get("n_required", {}).items()}
        return cls(**data)


def _ci_confidence(alpha: float, alternative: str) -> float:
    return 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha


def _evidence(values, name: str) -> np.ndarray:
    try:
        arr = _as_1d(values, name)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"{name}: values must be a 1-D sequence of numbers ({exc})") from None
    if arr.size < 3:
        raise EvidenceError(f"{name} has {arr.size} value(s); at least 3 are needed for a test")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.flatnonzero(bad)[:5].tolist()
        raise EvidenceError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN/inf) at positions {idx}"
        )
    return arr


def compare(
    treated,
    control,
    *,
    paired: bool = False,
    alternative: str = "greater",
    min_d: float = 0.0,
    alpha: float = 0.05,
    ci_method: str = "analytic",
    n_resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare treated against control and return every number the verdict needs.

    * d: Cohen's d (pooled SD; d_z when paired), treated - control; hedges_g: d * J(df).
    * d CI: :func:`cohens_d_ci` at 1 - 2*alpha (one-sided claims; its lower/upper end is the
      one-sided 1 - alpha bound) or 1 - alpha (two-sided claims).
    * t, df, p_value: Welch t (independent) or paired t, in the claimed direction.
    * p_min_effect: :func:`min_effect_test` with ``min_d`` (pooled/paired noncentral t).
    * power: post-hoc power at |d| pointed in the claimed direction, at this n and alpha.
    * n_required: :func:`required_n` at power 0.8 for d = 0.2, 0.3, 0.5.

    Raises ValueError for bad settings (alternative, alpha, min_d, ci_method, paired lengths)
    and EvidenceError when a sample has < 3 values or non-finite values, or when there is no
    variance to standardise by (both samples constant; constant differences when paired).
    """
    _check_alternative(alternative)
    if not 0 < alpha < (0.5 if alternative != "two-sided" else 1):
        raise ValueError(f"alpha must be in (0, 0.5) for one-sided claims / (0, 1) two-sided, got {alpha}")
    if not (np.isfinite(min_d) and min_d >= 0):
        raise ValueError(f"min_d must be a finite magnitude >= 0, got {min_d}")
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}")
    tr = _evidence(treated, "treated")
    co = _evidence(control, "control")
    if paired and tr.size != co.size:
        raise ValueError(
            f"paired comparison needs equal lengths: treated has {tr.size} values, control has {co.size}"
        )
    if paired:
        if np.ptp(tr - co) == 0:
            raise EvidenceError(
                "treated - control differences are all identical (zero variance); d_z is undefined"
            )
    elif np.ptp(tr) == 0 and np.ptp(co) == 0:
        raise EvidenceError("treated and control both have zero variance; d is undefined")

    d = cohens_d(tr, co, paired=paired)
    _, df_pooled, _ = _design(tr, co, paired)
    ci_conf = _ci_confidence(alpha, alternative)
    lo, hi = cohens_d_ci(
        tr, co, paired=paired, confidence=ci_conf, method=ci_method,
        n_resamples=n_resamples, seed=seed,
    )
    tt = ttest(tr, co, paired=paired, alternative=alternative)
    p_min = min_effect_test(tr, co, paired=paired, min_d=min_d, alternative=alternative)
    signed = -abs(d) if alternative == "less" else abs(d)
    n_power = dict(n=tr.size, paired=paired, alpha=alpha, alternative=alternative)
    if not paired:
        n_power["n2"] = co.size
    post_hoc = power(signed, **n_power)
    n_req = {
        eff: required_n(eff, power=0.8, alpha=alpha, paired=paired, alternative=alternative)
        for eff in N_REQUIRED_EFFECTS
    }
    mt, mc = float(np.mean(tr)), float(np.mean(co))
    return Comparison(
        n_treated=int(tr.size),
        n_control=int(co.size),
        paired=bool(paired),
        alternative=alternative,
        min_d=float(min_d),
        alpha=float(alpha),
        mean_treated=mt,
        mean_control=mc,
        mean_difference=float(np.mean(tr - co)) if paired else mt - mc,
        d=float(d),
        hedges_g=float(d * hedges_correction(df_pooled)),
        d_ci_low=float(lo),
        d_ci_high=float(hi),
        ci_method=ci_method,
        t=tt.t,
        df=tt.df,
        p_value=tt.p,
        p_min_effect=float(p_min),
        power=float(post_hoc),
        n_required=n_req,
    )


def verdict(comparison: Comparison, p_value_adjusted: float, p_min_effect_adjusted: float) -> str:
    """'supported' iff both corrected p-values are < comparison.alpha, else 'not supported'.

    The p-values are already directional (see the module docstring): for 'greater' they test
    d > 0 and d > min_d, for 'less' d < 0 and d < -min_d, for 'two-sided' d != 0 and |d| > min_d.
    NaN p-values never support a claim.
    """
    alpha = comparison.alpha
    p1, p2 = float(p_value_adjusted), float(p_min_effect_adjusted)
    # NaN comparisons are False, so a missing p-value fails the rule.
    return "supported" if (p1 < alpha and p2 < alpha) else "not supported"


# ----------------------------------------------------------------------------------------------
# Choosing the subspace dimension k
# ----------------------------------------------------------------------------------------------


def k_selection_bootstrap(
    overlaps: np.ndarray, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """How sure are we about the best subspace dimension k?

    ``overlaps``: (n_units, k_max) array, overlaps[u, k-1] = overlap of unit u at dimension k.
    Units (rows) are resampled with replacement, keeping each unit's whole k-profile together
    (units are the independent observations; k values within a unit are correlated).

    Returns a DataFrame with one row per k = 1..k_max and columns
      k, mean (observed mean over units), ci_low, ci_high (percentile bootstrap, ``confidence``),
      p_best (fraction of resamples in which this k has the highest mean; ties go to the
      smallest k, the more parsimonious choice), best (True for the argmax of ``mean``,
      smallest k on ties).
    """
    _check_confidence(confidence)
    arr = np.asarray(overlaps, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"overlaps must be a 2-D (n_units, k_max) array, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise EvidenceError(f"k selection needs at least 2 units, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise EvidenceError("overlaps contains non-finite values (NaN/inf)")
    n_units, k_max = arr.shape
    rng = np.random.default_rng(seed)
    # Chunk the resamples so memory stays O(chunk * n_units * k_max) for large inputs.
    means = np.empty((n_resamples, k_max))
    chunk = max(1, min(n_resamples, 2_000_000 // max(1, n_units * k_max)))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n_units, size=(stop - start, n_units))
        means[start:stop] = arr[idx].mean(axis=1)
    a = (1.0 - confidence) / 2
    low, high = np.quantile(means, [a, 1 - a], axis=0)
    wins = np.bincount(np.argmax(means, axis=1), minlength=k_max) / n_resamples
    observed = arr.mean(axis=0)
    best = np.zeros(k_max, dtype=bool)
    best[int(np.argmax(observed))] = True
    return pd.DataFrame(
        {
            "k": np.arange(1, k_max + 1),
            "mean": observed,
            "ci_low": low,
            "ci_high": high,
            "p_best": wins,
            "best": best,
        }
    )
