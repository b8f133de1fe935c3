"""What a claim's verdict rests on, after correction: planning power for the rule that decides, the
multiplicity-adjusted bound, and why a claim is not supported.

Plain functions on the ``Comparison.to_dict()`` of a claim (the report calls them on the
controller, where the family size is known).

* Planning (:func:`plan`): the rule is the min-effect test (H0: d <= min_d, noncentral t) at the
  family-corrected level. The conservative planning level is alpha / m (Bonferroni, and Holm's
  first step; m = declared family size). ``detectable_d_80`` is the smallest true d that this
  design detects with 80% power at that level; ``n_required_excess_<e>`` the n (pairs, or per group
  for equal independent groups) for 80% power when the true d exceeds min_d by e. For a null
  distribution, ``null_draws_needed`` is the K below which p = 1 / (K + 1) cannot reach alpha / m.
  No post-hoc power: power at the observed d is a transform of p and says nothing new.
* The adjusted bound (:func:`decision_bound`): the effective per-claim level after correction is
  alpha_eff = alpha * p_raw / p_adjusted of the min-effect test (alpha / m under Bonferroni, the
  Holm step level under Holm), and the bound is the one-sided 1 - alpha_eff confidence bound of d
  from the same test (for two-sided claims: the end of the two-sided 1 - alpha_eff interval nearest
  zero). It clears min_d exactly when the corrected p(d > min_d) is below alpha.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

from emocheck.stats.effect_sizes import _nct_ncp_for_cdf
from emocheck.stats.power import detectable_d, required_n_min_effect

EXCESS_EFFECTS = (0.2, 0.3, 0.5)
PLANNING_POWER = 0.8

__all__ = ["EXCESS_EFFECTS", "decision_bound", "design_ratio", "not_supported_reason", "plan"]


def design_ratio(comp: dict) -> tuple[float, float] | None:
    """(df, ratio) of the noncentral t behind the claim's min-effect test (t = d * ratio), or None
    for a null-distribution claim. Bonett's z test (unequal groups) is returned as df = inf."""
    kind = comp.get("kind", "samples")
    n1, n2 = int(comp["n_treated"]), int(comp["n_control"])
    if kind == "directions":
        extra = comp.get("extra") or {}
        se = math.hypot(float(extra["se_prompt"]), float(extra["se_direction"]))
        return float(comp["df"]), float(extra["sigma_single_direction"]) / se
    if kind == "vs_null":
        return None
    if comp.get("paired"):
        return n1 - 1.0, math.sqrt(n1)
    if comp.get("ci_method") == "bonett" or n1 != n2:
        # Bonett: d / SE ~ N; SE recovered from the stored interval at ci_confidence.
        conf = _ci_conf(comp)
        z = _st.norm.isf((1 - conf) / 2)
        lo, hi = float(comp["d_ci_low"]), float(comp["d_ci_high"])
        if comp.get("ci_method") == "bonett" and hi > lo:
            return math.inf, 2 * z / (hi - lo)
        # planning for unequal groups under equal variances: pooled design
        return n1 + n2 - 2.0, math.sqrt(n1 * n2 / (n1 + n2))
    return n1 + n2 - 2.0, math.sqrt(n1 * n2 / (n1 + n2))


def _ci_conf(comp: dict) -> float:
    alpha = float(comp["alpha"])
    return 1 - alpha if comp["alternative"] == "two-sided" else 1 - 2 * alpha


def plan(comp: dict, family_size: int) -> dict:
    """Planning columns of one claim at the level alpha / family_size (see the module docstring)."""
    alpha = float(comp["alpha"])
    m = max(1, int(family_size))
    level = alpha / m
    out: dict = {"planning_level": level, "detectable_d_80": float("nan"), "null_draws_needed": None}
    for e in EXCESS_EFFECTS:
        out[f"n_required_excess_{e}"] = None
    min_d, alt = float(comp["min_d"]), comp["alternative"]
    kind = comp.get("kind", "samples")
    if kind == "vs_null":
        out["null_draws_needed"] = int(math.floor(1.0 / level - 1.0)) + 1
        return out
    df, ratio = design_ratio(comp)
    df = min(df, 1e7)
    out["detectable_d_80"] = detectable_d(float(df), float(ratio), min_d=min_d, power=PLANNING_POWER,
                                          alpha=level, alternative=alt)
    if kind == "samples":
        paired = bool(comp.get("paired"))
        for e in EXCESS_EFFECTS:
            out[f"n_required_excess_{e}"] = required_n_min_effect(
                round(min_d + e, 10), min_d=min_d, power=PLANNING_POWER, alpha=level, paired=paired,
                alternative=alt)
    return out


