"""Power and sample size of the t-tests."""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats as _st

from emocheck.stats._common import _check_alternative, _check_confidence, _nct_cdf, _nct_sf




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
# Planning for the rule that decides: the min-effect test at the family-corrected level
# ----------------------------------------------------------------------------------------------


def _rule_design(n: int, n2: int | None, paired: bool) -> tuple[float, float]:
    """(df, scale) of the noncentral t behind the rule: paired d_z or pooled independent d."""
    if paired:
        if n < 2:
            raise ValueError(f"need n >= 2 pairs, got {n}")
        return n - 1.0, math.sqrt(n)
    n2 = n if n2 is None else n2
    if n < 2 or n2 < 2:
        raise ValueError(f"need at least 2 per group, got n={n}, n2={n2}")
    return n + n2 - 2.0, math.sqrt(n * n2 / (n + n2))


def power_from_ratio(d: float, df: float, ratio: float, *, min_d: float = 0.0, alpha: float = 0.05,
                     alternative: str = "greater") -> float:
    """Power of the min-effect test whose t statistic is nct(df, d * ratio): the general form
    behind :func:`power_min_effect` (ratio = sqrt(n) paired) and the direction-level test
    (ratio = sigma_1 / SE). ``d`` is the true effect measured in the claimed direction (positive
    = the way the claim says, for 'less' too; a magnitude for 'two-sided'); ``min_d`` >= 0 the
    claim's threshold."""
    _check_alternative(alternative)
    _check_confidence(1 - alpha)
    # One-sided 'less' mirrors 'greater' (T -> -T), so d is read as a magnitude in the claimed direction.
    d = float(d)
    ncp0 = min_d * ratio
    if alternative == "two-sided":
        d = abs(d)
        # Reject when |T| exceeds c with P(|T| >= c | ncp0) = alpha.
        if ncp0 == 0:
            crit = _st.t.isf(alpha / 2, df)
        else:
            from scipy import optimize

            def size(c):
                return _nct_sf(c, df, ncp0) + _nct_cdf(-c, df, ncp0) - alpha

            crit = optimize.brentq(size, 0.0, ncp0 + 50.0 + 10 * _st.t.isf(alpha / 2, df))
        return float(_nct_sf(crit, df, d * ratio) + _nct_cdf(-crit, df, d * ratio))
    crit = _st.t.isf(alpha, df) if ncp0 == 0 else float(_st.nct.isf(alpha, df, ncp0))
    return float(_nct_sf(crit, df, d * ratio))


def power_min_effect(d: float, n: int, *, min_d: float = 0.0, n2: int | None = None, paired: bool = False,
                     alpha: float = 0.05, alternative: str = "greater") -> float:
    """Power of the verdict rule's binding test, H0: d <= min_d (noncentral t), at true effect d.

    Pass the family-corrected level as ``alpha`` (alpha / m: Bonferroni, and Holm's first step,
    the conservative planning level). With min_d = 0 this is :func:`power`. Independent samples:
    pooled noncentral t (equal variances; the Welch-consistent test of unequal groups has about
    the same power when the variances are equal).
    """
    df, scale = _rule_design(n, n2, paired)
    return power_from_ratio(d, df, scale, min_d=min_d, alpha=alpha, alternative=alternative)


