"""Power and sample size of the t-tests."""
from __future__ import annotations

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

