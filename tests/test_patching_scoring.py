"""Calibration of the phase-5 verdict path by simulation, and the evidence helpers.

The simulations use the phase-5 design (n = 48 judged prompts, a treated direction against control
directions that differ from each other, fluency differences with a large mean) and the rule that
decides a paired claim (emocheck.stats.core: paired t p < alpha AND min-effect noncentral-t p < alpha,
Holm inside a family). The p-values are computed vectorised with the same formulas; the first test
checks that they equal emocheck.stats.core's on a few draws, so the simulations judge the real rule.

Monte Carlo error: with R = 4000 replications the SE of a rejection rate of 0.05 is 0.0034; a rate is
called calibrated when it is below alpha + 3 SE. Each simulation also runs the OLD design (fixed
control directions averaged per prompt; the fluency-adjusted difference D - b1 F judged with n - 1
df) and asserts that it FAILS, so the checks can fail.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from emocheck.patching.scoring import (ancova_at_equal_fluency, noninferiority, paired_d, paired_scores,
                                       topic_cluster)
from emocheck.stats.core import adjust_pvalues, min_effect_test, ttest

N, R, ALPHA = 48, 4000, 0.05
MC_SE = np.sqrt(ALPHA * (1 - ALPHA) / R)


def rule_pvalues(diff: np.ndarray, min_d: float, alternative: str = "greater"):
    """Vectorised paired p-values of the deciding rule: rows are replications. (p_t, p_min_effect)."""
    n = diff.shape[1]
    d = diff.mean(1) / diff.std(1, ddof=1)
    t = d * np.sqrt(n)
    sign = 1 if alternative == "greater" else -1
    p_t = sps.t.sf(sign * t, n - 1)
    p_min = sps.nct.sf(sign * t, n - 1, min_d * np.sqrt(n)) if min_d > 0 else p_t
    return p_t, p_min


def supported(diff, min_d, alpha=ALPHA, alternative="greater"):
    p_t, p_min = rule_pvalues(diff, min_d, alternative)
    return (p_t < alpha) & (p_min < alpha)


def legacy_adjusted(diff: np.ndarray, fdiff: np.ndarray) -> np.ndarray:
    """The OLD paired_scores adjustment (D - b1 F, judged as if b1 were known), per replication."""
    out = np.empty_like(diff)
    for r in range(diff.shape[0]):
        b1, _ = np.polyfit(fdiff[r], diff[r], 1)
        out[r] = diff[r] - b1 * fdiff[r]
    return out


def test_vectorised_rule_equals_emocheck_stats():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.3, 1, (3, N))
    p_t, p_min = rule_pvalues(diff, 0.2)
    for r in range(3):
        assert p_t[r] == pytest.approx(ttest(diff[r], paired=False, alternative="greater").p, rel=1e-9) or \
            p_t[r] == pytest.approx(ttest(diff[r], np.zeros(N), paired=True, alternative="greater").p, rel=1e-9)
        assert p_min[r] == pytest.approx(min_effect_test(diff[r], np.zeros(N), paired=True, min_d=0.2), rel=1e-6)


def _design(rng, tau: float, delta: float = 0.0, fresh: bool = True, k_fixed: int = 3):
    """Per-prompt score differences treated - control under the phase-5 design.

    Each direction shifts the score by its own effect (SD tau between directions); prompt effects
    cancel in the pairing; the treated direction's effect is `delta` (0 = a direction like any other).
    fresh: each prompt gets its own control draw (the new design); else k_fixed draws averaged per prompt.
    """
    eps_t = rng.normal(0, 1, (R, N))
    if fresh:
        ctrl = tau * rng.normal(0, 1, (R, N)) + rng.normal(0, 1, (R, N))
    else:
        dirs = tau * rng.normal(0, 1, (R, 1, k_fixed))                     # same draws on every prompt
        ctrl = (dirs + rng.normal(0, 1, (R, N, k_fixed))).mean(2)
    treated_dir = delta * np.sqrt(1 + tau**2 + 1)                          # delta in units of the diff SD
    return treated_dir + eps_t - ctrl


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_directions_as_random_effect_null_is_calibrated_and_old_design_is_not(tau):
    rng = np.random.default_rng(20)
    new = supported(_design(rng, tau, fresh=True), min_d=0.0).mean()
    old = supported(_design(rng, tau, fresh=False), min_d=0.0).mean()
    assert new < ALPHA + 3 * MC_SE, new
    assert new > ALPHA - 4 * MC_SE, new                       # not conservative either (exact test)
    assert old > ALPHA + 10 * MC_SE, old                      # fixed draws: anti-conservative


def _exchangeable_design(rng, tau: float, n: int = N) -> np.ndarray:
    """Per-prompt differences when the treated direction is ONE MORE DRAW of the control population
    (b_t ~ N(0, tau^2), fixed over the prompts) and each prompt gets a fresh control draw."""
    b_t = tau * rng.normal(0, 1, (R, 1))
    ctrl = tau * rng.normal(0, 1, (R, n)) + rng.normal(0, 1, (R, n))
    return b_t + rng.normal(0, 1, (R, n)) - ctrl


@pytest.mark.parametrize("tau, lo, hi", [(0.5, 0.08, 0.125), (2.0, 0.27, 0.33)])
def test_fresh_draws_test_the_average_direction_not_an_exchangeable_one(tau, lo, hi):
    """Why phase 5's claims say "the average random direction": under the exchangeable null (the
    treated vector is an ordinary draw) the fresh-draw paired t at min_d 0.2 supports it in 0.10 (tau
    0.5) to 0.30 (tau 2) of the data sets at n = 48, and more with n (the treated draw's own effect does
    not average out). The population-mean null
    (test above) is what it is exact for; the crossed design of emocheck.stats.directions is what
    would test the exchangeable one."""
    rng = np.random.default_rng([25, int(tau * 10)])
    rate = supported(_exchangeable_design(rng, tau), min_d=0.2).mean()    # phase 5's min_d, uncorrected
    assert lo < rate < hi, rate
    assert rate > ALPHA + 10 * MC_SE


def test_min_d_boundary_is_calibrated():
    """True d exactly min_d = 0.2 (per-prompt differences): at most alpha supported."""
    rng = np.random.default_rng(21)
    diff = rng.normal(0.2, 1.0, (R, N))
    rate = supported(diff, min_d=0.2).mean()
    assert rate < ALPHA + 3 * MC_SE, rate


@pytest.mark.parametrize("d_true", [0.45, 0.7])
def test_planted_effect_power_matches_analytic(d_true):
    rng = np.random.default_rng(22)
    diff = rng.normal(d_true, 1.0, (R, N))
    rate = supported(diff, min_d=0.2).mean()
    df, crit = N - 1, sps.nct.ppf(1 - ALPHA, N - 1, 0.2 * np.sqrt(N))
    analytic = sps.nct.sf(crit, df, d_true * np.sqrt(N))
    se = np.sqrt(analytic * (1 - analytic) / R)
    assert abs(rate - analytic) < 3.5 * se, (rate, analytic)


@pytest.mark.parametrize("ratio", [1.0, 2.0, 4.0])
def test_raw_differences_calibrated_old_fluency_adjustment_is_not(ratio):
    """Null effect, fluency difference F with mean/sd = ratio and a score that tracks F: the raw
    paired test is calibrated at the min_d = 0 boundary; the old adjustment is not."""
    rng = np.random.default_rng(23)
    reps = 1500
    f = rng.normal(ratio, 1.0, (reps, N))
    noise = rng.normal(0, 1.0, (reps, N))
    diff_null = noise                                        # no effect and D independent of F
    raw = supported(diff_null, 0.0).mean()
    old = supported(legacy_adjusted(diff_null, f), 0.0).mean()
    se = np.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert raw < ALPHA + 3 * se, raw
    assert old > ALPHA + 5 * se, (ratio, old)


def test_holm_family_of_nulls_controls_familywise_error():
    rng = np.random.default_rng(24)
    m = 10
    diffs = _design(rng, 1.0, fresh=True).reshape(R, 1, N)
    fam = np.concatenate([diffs] + [_design(rng, 1.0, fresh=True).reshape(R, 1, N) for _ in range(m - 1)], 1)
    any_supported = 0
    for r in range(0, R, 4):                                # 1000 families
        p_t, p_min = rule_pvalues(fam[r], 0.0)
        adj_t = adjust_pvalues(p_t, "holm")
        adj_m = adjust_pvalues(p_min, "holm")
        any_supported += bool(((adj_t < ALPHA) & (adj_m < ALPHA)).any())
    rate = any_supported / (R // 4)
    assert rate < ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / (R // 4)), rate


# ------------------------------------------------------------------------------ evidence helpers


def _samples_table(n=30, seed=0, effect=0.5, empty_t=()):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pid = f"gen-{i:03d}"
        topic = f"t{i % 6}"
        c = rng.normal(0, 1)
        t = c + effect + rng.normal(0, 1)
        rows.append({"sample_id": pid, "condition": "T", "politeness": np.nan if i in empty_t else t,
                     "nll": 2.0 + rng.normal(0, 0.3), "rep3": 0.0, "distinct2": 1.0, "topic": topic})
        rows.append({"sample_id": pid, "condition": "random:x", "politeness": c, "nll": 2.0 + rng.normal(0, 0.3),
                     "rep3": 0.1, "distinct2": 0.9, "topic": topic})
    return pd.DataFrame(rows)


def test_paired_scores_are_raw_and_count_empty():
    df = _samples_table(empty_t=(3, 7))
    out = paired_scores(df, "T", "random:x", "politeness")
    m = out["metrics"]
    assert m["n"] == 28 and m["n_empty_treated"] == 2 and m["n_dropped"] == 2 and m["n_empty_control"] == 0
    w = df.pivot(index="sample_id", columns="condition", values="politeness").dropna()
    assert np.allclose(out["treated"], w["T"]) and np.allclose(out["control"], w["random:x"])
    assert m["raw_d"] == pytest.approx(paired_d(w["T"] - w["random:x"]))
    assert m["rep3_diff"] == pytest.approx(-0.1) and m["n_topics"] == 6
    t, c = w["T"].to_numpy(), w["random:x"].to_numpy()
    assert m["share_treated_above_control"] == pytest.approx(np.mean(t > c))
    assert m["share_treated_below_control"] == pytest.approx(np.mean(t < c))
    assert not any(k.startswith("direction_perm_p") for k in m)       # a sign share is not a permutation p
    assert 0 <= m["topic_cluster_p_two_sided"] <= 1


def test_paired_scores_only_on_prompts_both_ran():
    df = _samples_table()
    df = df[~((df["condition"] == "random:x") & df["sample_id"].isin(["gen-000", "gen-001"]))]
    out = paired_scores(df, "T", "random:x", "politeness")
    assert out["metrics"]["n"] == 28 and "gen-000" not in out["sample_ids"]


def test_ancova_matches_statsmodels_and_refuses_to_extrapolate():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    f = rng.normal(0.2, 1.0, 60)
    d = 0.3 - 0.5 * f + rng.normal(0, 0.5, 60)
    a = ancova_at_equal_fluency(d, f)
    fit = sm.OLS(d, sm.add_constant(f)).fit()
    assert a["ancova_in_range"] and a["ancova_mean_at_equal_fluency"] == pytest.approx(fit.params[0])
    assert a["ancova_se"] == pytest.approx(fit.bse[0]) and fit.df_resid == 58
    out = ancova_at_equal_fluency(d, f + 10)                  # F = 0 is outside the observed range
    assert not out["ancova_in_range"] and np.isnan(out["ancova_mean_at_equal_fluency"])


def test_topic_cluster_uses_g_minus_1_df():
    rng = np.random.default_rng(4)
    topics = np.repeat(np.arange(8), 6)
    d = rng.normal(0, 1, 8)[topics] + rng.normal(0, 0.2, 48) + 0.3
    out = topic_cluster(d, topics)
    means = pd.Series(d).groupby(topics).mean()
    assert out["n_topics"] == 8 and out["topic_sd_of_means"] == pytest.approx(means.std(ddof=1))
    # with equal cluster sizes the CR1 t equals the t-test on cluster means up to sqrt(G/(G-1))
    t_means = sps.ttest_1samp(means, 0).statistic
    p_expected = 2 * sps.t.sf(abs(t_means) * np.sqrt((8 - 1) / 8) * np.sqrt(47 / 47), 7)
    assert out["topic_cluster_p_two_sided"] == pytest.approx(p_expected, rel=0.05)


def test_noninferiority_shifts_by_margin():
    df = _samples_table()
    out = noninferiority(df, "T", "random:x", "nll", margin=0.4)
    w = df.pivot(index="sample_id", columns="condition", values="nll")
    assert np.allclose(out["treated"], w["T"] - 0.4) and np.allclose(out["control"], w["random:x"])
    assert out["metrics"]["margin"] == 0.4
