"""Directions as a random effect: one treated direction against the distribution of K control directions.

The phase-5 design scores every prompt i under the treated direction (``treated[i]``) and under K
control directions drawn from a null population (random directions of the same norm, label-permuted
difference-of-means vectors): ``control[i, j]``, NaN where direction j was not run on prompt i
(subset designs). The question is "does the treated direction beat *a random direction*", not "does
it beat these K draws", so the standard error carries the between-direction variance as well as the
prompt variance.

Two questions can be asked of the same table, and they differ (``null=``):

* ``null="exchangeable"`` (the default, what a claim "the treated direction beats random directions"
  means): is the treated direction OUTSIDE the distribution of its controls? Under the null it is one
  more draw from the control population (b_t ~ (0, tau^2), as a label-permuted vector or a random head
  set would be), so the treated direction's own direction effect is noise the test must carry: a
  prediction-interval test with SE^2 = s^2_D / n + tau^2 (1 + 1/K). It needs tau^2, so every control
  direction must be run on at least two prompts (a crossed design; one fresh draw per prompt cannot
  separate tau^2 from the prompt noise).
* ``null="population_mean"``: does the treated direction beat the AVERAGE control direction? Under
  this null b_t = E[b] exactly; only the estimation of the population mean from K draws enters:
  SE^2 = s^2_D / n + tau^2 / K. A claim judged this way must say "than the average random
  direction": with a large tau it supports a treated direction that is an ordinary draw (7-35% of
  such directions, depending on tau and n; tests/test_calibration.py).

Model (for the control cells)::

    control[i, j] = mu_c + a_i + b_j + e_ij,   b_j ~ (0, tau^2) the direction effect,

fitted as a two-way additive model by alternating least squares (exact in one sweep for a complete
table, and valid with NaN cells). The treated direction is a fixed, named vector with mean mu_t.

* ``mean_difference`` Delta = mean_i (treated_i - mu_c - a_i): the treated score minus the expected
  score of the average control direction *on the same prompt* (direction effects centred on the
  K sampled directions).
* SE^2 = s^2_D / n + tau^2 c, c = 1 + 1/K (exchangeable) or 1/K (population mean), where s^2_D is
  the across-prompt variance of those per-prompt differences and tau^2 the method-of-moments
  direction variance (variance of the fitted direction effects minus their noise share, floored at
  0). With a Satterthwaite df nu = SE^4 / ((s^2_D/n)^2/(n-1) + (tau^2 c)^2/(K-1)); nu = n - 1 when
  tau^2 = 0.
* ``d`` (what ``min_d`` means here): Delta / sigma_1 with sigma_1^2 = (mean over directions of the
  across-prompt variance of treated_i - control[i, j]) + tau^2, the SD of "treated minus one random
  direction" on one random prompt. It is the d_z of a paired claim against a single random
  direction, with the direction variance included, so ``min_d`` means the same kind of thing it
  means in a paired claim.
* ``p_value``: t = Delta / SE against t(nu) in the claimed direction. ``p_min_effect``: the same t
  against a noncentral t(nu, min_d * r) with r = sigma_1 / SE (r = sqrt(n) for an ordinary paired
  design); the d interval inverts that distribution, so "CI bound clears min_d" and "p_min_effect <
  alpha" agree. ``p_refute`` (the effect is smaller than min_d) is the other tail of the same noncentral t
  (:func:`emocheck.stats.ttests.nct_refute_p`). The ratio r is estimated, so this is an approximation; its size at the boundary is
  checked by simulation in tests/test_calibration.py.
* ``extra['direction_rank']``/``extra['direction_perm_p']``: where the treated direction falls among
  the control directions, each compared with it on the prompts that direction was run on:
  rank 1 = best in the claimed direction among K + 1; permutation p = (1 + #{controls at least as
  good}) / (K + 1) (two-sided: twice the smaller tail, capped at 1). This is the rank form of the
  exchangeable test (exact on a complete table); it cannot go below 1 / (K + 1), so with K = 30 and
  Holm over 6 claims it can never decide, which is why the verdict uses the prediction interval.
"""
from __future__ import annotations

import math

import numpy as np

from emocheck.errors import EvidenceError
from emocheck.stats.ttests import _t_pvalue

__all__ = ["compare_directions", "fit_additive", "direction_rank", "DIRECTION_NULLS"]

#: The two questions compare_directions can ask (module docstring): the treated direction against a
#: new draw of the control population, or against the population's mean.
DIRECTION_NULLS = ("exchangeable", "population_mean")


