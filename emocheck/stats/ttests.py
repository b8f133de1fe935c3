"""t-tests of no difference (Welch / paired / one-sample) and the noncentral-t min-effect test."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from emocheck.stats._common import _check_alternative, _design, _nct_cdf, _nct_sf, _samples




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
    return nct_min_effect_p(d * scale, df, min_d * scale, alternative)


def nct_min_effect_p(t_obs: float, df: float, ncp: float, alternative: str) -> float:
    """Min-effect p-value of an observed t under a noncentral t(df, ncp) boundary (ncp >= 0 magnitude).

    'greater': P(T >= t | +ncp); 'less': P(T <= t | -ncp); 'two-sided': P(|T| >= |t| | ncp).
    ncp = 0 is the central t-test. Shared by :func:`min_effect_test` and the direction-level test.
    """
    if not np.isfinite(t_obs):
        return float("nan")
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


def min_effect_test_bonett(x, y, *, min_d: float = 0.0, alternative: str = "greater") -> float:
    """Welch-consistent min-effect test for independent groups of unequal size or variance.

    z = (d - min_d) / SE with Bonett's d and SE (:func:`emocheck.stats.effect_sizes.bonett_d`):
    'greater' H0 d <= min_d; 'less' H0 d >= -min_d; 'two-sided' H0 |d| <= min_d with
    p = min(1, 2 P(Z >= (|d| - min_d) / SE)), so p < alpha exactly when the matching
    :func:`~emocheck.stats.effect_sizes.bonett_ci` bound clears min_d. Its size at the boundary
    is checked by simulation (tests/test_calibration.py) for SD ratios 1.5 and 1/1.5 at n 63 vs 126.
    """
    from scipy.stats import norm

    from emocheck.stats.effect_sizes import bonett_d

    _check_alternative(alternative)
    if not (min_d >= 0 and np.isfinite(min_d)):
        raise ValueError(f"min_d must be a finite magnitude >= 0, got {min_d}")
    d, se = bonett_d(x, y)
    if not (np.isfinite(d) and se > 0):
        return float("nan")
    if alternative == "greater":
        return float(norm.sf((d - min_d) / se))
    if alternative == "less":
        return float(norm.cdf((d + min_d) / se))
    return float(min(1.0, 2 * norm.sf((abs(d) - min_d) / se)))


# ----------------------------------------------------------------------------------------------
# Refutation: the effect is shown SMALLER than min_d (non-superiority / TOST equivalence)
# ----------------------------------------------------------------------------------------------


def nct_refute_p(t_obs: float, df: float, ncp: float, alternative: str) -> float:
    """p-value of the test that the effect is smaller than ``min_d`` in the claimed direction, for an
    observed t that follows a noncentral t(df, d * scale) with ``ncp`` = min_d * scale >= 0.

    * 'greater': H0: d >= min_d against d < min_d, p = P(T <= t | +ncp) (non-superiority);
    * 'less':    H0: d <= -min_d against d > -min_d, p = P(T >= t | -ncp);
    * 'two-sided': H0: |d| >= min_d against |d| < min_d, two one-sided tests (Schuirmann 1987):
      p = max(P(T <= t | +ncp), P(T >= t | -ncp)). Each side is tested at the full level (the
      equivalence region is an intersection), so the rule is "the two-sided 1 - 2 alpha interval
      lies inside (-min_d, min_d)"; with min_d = 0 it can never reject (p >= 0.5).

    It mirrors :func:`nct_min_effect_p` (the two p-values of a one-sided claim sum to 1), so a claim can
    never be both supported and refuted. ``df = inf`` gives the normal (z) version.
    """
    if not np.isfinite(t_obs):
        return float("nan")
    if math.isinf(df):
        lower = float(_st.norm.cdf(t_obs - ncp))
        upper = float(_st.norm.sf(t_obs + ncp))
    elif ncp == 0:
        lower = float(_st.t.cdf(t_obs, df))
        upper = float(_st.t.sf(t_obs, df))
    else:
        lower = float(_nct_cdf(t_obs, df, ncp))
        upper = float(_nct_sf(t_obs, df, -ncp))
    if alternative == "greater":
        p = lower
    elif alternative == "less":
        p = upper
    else:
        p = max(lower, upper)
    return float(min(1.0, max(0.0, p)))


def refute_test(x, y=None, *, paired: bool = False, min_d: float = 0.0, alternative: str = "greater") -> float:
    """p-value of the test that the standardized effect is smaller than ``min_d`` in the claimed direction
    (:func:`nct_refute_p` on the statistic of :func:`min_effect_test`: pooled / paired / one-sample t)."""
    _check_alternative(alternative)
    if not (min_d >= 0 and np.isfinite(min_d)):
        raise ValueError(f"min_d must be a finite magnitude >= 0, got {min_d}")
    x, y = _samples(x, y, paired)
    d, df, scale = _design(x, y, paired)
    if not np.isfinite(d):
        return float("nan")
    return nct_refute_p(d * scale, df, min_d * scale, alternative)


def refute_test_bonett(x, y, *, min_d: float = 0.0, alternative: str = "greater") -> float:
    """Welch-consistent version of :func:`refute_test` for independent groups of unequal size:
    z = (d -/+ min_d) / SE with Bonett's d and SE, the mirror of :func:`min_effect_test_bonett`."""
    from emocheck.stats.effect_sizes import bonett_d

    _check_alternative(alternative)
    if not (min_d >= 0 and np.isfinite(min_d)):
        raise ValueError(f"min_d must be a finite magnitude >= 0, got {min_d}")
    d, se = bonett_d(x, y)
    if not (np.isfinite(d) and se > 0):
        return float("nan")
    return nct_refute_p(d / se, math.inf, min_d / se, alternative)
