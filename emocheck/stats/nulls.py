"""An observed statistic against a null distribution of K draws (label-permuted subspaces, random
head sets, random circuits).

``compare_to_null(observed=x, null=[z_1..z_K])``:

* ``p_value``: the Monte-Carlo p-value in the claimed direction, (1 + #{z_j >= x}) / (K + 1) for
  'greater', (1 + #{z_j <= x}) / (K + 1) for 'less', and twice the smaller of the two (capped at 1)
  for 'two-sided'. It is exact (size <= alpha) whenever x and the draws are exchangeable under H0,
  and it cannot go below 1 / (K + 1): with alpha = 0.05 and a family of m claims corrected by
  Holm/Bonferroni, K must be at least m / alpha - 1 for any claim to be supportable.
* ``d`` = (x - mean(z)) / sd(z) (ddof = 1): how many null SDs the observation lies above the null mean.
* ``min_d``: "x exceeds the null mean by at least min_d null SDs". ``p_min_effect`` is the
  Monte-Carlo p-value of x against the null shifted by min_d SDs, (1 + #{z_j + min_d s >= x}) /
  (K + 1) for 'greater' (mirrored for 'less'; two-sided: twice the smaller shifted tail). Under the
  boundary of H0 (x distributed as the null shifted by min_d SDs) its size is alpha up to the
  estimation of s (checked by simulation in tests/test_calibration.py).
* ``p_refute``: the test that the shift is SMALLER than min_d null SDs (H0: x is at least as far as the
  null shifted by min_d SDs), the other tail of the same shifted Monte-Carlo test: (1 + #{z_j + min_d s
  <= x}) / (K + 1) for 'greater' (mirrored for 'less'; two-sided: the larger of the two inner tails, two
  one-sided tests). It is exact at the boundary up to the estimation of s, and it cannot go below
  1 / (K + 1). A single observation is one draw, so even with K -> infinity it refutes a true shift of
  0 only with probability Phi(min_d - z_level) (normal null): a null-distribution claim is refuted
  only when min_d is large against the level (see docs/statistics.md).
* ``d_ci_low``/``d_ci_high``: the d values that the shifted test does not reject, at 1 - 2 alpha
  (one-sided claims) or 1 - alpha (two-sided), so "the interval's bound clears min_d" and
  "p_min_effect < alpha" agree before correction. They are +-inf when K is too small for that level.
* A tie: when every null draw equals the observation (zero spread), p = p_min_effect = 1, d = 0 and
  the interval is (-inf, inf), ``extra['null_tie']`` is True: the observation does not exceed its
  null, so the claim is not supported (and not refuted: p_refute = 1, the null has no scale): inconclusive.
  A constant null that the observation differs from is an error.
* ``extra['p_parametric']``: the normal-theory prediction test (x - mean) / (s sqrt(1 + 1/K)) ~
  t(K - 1), a sensitivity column for when K is small (it is not what decides).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

from emocheck.errors import EvidenceError

__all__ = ["compare_to_null", "mc_pvalue", "mc_refute_pvalue", "null_draws_for", "unsupportable_reason",
           "NULL_DRAW_MARGIN"]

#: K + 1 >= NULL_DRAW_MARGIN * m / alpha: an observation beyond every draw (p = 1 / (K + 1)) is then
#: supported after Holm over m claims with half of alpha to spare (m p = alpha / 2), instead of the
#: bare m / (K + 1) < alpha under which the floor itself is all the room there is.
NULL_DRAW_MARGIN = 2.0


def null_draws_for(family_size: int, alpha: float = 0.05, margin: float = NULL_DRAW_MARGIN) -> int:
    """The number K of null draws a family of ``family_size`` claims needs: K + 1 >= ceil(margin m / alpha)."""
    m = max(1, int(family_size))
    return max(1, math.ceil(round(margin * m / alpha, 9)) - 1)


def unsupportable_reason(family_size: int, draws: int, alpha: float) -> str | None:
    """Why a family of m claims judged against K null draws can never be supported, or None.

    The Monte-Carlo p cannot go below 1 / (K + 1); Holm (and Bonferroni) multiply the smallest p of
    the family by m, so when m / (K + 1) >= alpha no claim of the family can be supported whatever
    the data: the run would read as evidence against claims it could never have supported."""
    m, k = int(family_size), int(draws)
    if m < 1 or m / (k + 1) < alpha:
        return None
    return (f"{m} claim(s) judged against {k} null draws: the smallest Monte-Carlo p is 1/{k + 1} and the "
            f"correction over {m} claims makes it {m / (k + 1):.3g} >= alpha {alpha:g}, so no claim of the family "
            f"can ever be supported; draw at least {null_draws_for(m, alpha)} null draws "
            f"(K + 1 >= {NULL_DRAW_MARGIN:g} m / alpha) or judge fewer claims together")


def mc_pvalue(observed: float, null: np.ndarray, alternative: str, shift: float = 0.0) -> float:
    """Monte-Carlo p-value of ``observed`` against ``null + shift`` ('greater'), ``null - shift``
    ('less'), or twice the smaller of those two tails ('two-sided'); ``shift`` >= 0 is in data units."""
    k = null.size
    upper = (1 + int(np.sum(null + shift >= observed))) / (k + 1)
    lower = (1 + int(np.sum(null - shift <= observed))) / (k + 1)
    if alternative == "greater":
        return float(upper)
    if alternative == "less":
        return float(lower)
    return float(min(1.0, 2 * min(upper, lower)))


def mc_refute_pvalue(observed: float, null: np.ndarray, alternative: str, shift: float) -> float:
    """Monte-Carlo p-value of "the observation lies closer than ``shift`` (>= 0, data units) to the null":
    'greater': (1 + #{null + shift <= x}) / (K + 1); 'less': (1 + #{null - shift >= x}) / (K + 1);
    'two-sided': the larger of the two (two one-sided tests)."""
    k = null.size
    below = (1 + int(np.sum(null + shift <= observed))) / (k + 1)
    above = (1 + int(np.sum(null - shift >= observed))) / (k + 1)
    if alternative == "greater":
        return float(below)
    if alternative == "less":
        return float(above)
    return float(max(below, above))


def _rank_bounds(x: float, null: np.ndarray, s: float, confidence: float) -> tuple[float, float]:
    """d interval from inverting the shifted Monte-Carlo test (see the module docstring)."""
    k = null.size
    a = (1.0 - confidence) / 2
    # Largest number c of null draws at least as extreme with (1 + c) / (K + 1) < a.
    c_max = math.ceil(a * (k + 1) - 1) - 1
    if c_max < 0:
        return float("-inf"), float("inf")
    desc = np.sort(null)[::-1]
    asc = np.sort(null)
    return float((x - desc[c_max]) / s), float((x - asc[c_max]) / s)


def compare_to_null(
    observed: float,
    null,
    *,
    alternative: str = "greater",
    min_d: float = 0.0,
    alpha: float = 0.05,
):
    """Judge one observed statistic against K >= 2 null draws (see the module docstring).

    Returns a :class:`emocheck.stats.comparison.Comparison` with ``kind='vs_null'``: ``n_treated`` = 1,
    ``n_control`` = K, ``t`` = d, ``df`` = K - 1, and ``extra`` with the null mean / SD, the rank of
    the observation, the smallest attainable p and the parametric p.
    """
    from emocheck.stats.comparison import Comparison, check_settings

    check_settings(alternative, alpha, min_d)
    try:
        x = float(np.asarray(observed, dtype=float).reshape(()))
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"null comparison: observed must be one number ({exc})") from None
    try:
        z = np.asarray(null, dtype=float)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"null comparison: null must be a sequence of numbers ({exc})") from None
    if z.ndim != 1:
        raise EvidenceError(f"null comparison: null must be 1-D (one value per draw), got shape {z.shape}")
    if not math.isfinite(x):
        raise EvidenceError(f"null comparison: observed is {x}; it must be a finite number")
    if not np.all(np.isfinite(z)):
        raise EvidenceError(f"null comparison: null contains {int((~np.isfinite(z)).sum())} non-finite draw(s)")
    k = z.size
    if k < 2:
        raise EvidenceError(f"null comparison: {k} null draw(s); at least 2 are needed (use many, e.g. >= 99)")
    m = float(z.mean())
    s = float(z.std(ddof=1))
    tie = not s > 0
    if tie and not np.all(z == x):
        raise EvidenceError(
            f"null comparison: the null draws are all identical ({m:g}, zero SD) but the observed value {x:g} "
            "differs from them, so it cannot be one of its own null's draws; check how the null is drawn")
    if tie:
        # A degenerate null that the observation equals (e.g. two scorers that both separate the groups
        # perfectly: every paired swap leaves the AUC difference at 0) is a tie. The Monte-Carlo p is
        # still exact and equals 1 in every direction (all K draws are at least as extreme), so the
        # claim is not supported (inconclusive): the observation does not exceed its null. d is 0 (no distance from
        # the null) and its interval is unbounded (the null has no scale to measure d in).
        d, lo, hi = 0.0, float("-inf"), float("inf")
        p_value = mc_pvalue(x, z, alternative)
        p_min = mc_pvalue(x, z, alternative, shift=0.0)
        p_refute = 1.0   # no scale to measure "closer than min_d SDs" in
    else:
        d = (x - m) / s
        p_value = mc_pvalue(x, z, alternative)
        p_min = mc_pvalue(x, z, alternative, shift=min_d * s)
        p_refute = mc_refute_pvalue(x, z, alternative, shift=min_d * s)
        conf = 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha
        lo, hi = _rank_bounds(x, z, s, conf)
    t_pred = 0.0 if tie else (x - m) / (s * math.sqrt(1 + 1 / k))
    if alternative == "greater":
        p_par = float(_st.t.sf(t_pred, k - 1))
        rank = 1 + int(np.sum(z >= x))
    elif alternative == "less":
        p_par = float(_st.t.cdf(t_pred, k - 1))
        rank = 1 + int(np.sum(z <= x))
    else:
        p_par = float(min(1.0, 2 * _st.t.sf(abs(t_pred), k - 1)))
        rank = 1 + int(np.sum(z >= x)) if x >= m else 1 + int(np.sum(z <= x))
    if tie:
        p_par = 1.0
    extra = {
        "n_null": int(k),
        "null_mean": m,
        "null_sd": s,
        "null_rank": int(rank),
        "p_smallest_possible": 1.0 / (k + 1),
        "p_parametric": p_par,
        "null_tie": bool(tie),
    }
    return Comparison(
        n_treated=1, n_control=int(k), paired=False, alternative=alternative, min_d=float(min_d),
        alpha=float(alpha), mean_treated=x, mean_control=m, mean_difference=x - m, d=float(d),
        hedges_g=float("nan"), d_ci_low=lo, d_ci_high=hi, ci_method="null-rank", t=float(d),
        df=float(k - 1), p_value=p_value, p_min_effect=p_min, p_refute=p_refute, kind="vs_null", extra=extra,
    )