def _matrix(treated, control) -> tuple[np.ndarray, np.ndarray]:
    try:
        t = np.asarray(treated, dtype=float)
        c = np.asarray(control, dtype=float)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"directions: values must be numbers ({exc})") from None
    if t.ndim != 1:
        raise EvidenceError(f"directions: treated must be 1-D [n_prompts], got shape {t.shape}")
    if c.ndim != 2 or c.shape[0] != t.size:
        raise EvidenceError(
            f"directions: control must be 2-D [n_prompts, n_directions] with n_prompts = {t.size} "
            f"(the length of treated), got shape {c.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise EvidenceError("directions: treated contains non-finite values; every prompt needs a treated score")
    if np.any(np.isinf(c)):
        raise EvidenceError("directions: control contains inf; use NaN for a direction not run on a prompt")
    return t, c


def fit_additive(control: np.ndarray, n_iter: int = 50, tol: float = 1e-12):
    """Two-way additive fit control[i, j] ~ mu + a_i + b_j on the observed (non-NaN) cells.

    Returns (mu, a, b, resid_var, resid_df) with sum(b) = 0 over the K directions and sum(a) = 0
    over the prompts. Alternating least squares converges to the least-squares fit for a
    connected design (one sweep for a complete table).
    """
    obs = ~np.isnan(control)
    x = np.where(obs, control, 0.0)
    n_row = obs.sum(axis=1)
    n_col = obs.sum(axis=0)
    mu = float(x.sum() / obs.sum())
    a = np.zeros(control.shape[0])
    b = np.zeros(control.shape[1])
    for _ in range(n_iter):
        a_new = ((x - mu - b[None, :]) * obs).sum(axis=1) / n_row
        b_new = ((x - mu - a_new[:, None]) * obs).sum(axis=0) / n_col
        shift_b = b_new.mean()
        b_new -= shift_b
        a_new += shift_b
        shift_a = a_new.mean()
        a_new -= shift_a
        mu_new = mu + shift_a
        delta = max(np.max(np.abs(a_new - a)), np.max(np.abs(b_new - b)), abs(mu_new - mu))
        a, b, mu = a_new, b_new, mu_new
        if delta < tol:
            break
    resid = np.where(obs, x - mu - a[:, None] - b[None, :], 0.0)
    n_obs = int(obs.sum())
    df = n_obs - control.shape[0] - control.shape[1] + 1
    resid_var = float((resid**2).sum() / df) if df > 0 else 0.0
    return mu, a, b, resid_var, df


def direction_rank(treated: np.ndarray, control: np.ndarray, alternative: str) -> tuple[int, float, np.ndarray]:
    """(rank, permutation p, per-direction mean advantage of treated) -- see the module docstring."""
    obs = ~np.isnan(control)
    diff = np.where(obs, treated[:, None] - np.where(obs, control, 0.0), 0.0)
    adv = diff.sum(axis=0) / obs.sum(axis=0)  # mean over the prompts direction j was run on
    k = adv.size
    if alternative == "less":
        at_least_as_good = int(np.sum(adv >= 0))  # control <= treated, i.e. control as low or lower
        rank = 1 + at_least_as_good
        p = (1 + at_least_as_good) / (k + 1)
    elif alternative == "greater":
        at_least_as_good = int(np.sum(adv <= 0))
        rank = 1 + at_least_as_good
        p = (1 + at_least_as_good) / (k + 1)
    else:
        hi = (1 + int(np.sum(adv <= 0))) / (k + 1)
        lo = (1 + int(np.sum(adv >= 0))) / (k + 1)
        rank = 1 + int(np.sum(adv <= 0)) if np.mean(adv) >= 0 else 1 + int(np.sum(adv >= 0))
        p = min(1.0, 2 * min(hi, lo))
    return rank, float(p), adv




def compare_directions(
    treated,
    control,
    *,
    alternative: str = "greater",
    min_d: float = 0.0,
    alpha: float = 0.05,
    interval: bool = True,
    null: str = "exchangeable",
):
    """Judge a treated direction against K >= 2 control directions (see the module docstring).

    ``null="exchangeable"`` (default): the treated direction is outside its controls' distribution
    (prediction-interval SE); ``null="population_mean"``: it beats the average control direction.

    ``interval=False`` leaves the d interval NaN (the verdict does not use it; for simulations).

    ``treated``: [n_prompts]; ``control``: [n_prompts, K], NaN where a direction was not run on a
    prompt. Every prompt needs at least one control cell and every direction at least two prompts.
    Returns a :class:`emocheck.stats.comparison.Comparison` with ``kind='directions'``;
    ``n_treated`` = prompts, ``n_control`` = control directions, ``df`` the Satterthwaite df and
    ``extra`` holding tau, the prompt SD, the rank and the permutation p.
    """
    from emocheck.stats.comparison import Comparison, check_settings
    from emocheck.stats.effect_sizes import ci_from_nct
    from emocheck.stats.ttests import nct_min_effect_p, nct_refute_p

    check_settings(alternative, alpha, min_d)
    if null not in DIRECTION_NULLS:
        raise EvidenceError(f"directions: null must be one of {', '.join(map(repr, DIRECTION_NULLS))}, got {null!r}")
    t, c = _matrix(treated, control)
    n, k = c.shape
    obs = ~np.isnan(c)
    if n < 3:
        raise EvidenceError(f"directions: {n} prompt(s); at least 3 are needed for a test")
    if k < 2:
        raise EvidenceError(
            f"directions: {k} control direction(s); a direction-level null needs at least 2 "
            "(record a 1-D control for an ordinary paired claim)"
        )
    if np.any(obs.sum(axis=1) == 0):
        bad = np.flatnonzero(obs.sum(axis=1) == 0)[:5].tolist()
        raise EvidenceError(f"directions: prompts {bad} have no control direction (all NaN)")
    if np.any(obs.sum(axis=0) < 2):
        bad = np.flatnonzero(obs.sum(axis=0) < 2)[:5].tolist()
        raise EvidenceError(f"directions: control directions {bad} were run on fewer than 2 prompts")

    mu, a, b, resid_var, _ = fit_additive(c)
    # Expected score of the average (sampled) control direction on prompt i.
    per_prompt = t - (mu + a)
    delta = float(per_prompt.mean())
    var_prompt = float(np.var(per_prompt, ddof=1))
    # Direction variance: the spread of the fitted direction effects minus their estimation noise.
    n_col = obs.sum(axis=0)
    tau2 = max(0.0, float(np.var(b, ddof=1)) - resid_var * float(np.mean(1.0 / n_col)))
    se_prompt2 = var_prompt / n
    # exchangeable: the treated direction's own effect is one more draw (tau^2) besides the K-draw
    # estimate of the population mean (tau^2 / K)
    se_dir2 = tau2 * ((1.0 + 1.0 / k) if null == "exchangeable" else 1.0 / k)
    se2 = se_prompt2 + se_dir2
    if not se2 > 0:
        raise EvidenceError("directions: treated - control has zero variance; d is undefined")
    se = math.sqrt(se2)
    denom = se_prompt2**2 / (n - 1) + (se_dir2**2 / (k - 1) if se_dir2 > 0 else 0.0)
    df = float(se2**2 / denom) if denom > 0 else float(n - 1)

    # sigma_1: SD of treated - one random direction on one random prompt.
    diff = np.where(obs, t[:, None] - np.where(obs, c, 0.0), np.nan)
    within = np.nanvar(diff, axis=0, ddof=1)
    sigma1 = math.sqrt(float(np.mean(within)) + tau2)
    d = delta / sigma1
    ratio = sigma1 / se
    t_obs = delta / se
    p_value = _t_pvalue(t_obs, df, alternative)
    p_min = nct_min_effect_p(t_obs, df, min_d * ratio, alternative)
    p_refute = nct_refute_p(t_obs, df, min_d * ratio, alternative)
    conf = 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha
    lo, hi = ci_from_nct(t_obs, df, ratio, conf) if interval else (float("nan"), float("nan"))
    rank, perm_p, adv = direction_rank(t, c, alternative)
    extra = {
        "direction_null": null,
        "n_directions": int(k),
        "n_cells": int(obs.sum()),
        "tau_direction": math.sqrt(tau2),
        "sd_prompt": math.sqrt(var_prompt),
        "sigma_single_direction": sigma1,
        "se_prompt": math.sqrt(se_prompt2),
        "se_direction": math.sqrt(se_dir2),
        "direction_rank": int(rank),
        "direction_perm_p": perm_p,
        "direction_perm_p_min": 1.0 / (k + 1),
        "direction_share_at_least_as_good": float((rank - 1) / k),
    }
    mean_control = float(mu + a.mean())
    return Comparison(
        n_treated=int(n), n_control=int(k), paired=True, alternative=alternative, min_d=float(min_d),
        alpha=float(alpha), mean_treated=float(t.mean()), mean_control=mean_control,
        mean_difference=delta, d=float(d), hedges_g=float("nan"), d_ci_low=float(lo), d_ci_high=float(hi),
        ci_method="nct-satterthwaite-prediction" if null == "exchangeable" else "nct-satterthwaite",
        t=float(t_obs), df=df, p_value=p_value, p_min_effect=float(p_min), p_refute=float(p_refute),
        kind="directions", extra=extra,
    )