@functools.lru_cache(maxsize=4096)
def required_n_min_effect(d: float, *, min_d: float = 0.0, power: float = 0.8, alpha: float = 0.05,
                          paired: bool = False, alternative: str = "greater") -> int | None:
    """Smallest n (pairs, or per group for equal independent groups) for which the rule's test at
    level ``alpha`` (pass alpha / m) has power >= ``power`` at true effect ``d`` (> min_d).
    None when d <= min_d (no n suffices). Exponential search then bisection on n."""
    if not (0 < power < 1):
        raise ValueError(f"power must be in (0, 1), got {power}")
    d = abs(float(d))
    if d <= min_d:
        return None

    def ok(n):
        return power_min_effect(d, n, min_d=min_d, paired=paired, alpha=alpha, alternative=alternative) >= power

    lo, hi = 2, 4
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > 10**9:  # pragma: no cover
            raise ValueError(f"required n exceeds 10^9 for d={d}, min_d={min_d}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return int(hi if not ok(lo) else lo)


@functools.lru_cache(maxsize=4096)
def detectable_d(df: float, ratio: float, *, min_d: float = 0.0, power: float = 0.8, alpha: float = 0.05,
                 alternative: str = "greater") -> float:
    """Smallest true d (magnitude, claimed direction) with ``power`` under the rule's test whose t is
    nct(df, d * ratio) at level ``alpha``: the minimum detectable effect of this design."""
    from scipy import optimize

    def gap(d):
        return power_from_ratio(d, df, ratio, min_d=min_d, alpha=alpha, alternative=alternative) - power

    lo = min_d
    hi = min_d + 1.0
    while gap(hi) < 0:
        hi += 2 * (hi - lo)
        if hi > 1e6:  # pragma: no cover
            return float("inf")
    return float(optimize.brentq(gap, lo, hi, xtol=1e-6))


# ----------------------------------------------------------------------------------------------
# Planning for the refutation: the effect is shown smaller than min_d
# ----------------------------------------------------------------------------------------------


def power_refute(d: float, df: float, ratio: float, *, min_d: float = 0.0, alpha: float = 0.05,
                 alternative: str = "greater") -> float:
    """Power of the refutation test (:func:`emocheck.stats.ttests.nct_refute_p`) whose t statistic is
    nct(df, d * ratio), at level ``alpha`` (pass the family level alpha / m), at true effect ``d``
    measured in the claimed direction (a magnitude for 'two-sided'). ``df = inf``: normal z.

    One-sided: reject when T <= c with P(T <= c | min_d * ratio) = alpha. Two-sided (two one-sided
    tests): reject when |T| < c with the same c, which needs c > 0; otherwise the power is 0 (no n
    this small can show |d| < min_d at this level).
    """
    _check_alternative(alternative)
    _check_confidence(1 - alpha)
    ncp0 = min_d * ratio
    d = abs(float(d)) if alternative == "two-sided" else float(d)
    if math.isinf(df):
        crit = ncp0 + _st.norm.ppf(alpha)
        if alternative != "two-sided":
            return float(_st.norm.cdf(crit - d * ratio))
        return float(max(0.0, _st.norm.cdf(crit - d * ratio) - _st.norm.cdf(-crit - d * ratio)))
    crit = float(_st.t.ppf(alpha, df)) if ncp0 == 0 else float(_nct_ppf(alpha, df, ncp0))
    if alternative != "two-sided":
        return float(_nct_cdf(crit, df, d * ratio))
    if crit <= 0:
        return 0.0
    return float(max(0.0, _nct_cdf(crit, df, d * ratio) - _nct_cdf(-crit, df, d * ratio)))


def _nct_ppf(q: float, df: float, ncp: float) -> float:
    """The q quantile of nct(df, ncp): scipy's, or root finding on the stable lower tail (_nct_cdf) where
    scipy's is not finite."""
    from scipy import optimize

    fast = float(_st.nct.ppf(q, df, ncp))
    if math.isfinite(fast):
        return fast

    lo, hi = ncp - 10.0, ncp
    while _nct_cdf(lo, df, ncp) > q:
        lo -= 2 * (hi - lo)
    while _nct_cdf(hi, df, ncp) < q:
        hi += 2 * (hi - lo)
    return float(optimize.brentq(lambda t: _nct_cdf(t, df, ncp) - q, lo, hi, xtol=1e-10))


def smallest_n(ok, start: int = 2, limit: int = 10**7) -> int | None:
    """The smallest integer n >= ``start`` with ``ok(n)`` for a predicate that is monotone in n
    (exponential search, then bisection); None when even ``limit`` does not satisfy it."""
    if ok(start):
        return start
    lo, hi = start, start * 2
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return int(hi)


def required_n_refute(d: float, *, min_d: float, power: float = 0.8, alpha: float = 0.05,
                      paired: bool = False, alternative: str = "greater") -> int | None:
    """Smallest n (pairs, or per group for equal independent groups) with which the refutation test at
    level ``alpha`` (pass alpha / m) has ``power`` at true effect ``d`` in the claimed direction (d < min_d;
    a magnitude |d| < min_d for 'two-sided'). None when no n suffices (d >= min_d in the claimed direction)."""
    if not (0 < power < 1):
        raise ValueError(f"power must be in (0, 1), got {power}")
    dd = abs(float(d)) if alternative == "two-sided" else float(d)
    if not dd < min_d:
        return None

    def ok(n):
        df, scale = _rule_design(n, None, paired)
        return power_refute(dd, df, scale, min_d=min_d, alpha=alpha, alternative=alternative) >= power

    return smallest_n(ok)