def effective_level(comp: dict, p_min_adjusted: float) -> float:
    """alpha * p_raw / p_adjusted of the min-effect test: the per-claim level the correction used."""
    p_raw = float(comp["p_min_effect"])
    alpha = float(comp["alpha"])
    if not (np.isfinite(p_raw) and np.isfinite(p_min_adjusted)) or p_min_adjusted <= 0:
        return alpha
    return alpha * min(1.0, p_raw / p_min_adjusted)


def decision_bound(comp: dict, p_min_adjusted: float, null_draws=None) -> float:
    """The multiplicity-adjusted bound of d that decided the claim (see the module docstring).

    Signed: a lower bound for 'greater', an upper bound for 'less'; for 'two-sided' the end of the
    interval nearest zero on the side of the observed d. ``null_draws``: the null sample of a
    null-distribution claim (the bound is a rank bound there).
    """
    level = effective_level(comp, p_min_adjusted)
    alt = comp["alternative"]
    one_sided = level if alt != "two-sided" else level / 2
    d = float(comp["d"])
    upper = alt == "less" or (alt == "two-sided" and d < 0)
    if comp.get("kind") == "vs_null":
        if null_draws is None:
            return float("nan")
        z = np.sort(np.asarray(null_draws, dtype=float))
        k = z.size
        c_max = math.ceil(one_sided * (k + 1) - 1) - 1
        if c_max < 0:
            return float("inf") if upper else float("-inf")
        x, s = float(comp["mean_treated"]), float(np.std(z, ddof=1))
        return float((x - z[c_max]) / s) if upper else float((x - z[::-1][c_max]) / s)
    if comp.get("ci_method") == "degenerate":
        # no spread (identical outcomes): d is 0 or +-inf and its interval is the bound (stats.comparison)
        return float(comp["d_ci_high"]) if upper else float(comp["d_ci_low"])
    df, ratio = design_ratio(comp)
    t_obs = d * ratio
    if math.isinf(df):
        zq = _st.norm.isf(one_sided)
        return (t_obs + zq) / ratio if upper else (t_obs - zq) / ratio
    target = one_sided if upper else 1.0 - one_sided
    return float(_nct_ncp_for_cdf(t_obs, df, target) / ratio)


def not_supported_reason(row: dict) -> str:
    """Why a claim with status 'ok' is not supported, in one line ('' when it is supported)."""
    if row.get("verdict") == "supported":
        return ""
    alpha = float(row["alpha"])
    alt, min_d = row["alternative"], float(row["min_d"])
    lo, hi, bound = float(row["d_ci_low"]), float(row["d_ci_high"]), float(row.get("d_bound_adjusted", float("nan")))
    if alt == "greater":
        raw_clears = lo > min_d
    elif alt == "less":
        raw_clears = hi < -min_d
    else:
        raw_clears = lo > min_d or hi < -min_d
    if not raw_clears or float(row["p_min_effect"]) >= alpha:
        return f"raw interval does not clear min_d = {min_d:g}"
    if float(row["p_value"]) >= alpha:
        return f"p of no effect = {float(row['p_value']):.3g} >= alpha"
    if float(row.get("p_min_effect_adjusted", 1.0)) >= alpha:
        return (f"raw interval clears min_d = {min_d:g}, but after {row['correction']} over "
                f"{row['family_declared']} declared claims the bound that decides is {bound:.2f}")
    return (f"corrected p of no effect = {float(row['p_adjusted']):.3g} >= alpha "
            f"(the Welch / paired t disagrees with the min-effect test)")
