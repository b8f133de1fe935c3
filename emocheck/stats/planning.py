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
* The n that would decide an inconclusive claim (:func:`decision_n`): at the level alpha / m, the n
  (same unit as the claim's n: pairs, per group, prompts at the recorded number of control directions)
  with 80% power to decide it if the true effect is the observed one (to support it when the observed
  effect in the claimed direction exceeds min_d, to refute it when it falls short), and the n with 80%
  power to refute it if the true effect is 0 (a distance of min_d below the threshold: no n can decide
  a claim whose true effect is exactly min_d, where both tests have power alpha at most).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

from emocheck.stats.effect_sizes import _nct_ncp_for_cdf
from emocheck.stats.power import (detectable_d, power_from_ratio, power_refute, required_n_min_effect,
                                  smallest_n)

EXCESS_EFFECTS = (0.2, 0.3, 0.5)
PLANNING_POWER = 0.8

__all__ = ["EXCESS_EFFECTS", "DECISION_N_COLUMNS", "decision_bound", "decision_n", "design_at_n", "design_ratio",
           "effect_in_claimed_direction", "not_supported_reason", "plan", "refute_bound"]


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


def refute_bound(comp: dict, p_refute_adjusted: float, null_draws=None) -> float:
    """The multiplicity-adjusted bound that decides refutation: the upper confidence bound of the effect
    measured in the claimed direction (:func:`effect_in_claimed_direction`; for 'two-sided' the bound on
    |d|, the larger end of the two one-sided bounds) at the per-claim level the correction used for
    ``p_refute`` (alpha * p_raw / p_adjusted). The claim is refuted exactly when it lies below min_d."""
    alpha = float(comp["alpha"])
    p_raw = float(comp.get("p_refute", float("nan")))
    if not (np.isfinite(p_raw) and np.isfinite(p_refute_adjusted)) or p_refute_adjusted <= 0:
        return float("nan")
    level = alpha * min(1.0, p_raw / p_refute_adjusted)
    alt = comp["alternative"]
    if comp.get("kind") == "vs_null":
        if null_draws is None:
            return float("nan")
        z = np.sort(np.asarray(null_draws, dtype=float))
        k, s = z.size, float(np.std(z, ddof=1))
        c_max = math.ceil(level * (k + 1) - 1) - 1
        if c_max < 0 or not s > 0:
            return float("inf")
        x = float(comp["mean_treated"])
        # Largest shift still compatible, each way: the (c_max+1)-th smallest / largest draw.
        greater = (x - z[c_max]) / s            # shift up of the null that x is not below
        less = (z[::-1][c_max] - x) / s         # shift down that x is not above
        return float(greater if alt == "greater" else less if alt == "less" else max(greater, less))
    df, ratio = design_ratio(comp)
    t_obs = float(comp["d"]) * ratio
    if math.isinf(df):
        zq = _st.norm.isf(level)
        up, down = (t_obs + zq) / ratio, (t_obs - zq) / ratio
    else:
        up = float(_nct_ncp_for_cdf(t_obs, df, level) / ratio)          # upper bound of d
        down = float(_nct_ncp_for_cdf(t_obs, df, 1.0 - level) / ratio)  # lower bound of d
    return float(up if alt == "greater" else -down if alt == "less" else max(up, -down))


def not_supported_reason(row: dict) -> str:
    """Why a claim with status 'ok' is not supported, in one line ('' when it is supported)."""
    if row.get("verdict") == "supported":
        return ""
    alpha = float(row["alpha"])
    alt, min_d = row["alternative"], float(row["min_d"])
    if row.get("verdict") == "refuted":
        what = "|d|" if alt == "two-sided" else "d" if alt == "greater" else "-d"
        return (f"{what} < {min_d:g} shown: its bound after {row['correction']} over {row['family_declared']} "
                f"declared claims is {float(row.get('d_bound_refute_adjusted', float('nan'))):.2f}")
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


DECISION_N_COLUMNS = ("n_decide_at_observed", "n_refute_if_d0")


def effect_in_claimed_direction(d: float, alternative: str) -> float:
    """d measured the way the claim points: d ('greater'), -d ('less'), |d| ('two-sided')."""
    d = float(d)
    return -d if alternative == "less" else abs(d) if alternative == "two-sided" else d


def design_at_n(comp: dict):
    """n -> (df, ratio) of the claim's test statistic (t = d * ratio) if it had n units instead of its
    own, other design numbers kept (the K control directions and their spread for a direction claim;
    equal groups for independent samples); None for a null-distribution claim, whose n is the K draws."""
    kind = comp.get("kind", "samples")
    if kind == "vs_null":
        return None
    if kind == "directions":
        extra = comp.get("extra") or {}
        k = int(comp["n_control"])
        var_p = float(extra["sd_prompt"]) ** 2
        var_dir = float(extra["se_direction"]) ** 2 * k        # tau^2
        sigma1 = float(extra["sigma_single_direction"])

        def directions(n: int) -> tuple[float, float]:
            se_p2, se_d2 = var_p / n, var_dir / k
            se2 = se_p2 + se_d2
            denom = se_p2**2 / (n - 1) + (se_d2**2 / (k - 1) if se_d2 > 0 else 0.0)
            return (se2**2 / denom if denom > 0 else n - 1.0), sigma1 / math.sqrt(se2)

        return directions
    if comp.get("paired"):
        return lambda n: (n - 1.0, math.sqrt(n))
    return lambda n: (2.0 * n - 2.0, math.sqrt(n / 2.0))


def decision_n(comp: dict, family_size: int, power: float = PLANNING_POWER) -> dict:
    """The n that would decide the claim at the level alpha / family_size (see the module docstring):
    ``n_decide_at_observed`` and ``n_refute_if_d0``, None where no n decides (the effect is on the
    threshold, a null-distribution claim, or the direction variance alone keeps SE above what is needed:
    more control directions are needed there, not more prompts)."""
    out: dict = {key: None for key in DECISION_N_COLUMNS}
    design = design_at_n(comp)
    if design is None:
        return out
    level = float(comp["alpha"]) / max(1, int(family_size))
    min_d, alt = float(comp["min_d"]), comp["alternative"]
    d_obs = effect_in_claimed_direction(comp["d"], alt)

    def n_support(d_true: float):
        return smallest_n(lambda n: power_from_ratio(d_true, *design(n), min_d=min_d, alpha=level,
                                                     alternative=alt) >= power, start=3)

    def n_refute(d_true: float):
        return smallest_n(lambda n: power_refute(d_true, *design(n), min_d=min_d, alpha=level,
                                                 alternative=alt) >= power, start=3)

    if math.isfinite(d_obs):
        if d_obs > min_d:
            out["n_decide_at_observed"] = n_support(d_obs)
        elif d_obs < min_d:
            out["n_decide_at_observed"] = n_refute(d_obs)
    if min_d > 0:
        out["n_refute_if_d0"] = n_refute(0.0)
    return out
