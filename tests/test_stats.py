"""Tests of emocheck.stats against published values, reference libraries and simulation.

Reference libraries: scipy (t-tests), statsmodels (multiple testing, power), pingouin (effect
sizes), scikit-learn (AUC). Published values: Cohen (1988) / G*Power sample sizes, Hedges (1981)
correction factors, the Benjamini & Hochberg (1995) worked example.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pingouin as pg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from emocheck.errors import EvidenceError
from emocheck import stats as es
from emocheck.stats.effect_sizes import bonett_ci, bonett_d
from emocheck.stats.ttests import min_effect_test_bonett

HYP = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [0, 1, 2]
SIZES = [(5, 5), (12, 20), (40, 33)]
SCIPY_ALT = {"two-sided": "two-sided", "greater": "greater", "less": "less"}
SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def _data(seed, n1, n2, shift=0.4, sd2=1.5):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n1), rng.normal(0.0, sd2, n2)


# ----------------------------------------------------------------------------------------------
# Published reference values
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "d, paired, expected",
    [
        # Exact noncentral-t values (G*Power; ceil of statsmodels' solve_power). Cohen's (1988)
        # table prints 393 for d = .2: it is built on a normal approximation; the exact t-based
        # answer is 393.41 -> 394 (checked against statsmodels below).
        (0.2, False, 394),
        (0.5, False, 64),
        (0.8, False, 26),
        (0.5, True, 34),
    ],
)
def test_required_n_published(d, paired, expected):
    n = es.required_n(d, power=0.8, alpha=0.05, paired=paired, alternative="two-sided")
    assert n == expected
    # And it is the *smallest* such n.
    assert es.power(d, n, paired=paired) >= 0.8
    assert es.power(d, n - 1, paired=paired) < 0.8


def test_required_n_close_to_cohen_table():
    # Cohen (1988), Table 2.4.1: 393 / 64 / 26 per group. Exact values may differ by 1 at most.
    for d, cohen in [(0.2, 393), (0.5, 64), (0.8, 26)]:
        assert abs(es.required_n(d) - cohen) <= 1


def test_hedges_correction_published():
    # Hedges (1981) exact J(df): J(2) = 1/sqrt(pi), J(4) = 0.7979, J(10) = 0.9227.
    assert es.hedges_correction(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-12)
    assert es.hedges_correction(4) == pytest.approx(0.79788, abs=1e-5)
    assert es.hedges_correction(10) == pytest.approx(0.92274, abs=1e-5)
    assert es.hedges_correction(10_000) == pytest.approx(1.0, abs=1e-4)


BH_EXAMPLE = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
              0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000]


def test_benjamini_hochberg_worked_example():
    p = np.array(BH_EXAMPLE)
    bh = es.adjust_pvalues(p, "bh")
    bonf = es.adjust_pvalues(p, "bonferroni")
    holm = es.adjust_pvalues(p, "holm")
    assert np.flatnonzero(bh <= 0.05).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(bonf <= 0.05).tolist() == [0, 1, 2]
    assert np.flatnonzero(holm <= 0.05).tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------------------------
# Against scipy / statsmodels / pingouin / sklearn
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n1, n2", SIZES)
@pytest.mark.parametrize("alternative", es.ALTERNATIVES)
def test_ttest_matches_scipy(seed, n1, n2, alternative):
    x, y = _data(seed, n1, n2)
    alt = SCIPY_ALT[alternative]

    got = es.ttest(x, y, alternative=alternative)
    ref = sps.ttest_ind(x, y, equal_var=False, alternative=alt)
    assert got.kind == "welch"
    assert got.t == pytest.approx(ref.statistic, rel=1e-10)
    assert got.df == pytest.approx(ref.df, rel=1e-10)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)

    y2 = y[:n1] if n2 >= n1 else np.resize(y, n1)
    got = es.ttest(x, y2, paired=True, alternative=alternative)
    ref = sps.ttest_rel(x, y2, alternative=alt)
    assert got.kind == "paired" and got.df == n1 - 1
    assert got.t == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)

    got = es.ttest(x, alternative=alternative)
    ref = sps.ttest_1samp(x, 0.0, alternative=alt)
    assert got.kind == "one-sample"
    assert got.t == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert got.alternative == alternative


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [1, 7, 50])
@pytest.mark.parametrize("method, sm_method", [("bonferroni", "bonferroni"), ("holm", "holm"),
                                               ("bh", "fdr_bh")])
def test_adjust_matches_statsmodels(seed, m, method, sm_method):
    rng = np.random.default_rng(seed)
    # A mix of small and uniform p-values, with a tie, as a real family would have.
    p = np.concatenate([rng.uniform(0, 0.01, m // 3), rng.uniform(0, 1, m - m // 3)])
    if m > 2:
        p[1] = p[0]
    ours = es.adjust_pvalues(p, method)
    ref = multipletests(p, alpha=0.05, method=sm_method)[1]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_adjust_matches_statsmodels_on_bh_example():
    p = np.array(BH_EXAMPLE)
    for method, sm in [("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")]:
        np.testing.assert_allclose(es.adjust_pvalues(p, method), multipletests(p, method=sm)[1])


@pytest.mark.parametrize("alternative", es.ALTERNATIVES)
@pytest.mark.parametrize("d, n, n2", [(0.2, 50, None), (0.5, 20, 35), (-0.3, 80, 60), (1.1, 6, 9)])
def test_power_matches_statsmodels(alternative, d, n, n2):
    ratio = 1.0 if n2 is None else n2 / n
    ref = TTestIndPower().power(effect_size=d, nobs1=n, alpha=0.05, ratio=ratio,
                                alternative=SM_ALT[alternative])
    assert es.power(d, n, n2=n2, alternative=alternative) == pytest.approx(ref, rel=1e-8)
    ref = TTestPower().power(effect_size=d, nobs=n, alpha=0.05, alternative=SM_ALT[alternative])
    assert es.power(d, n, paired=True, alternative=alternative) == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("alternative", es.ALTERNATIVES)
@pytest.mark.parametrize("d", [0.15, 0.2, 0.35, 0.5, 0.8, 1.3])
@pytest.mark.parametrize("alpha, target", [(0.05, 0.8), (0.01, 0.9)])
def test_required_n_matches_statsmodels(alternative, d, alpha, target):
    sm_alt = SM_ALT[alternative]
    signed = -d if alternative == "less" else d
    ref_ind = TTestIndPower().solve_power(effect_size=signed, power=target, alpha=alpha,
                                          alternative=sm_alt)
    ref_pair = TTestPower().solve_power(effect_size=signed, power=target, alpha=alpha,
                                        alternative=sm_alt)
    assert es.required_n(d, power=target, alpha=alpha, alternative=alternative) == math.ceil(
        float(ref_ind) - 1e-6)
    assert es.required_n(d, power=target, alpha=alpha, paired=True,
                         alternative=alternative) == math.ceil(float(ref_pair) - 1e-6)


@pytest.mark.parametrize("d", [0.02, 0.035])
def test_required_n_tiny_effects(d):
    # n in the tens of thousands: exercises the coarse search steps and the step back.
    ref = TTestIndPower().solve_power(effect_size=d, power=0.8, alpha=0.05)
    n = es.required_n(d)
    assert n == math.ceil(float(ref) - 1e-6)
    assert es.power(d, n) >= 0.8 > es.power(d, n - 1)


def test_required_n_bad_args():
    for bad in (0.0, float("nan")):
        with pytest.raises(ValueError):
            es.required_n(bad)
    with pytest.raises(ValueError):
        es.required_n(0.5, power=1.0)
    # The sign of d does not matter: it is read as a magnitude in the claimed direction.
    assert es.required_n(-0.5, alternative="less") == es.required_n(0.5, alternative="greater")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n1, n2", SIZES)
def test_cohens_d_matches_pingouin(seed, n1, n2):
    x, y = _data(seed, n1, n2)
    assert es.cohens_d(x, y) == pytest.approx(pg.compute_effsize(x, y, eftype="cohen"), rel=1e-12)
    # One-sample against mu = 0.
    assert es.cohens_d(x) == pytest.approx(pg.compute_effsize(x, 0, eftype="cohen"), rel=1e-12)
    # Paired: our d is d_z (pingouin's 'cohen' paired is d_av, so compare with 'cohen_dz').
    y2 = np.resize(y, n1)
    assert es.cohens_d(x, y2, paired=True) == pytest.approx(
        pg.compute_effsize(x, y2, paired=True, eftype="cohen_dz"), rel=1e-12)

    # Hedges: pingouin uses the approximation J ~ 1 - 3/(4 df - 1) with the same df;
    # the exact J differs from it by < 0.1% once df >= 8, and always lies below 1.
    g = es.cohens_d(x, y, hedges=True)
    g_pg = pg.compute_effsize(x, y, eftype="hedges")
    df = n1 + n2 - 2
    assert g == pytest.approx(g_pg, rel=1e-3 if df >= 8 else 2e-2)
    assert g == pytest.approx(es.cohens_d(x, y) * es.hedges_correction(df), rel=1e-12)
    assert abs(g) < abs(es.cohens_d(x, y))
    g1 = es.cohens_d(x, hedges=True)
    assert g1 == pytest.approx(pg.compute_effsize(x, 0, eftype="hedges"),
                               rel=1e-3 if n1 - 1 >= 8 else 2e-2)


def test_cohens_d_hand_computed():
    x = np.array([1.0, 2.0, 3.0, 4.0])   # mean 2.5, var 5/3
    y = np.array([0.0, 1.0, 2.0])        # mean 1, var 1
    pooled = math.sqrt((3 * 5 / 3 + 2 * 1) / 5)
    assert es.cohens_d(x, y) == pytest.approx(1.5 / pooled, rel=1e-12)
    assert es.cohens_d(x) == pytest.approx(2.5 / math.sqrt(5 / 3), rel=1e-12)
    diff = x[:3] - y
    assert np.all(diff == 1.0)
    assert np.isinf(es.cohens_d(x[:3], y, paired=True))  # constant differences -> sd 0


@pytest.mark.parametrize("seed", SEEDS)
def test_auc_brute_force_and_sklearn(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    # Rounded values produce many ties, which the 0.5 P(tie) term must handle.
    pos = np.round(rng.normal(0.5, 1, 23), 1)
    neg = np.round(rng.normal(0.0, 1, 31), 1)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert es.auc(pos, neg) == pytest.approx(brute, rel=1e-12)
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    assert es.auc(pos, neg) == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]), rel=1e-12)
    assert es.auc([1, 2], [3, 4]) == 0.0 and es.auc([3, 4], [1, 2]) == 1.0
    assert es.auc([1, 1], [1, 1]) == 0.5


# ----------------------------------------------------------------------------------------------
# min_effect_test
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n1, n2", SIZES)
@pytest.mark.parametrize("alternative", es.ALTERNATIVES)
def test_min_effect_zero_is_ordinary_t(seed, n1, n2, alternative):
    x, y = _data(seed, n1, n2)
    ref = sps.ttest_ind(x, y, equal_var=True, alternative=alternative).pvalue
    assert es.min_effect_test(x, y, min_d=0.0, alternative=alternative) == pytest.approx(ref, rel=1e-9)
    y2 = np.resize(y, n1)
    ref = sps.ttest_rel(x, y2, alternative=alternative).pvalue
    assert es.min_effect_test(x, y2, paired=True, alternative=alternative) == pytest.approx(ref, rel=1e-9)
    ref = sps.ttest_1samp(x, 0.0, alternative=alternative).pvalue
    assert es.min_effect_test(x, alternative=alternative) == pytest.approx(ref, rel=1e-9)


def test_min_effect_tiny_min_d_is_continuous():
    # The nct branch (min_d > 0) must join the central-t branch (min_d == 0) smoothly.
    x, y = _data(3, 25, 25)
    for alt in es.ALTERNATIVES:
        p0 = es.min_effect_test(x, y, min_d=0.0, alternative=alt)
        p_eps = es.min_effect_test(x, y, min_d=1e-9, alternative=alt)
        assert p_eps == pytest.approx(p0, rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("paired", [False, True])
def test_min_effect_monotone_in_min_d(paired):
    x, y = _data(4, 30, 30, shift=0.8, sd2=1.0)
    # Up to min_d = 5 the noncentrality reaches ~19, where scipy's nct.cdf returns NaN in the
    # tails; the implementation must stay finite and monotone there.
    grid = np.linspace(0, 5, 51)
    for alt in ("greater", "two-sided"):
        ps = [es.min_effect_test(x, y, paired=paired, min_d=m, alternative=alt) for m in grid]
        ps = np.array(ps)
        assert np.all(np.isfinite(ps)) and np.all((ps >= 0) & (ps <= 1))
        # Strictly increasing while p is informative; near 1 it saturates (two-sided is capped).
        assert np.all(np.diff(ps) >= -1e-9), (alt, ps)
        informative = ps[:-1] < 0.9
        assert informative.sum() >= 5 and np.all(np.diff(ps)[informative] > 0), (alt, ps)
    # 'less' on the mirrored data behaves exactly like 'greater'.
    for m in grid[:5]:
        assert es.min_effect_test(y, x, paired=paired, min_d=m, alternative="less") == pytest.approx(
            es.min_effect_test(x, y, paired=paired, min_d=m, alternative="greater"), rel=1e-9)
    with pytest.raises(ValueError):
        es.min_effect_test(x, y, min_d=-0.1)


@pytest.mark.parametrize("paired, alternative", [(False, "greater"), (True, "greater"),
                                                 (False, "less"), (True, "two-sided")])
def test_min_effect_size_at_boundary(paired, alternative):
    """At the null boundary (true d == min_d) the test rejects about alpha of the time."""
    rng = np.random.default_rng(12345)
    min_d, n, reps, alpha = 0.4, 15, 1500, 0.05
    true_d = -min_d if alternative == "less" else min_d
    rejections = 0
    for _ in range(reps):
        if paired:
            x, y = rng.normal(true_d, 1, n), np.zeros(n)  # differences ~ N(d, 1)
            x = x + (y := rng.normal(0, 1, n))
        else:
            x, y = rng.normal(true_d, 1, n), rng.normal(0, 1, n)
        p = es.min_effect_test(x, y, paired=paired, min_d=min_d, alternative=alternative)
        rejections += p < alpha
    rate = rejections / reps
    # Binomial SE at .05 with 1500 reps is 0.0056; +-0.022 is ~4 SE.
    assert abs(rate - alpha) < 0.022, rate


# ----------------------------------------------------------------------------------------------
# Analytic CI for d
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("paired, true_d, n", [(False, 0.5, 12), (True, 0.8, 10)])
def test_analytic_ci_coverage(paired, true_d, n):
    rng = np.random.default_rng(2024)
    reps, covered = 400, 0
    for _ in range(reps):
        if paired:
            c = rng.normal(0, 1, n)
            t = c + rng.normal(true_d, 1, n)  # differences ~ N(true_d, 1): d_z = true_d
        else:
            t, c = rng.normal(true_d, 1, n), rng.normal(0, 1, n)
        lo, hi = es.cohens_d_ci(t, c, paired=paired, confidence=0.95)
        covered += lo <= true_d <= hi
    # Exact interval: coverage 0.95; binomial SE with 400 reps is 0.011.
    assert 0.92 <= covered / reps <= 0.98, covered / reps


def _standardized(n, seed):
    a = np.random.default_rng(seed).normal(size=n)
    return (a - a.mean()) / a.std(ddof=1)


def test_analytic_ci_matches_mbess_published():
    # R: MBESS::ci.smd(smd = 0.3062566, n.1 = 50, n.2 = 26) prints
    #   Lower.Conf.Limit.smd -0.1712149, smd 0.3062566, Upper.Conf.Limit.smd 0.7816834
    # (published worked example of the exact noncentral-t interval). Build data with exactly
    # that d: two z-scored samples (pooled SD 1), the first shifted by d.
    d = 0.3062566
    x, y = _standardized(50, 1) + d, _standardized(26, 2)
    assert es.cohens_d(x, y) == pytest.approx(d, rel=1e-12)
    assert es.cohens_d_ci(x, y) == pytest.approx((-0.1712149, 0.7816834), abs=5e-7)
    # A second, rounded MBESS example: ci.smd(smd = 0.8753837, n.1 = 10, n.2 = 10) -> (-.06, 1.8).
    x, y = _standardized(10, 3) + 0.8753837, _standardized(10, 4)
    lo, hi = es.cohens_d_ci(x, y)
    assert round(lo, 2) == -0.06 and round(hi, 1) == 1.8


@pytest.mark.parametrize("seed", SEEDS)
def test_analytic_ci_inverts_min_effect_test(seed):
    """The one-sided bound of the 1-2a CI is the min_d at which the min-effect test gives p = a."""
    x, y = _data(seed, 25, 30, shift=1.0, sd2=1.0)
    for paired, yy in [(False, y), (True, y[:25])]:
        lo, hi = es.cohens_d_ci(x, yy, paired=paired, confidence=0.90)
        assert lo > 0
        assert es.min_effect_test(x, yy, paired=paired, min_d=lo) == pytest.approx(0.05, abs=1e-8)
        # Mirror for the upper bound via the 'less' alternative on swapped samples.
        lo2, hi2 = es.cohens_d_ci(yy, x, paired=paired, confidence=0.90)
        assert (lo2, hi2) == pytest.approx((-hi, -lo), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_analytic_ci_close_to_pingouin_large_n(seed):
    # pingouin's compute_esci uses a normal-theory SE; with large n it must agree with the exact
    # interval to about 0.01 (they differ by O(1/n)).
    x, y = _data(seed, 300, 300, shift=0.5, sd2=1.0)
    d = es.cohens_d(x, y)
    ref = pg.compute_esci(d, nx=300, ny=300, eftype="cohen", confidence=0.95, decimals=10)
    assert es.cohens_d_ci(x, y) == pytest.approx(tuple(ref), abs=0.01)
    # Small n: both intervals contain d and are of similar width (within 15%).
    x, y = _data(seed, 15, 15, shift=0.5, sd2=1.0)
    d = es.cohens_d(x, y)
    lo, hi = es.cohens_d_ci(x, y)
    ref = pg.compute_esci(d, nx=15, ny=15, eftype="cohen", confidence=0.95, decimals=10)
    assert lo < d < hi
    assert (hi - lo) == pytest.approx(ref[1] - ref[0], rel=0.15)


def test_analytic_ci_extreme_effects_finite():
    # Large t puts the root search where scipy's nct.cdf is NaN; bounds must stay finite/ordered.
    x = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    lo, hi = es.cohens_d_ci(x)
    assert np.isfinite(lo) and np.isfinite(hi) and lo < es.cohens_d(x) < hi
    assert es.min_effect_test(x, min_d=lo) == pytest.approx(0.025, abs=1e-8)
    # The upper bound is where the 'greater' test's p reaches 1 - 0.025.
    assert es.min_effect_test(x, min_d=hi) == pytest.approx(0.975, abs=1e-8)
    x, y = _data(0, 60, 60, shift=6.0, sd2=1.0)
    lo, hi = es.cohens_d_ci(x, y)
    assert np.isfinite(lo) and lo < es.cohens_d(x, y) < hi


def test_analytic_ci_hedges_and_bad_args():
    x, y = _data(0, 10, 12)
    lo, hi = es.cohens_d_ci(x, y)
    glo, ghi = es.cohens_d_ci(x, y, hedges=True)
    j = es.hedges_correction(20)
    assert (glo, ghi) == pytest.approx((lo * j, hi * j), rel=1e-12)
    with pytest.raises(ValueError):
        es.cohens_d_ci(x, y, method="wald")
    with pytest.raises(ValueError):
        es.cohens_d_ci(x, y, confidence=1.5)
    with pytest.raises(ValueError, match="10 values.*12"):
        es.cohens_d_ci(x, y, paired=True)


# ----------------------------------------------------------------------------------------------
# Bootstrap determinism
# ----------------------------------------------------------------------------------------------


def test_bootstrap_cis_are_deterministic():
    x, y = _data(7, 20, 25)
    for paired, yy in [(False, y), (True, y[:20])]:
        a = es.cohens_d_ci(x, yy, paired=paired, method="bootstrap", seed=3)
        b = es.cohens_d_ci(x, yy, paired=paired, method="bootstrap", seed=3)
        c = es.cohens_d_ci(x, yy, paired=paired, method="bootstrap", seed=4)
        assert a == b and a != c
        assert a[0] < es.cohens_d(x, yy, paired=paired) < a[1]
    assert es.auc_ci(x, y, seed=1) == es.auc_ci(x, y, seed=1) != es.auc_ci(x, y, seed=2)
    lo, hi = es.auc_ci(x, y)
    assert 0 <= lo < es.auc(x, y) < hi <= 1
    stat = lambda a, b: np.median(a) - np.median(b)  # noqa: E731
    assert es.bootstrap_ci(stat, x, y, seed=5) == es.bootstrap_ci(stat, x, y, seed=5)
    assert es.bootstrap_ci(stat, x, y, seed=5) != es.bootstrap_ci(stat, x, y, seed=6)


def test_bootstrap_ci_matches_scipy_and_pairs():
    x, y = _data(8, 30, 30)
    got = es.bootstrap_ci(lambda a, b: np.mean(a - b), x, y, paired=True, n_resamples=999,
                          seed=11, method="percentile")
    ref = sps.bootstrap((x, y), lambda a, b: np.mean(a - b), paired=True, vectorized=False,
                        n_resamples=999, method="percentile", rng=np.random.default_rng(11))
    assert got == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    # Paired resampling keeps pairs: a statistic that is constant on pairs has a zero-width CI.
    const = es.bootstrap_ci(lambda a, b: np.mean(a - b), x, x + 2.0, paired=True,
                            method="percentile")
    assert const == pytest.approx((-2.0, -2.0))


def test_bootstrap_d_ci_close_to_analytic():
    x, y = _data(9, 60, 60, shift=0.6, sd2=1.0)
    a = es.cohens_d_ci(x, y)
    b = es.cohens_d_ci(x, y, method="bootstrap", n_resamples=3000)
    assert b == pytest.approx(a, abs=0.1)


# ----------------------------------------------------------------------------------------------
# k selection
# ----------------------------------------------------------------------------------------------


def test_k_selection_bootstrap():
    rng = np.random.default_rng(0)
    peak = np.array([0.2, 0.5, 0.9, 0.6, 0.3])
    overlaps = peak + rng.normal(0, 0.05, size=(30, 5))
    df = es.k_selection_bootstrap(overlaps, n_resamples=500, seed=1)
    assert list(df.columns) == ["k", "mean", "ci_low", "ci_high", "p_best", "best"]
    assert df["k"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(df["mean"], overlaps.mean(axis=0))
    assert df["p_best"].sum() == pytest.approx(1.0)
    assert df.loc[df["best"], "k"].tolist() == [3]
    assert df.loc[2, "p_best"] > 0.99
    assert np.all(df["ci_low"] <= df["mean"]) and np.all(df["mean"] <= df["ci_high"])
    again = es.k_selection_bootstrap(overlaps, n_resamples=500, seed=1)
    assert again.equals(df)
    other = es.k_selection_bootstrap(overlaps, n_resamples=500, seed=2)
    assert not other[["ci_low", "ci_high"]].equals(df[["ci_low", "ci_high"]])
    # Two indistinguishable k share the wins.
    tied = np.tile([0.5, 0.5], (40, 1)) + rng.normal(0, 0.1, size=(40, 2))
    shares = es.k_selection_bootstrap(tied, n_resamples=1000)["p_best"]
    assert 0.1 < shares[0] < 0.9
    with pytest.raises(EvidenceError):
        es.k_selection_bootstrap(overlaps[:1])
    with pytest.raises(ValueError):
        es.k_selection_bootstrap(overlaps[0])


# ----------------------------------------------------------------------------------------------
# Property tests
# ----------------------------------------------------------------------------------------------

_finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False)
_sample = st.lists(_finite, min_size=3, max_size=25)


@HYP
@given(x=_sample, y=_sample, shift=st.floats(-1e3, 1e3), scale=st.floats(1e-2, 1e2),
       paired=st.booleans())
def test_d_invariant_to_shift_and_scale(x, y, shift, scale, paired):
    x, y = np.array(x), np.array(y)
    if paired:
        n = min(x.size, y.size)
        x, y = x[:n], y[:n]
        assume(np.std(x - y) > 1e-3 * (1 + np.abs(x - y).max()))
    else:
        assume(np.std(np.r_[x - x.mean(), y - y.mean()]) > 1e-3 * (1 + np.abs(np.r_[x, y]).max()))
    d = es.cohens_d(x, y, paired=paired)
    d2 = es.cohens_d(scale * x + shift, scale * y + shift, paired=paired)
    assert d2 == pytest.approx(d, rel=1e-6, abs=1e-8)
    # Swapping samples flips the sign.
    assert es.cohens_d(y, x, paired=paired) == pytest.approx(-d, rel=1e-12, abs=1e-12)


_pvals = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40)


@HYP
@given(p=_pvals, method=st.sampled_from(["bonferroni", "holm", "bh"]))
def test_adjusted_pvalues_properties(p, method):
    p = np.array(p)
    adj = es.adjust_pvalues(p, method)
    assert np.all(adj >= p - 1e-15)
    assert np.all(adj <= 1.0)
    order = np.argsort(p, kind="mergesort")
    assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in the raw p order


@HYP
@given(p=_pvals, level=st.sampled_from([0.01, 0.05, 0.1]))
def test_bonferroni_holm_bh_nesting(p, level):
    p = np.array(p)
    bonf = es.adjust_pvalues(p, "bonferroni")
    holm = es.adjust_pvalues(p, "holm")
    bh = es.adjust_pvalues(p, "bh")
    assert np.all(bonf >= holm - 1e-15) and np.all(holm >= bh - 1e-15)
    rb, rh, rbh = bonf <= level, holm <= level, bh <= level
    assert np.all(~rb | rh)   # Bonferroni-rejected => Holm-rejected
    assert np.all(~rh | rbh)  # Holm-rejected => BH-rejected
    assert np.all(~rb | rbh)


@HYP
@given(p=_pvals, extra=st.integers(0, 30), method=st.sampled_from(["bonferroni", "holm", "bh", "none"]))
def test_n_tests_padding_never_lowers(p, extra, method):
    p = np.array(p)
    base = es.adjust_pvalues(p, method)
    padded = es.adjust_pvalues(p, method, n_tests=p.size + extra)
    assert np.all(padded >= base - 1e-15)
    # Padding with n_tests is the same as appending p = 1 members.
    full = es.adjust_pvalues(np.r_[p, np.ones(extra)], method)[: p.size]
    np.testing.assert_allclose(padded, full, rtol=1e-12)


def test_adjust_nan_and_errors():
    p = np.array([0.01, np.nan, 0.04])
    adj = es.adjust_pvalues(p, "bonferroni")
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.02, 0.08])  # m = 2: NaN not counted
    np.testing.assert_allclose(es.adjust_pvalues(p, "bonferroni", n_tests=3)[[0, 2]], [0.03, 0.12])
    np.testing.assert_array_equal(es.adjust_pvalues([0.2, 0.3], "none"), [0.2, 0.3])
    with pytest.raises(ValueError, match="n_tests"):
        es.adjust_pvalues([0.1, 0.2, 0.3], n_tests=2)
    with pytest.raises(ValueError):
        es.adjust_pvalues([0.1, 1.2])
    with pytest.raises(ValueError):
        es.adjust_pvalues([0.1], method="fdr")
    assert es.adjust_pvalues([], "holm").shape == (0,)


# ----------------------------------------------------------------------------------------------
# compare() and verdict()
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("paired, n2", [(True, 24), (False, 24), (False, 31)])
@pytest.mark.parametrize("alternative", es.ALTERNATIVES)
def test_compare_fields_consistent(paired, alternative, n2):
    x, y = _data(5, 24, n2, shift=0.7)
    c = es.compare(x, y, paired=paired, alternative=alternative, min_d=0.2, alpha=0.05)
    assert (c.n_treated, c.n_control, c.paired) == (24, y.size, paired)
    assert c.mean_treated == pytest.approx(x.mean()) and c.mean_control == pytest.approx(y.mean())
    assert c.mean_difference == pytest.approx(x.mean() - y.mean())
    conf = 0.95 if alternative == "two-sided" else 0.90
    assert c.ci_confidence == pytest.approx(conf)
    if paired or n2 == 24:
        # equal sizes: the pooled d is Bonett's d, and the noncentral t is exact
        assert c.d == pytest.approx(es.cohens_d(x, y, paired=paired))
        assert c.d == pytest.approx(bonett_d(x, y)[0]) or paired
        assert c.ci_method == "analytic"
        assert (c.d_ci_low, c.d_ci_high) == pytest.approx(es.cohens_d_ci(x, y, paired=paired, confidence=conf))
        assert c.p_min_effect == pytest.approx(
            es.min_effect_test(x, y, paired=paired, min_d=0.2, alternative=alternative))
    else:
        # unequal sizes: Bonett's Welch-consistent interval and min-effect test
        assert c.d == pytest.approx(bonett_d(x, y)[0]) and c.ci_method == "bonett"
        assert (c.d_ci_low, c.d_ci_high) == pytest.approx(bonett_ci(x, y, confidence=conf))
        assert c.p_min_effect == pytest.approx(min_effect_test_bonett(x, y, min_d=0.2, alternative=alternative))
    assert c.hedges_g == pytest.approx(c.d * es.hedges_correction(24 + n2 - 2 if not paired else 23))
    tt = es.ttest(x, y, paired=paired, alternative=alternative)
    assert (c.t, c.df, c.p_value) == pytest.approx((tt.t, tt.df, tt.p))
    scipy_ref = (sps.ttest_rel(x, y, alternative=alternative) if paired
                 else sps.ttest_ind(x, y, equal_var=False, alternative=alternative))
    assert c.p_value == pytest.approx(scipy_ref.pvalue)
    assert not hasattr(c, "power")  # no post-hoc power: planning power lives in stats.planning


def test_compare_min_d_zero_matches_pooled_one_sided():
    x, y = _data(6, 26, 26)
    c = es.compare(x, y, alternative="greater", min_d=0.0)
    assert c.p_min_effect == pytest.approx(
        sps.ttest_ind(x, y, equal_var=True, alternative="greater").pvalue)


def test_compare_to_dict_json_builtins():
    x, y = _data(1, 10, 12)
    c = es.compare(x, y)
    d = c.to_dict()
    json.loads(json.dumps(d, allow_nan=False))

    def only_builtins(v):
        if isinstance(v, dict):
            return all(type(k) is str and only_builtins(w) for k, w in v.items())
        return type(v) in (int, float, str, bool)

    assert only_builtins(d)
    assert d["kind"] == "samples" and d["extra"] == {}
    assert es.Comparison.from_dict(d) == c
    with pytest.raises(Exception):
        c.d = 1.0  # frozen


def test_compare_errors():
    good = [0.1, 0.5, 0.9, 1.3]
    with pytest.raises(ValueError, match=r"treated has 4 values, control has 3"):
        es.compare(good, good[:3], paired=True)
    with pytest.raises(EvidenceError, match="control has 2 value"):
        es.compare(good, [1.0, 2.0])
    with pytest.raises(EvidenceError, match="treated has 0 value"):
        es.compare([], good)
    with pytest.raises(EvidenceError, match="non-finite"):
        es.compare([1.0, np.nan, 2.0, 3.0], good)
    with pytest.raises(EvidenceError, match="non-finite"):
        es.compare(good, [1.0, np.inf, 2.0])
    # No spread to standardise by is judged, not refused (test_identical_outcomes_are_judged).
    assert es.compare([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]).extra["degenerate"] == "both samples constant"
    assert es.compare([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], paired=True).extra["degenerate"] == "identical differences"
    # One constant group is fine for independent samples (pooled SD > 0).
    assert np.isfinite(es.compare([1.0, 1.0, 1.0], [0.0, 0.5, 0.2]).d)
    with pytest.raises(ValueError):
        es.compare(good, good, alternative="bigger")
    with pytest.raises(ValueError):
        es.compare(good, good, min_d=-0.5)
    with pytest.raises(ValueError):
        es.compare(good, good, ci_method="magic")
    assert issubclass(EvidenceError, Exception)


def test_verdict_rule():
    rng = np.random.default_rng(0)
    strong = es.compare(rng.normal(1.5, 1, 40), rng.normal(0, 1, 40), min_d=0.3)
    assert strong.p_value < 0.05 and strong.p_min_effect < 0.05
    assert es.verdict(strong, strong.p_value, strong.p_min_effect) == "supported"
    # (a) passes but (b) fails -> not supported (inconclusive: no refutation p given); and vice versa.
    assert es.verdict(strong, 0.01, 0.2) == "inconclusive"
    assert es.verdict(strong, 0.2, 0.01) == "inconclusive"
    assert es.verdict(strong, 0.05, 0.01) == "inconclusive"  # strict <
    assert es.verdict(strong, float("nan"), 0.01) == "inconclusive"
    assert es.verdict(strong, 0.2, 0.2, 0.01) == "refuted"
    assert es.verdict(strong, 0.2, 0.2, 0.05) == "inconclusive"  # strict <
    # A huge threshold is not cleared: the CI lower bound lies below min_d; its upper bound does too: refuted.
    far = es.compare(rng.normal(1.5, 1, 40), rng.normal(0, 1, 40), min_d=3.0)
    assert far.d_ci_low < 3.0 and far.d_ci_high < 3.0
    assert es.verdict(far, far.p_value, far.p_min_effect) == "inconclusive"
    assert es.verdict(far, far.p_value, far.p_min_effect, far.p_refute) == "refuted"
    # The wrong direction is never supported; shown to point the other way, it is refuted.
    wrong = es.compare(rng.normal(0, 1, 40), rng.normal(1.5, 1, 40), alternative="greater")
    assert es.verdict(wrong, wrong.p_value, wrong.p_min_effect) == "inconclusive"
    assert es.verdict(wrong, wrong.p_value, wrong.p_min_effect, wrong.p_refute) == "refuted"
    less = es.compare(rng.normal(0, 1, 40), rng.normal(1.5, 1, 40), alternative="less", min_d=0.3)
    assert es.verdict(less, less.p_value, less.p_min_effect) == "supported"
    assert less.d_ci_high < -0.3


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("paired, n2", [(False, 30), (True, 30), (False, 45)])
def test_refute_p_is_equivalent_to_the_ci_upper_bound(seed, paired, n2):
    """p_refute < alpha  <=>  the one-sided (1-alpha) upper bound lies below min_d ('greater'), the lower
    bound above -min_d ('less'); and a claim is never both supported and refuted (p_min + p_refute >= 1)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0.3, 1, 30), rng.normal(0, 1, n2)
    for min_d in np.linspace(0, 1.2, 13):
        g = es.compare(x, y, paired=paired, min_d=float(min_d))
        assert (g.p_refute < g.alpha) == (g.d_ci_high < min_d)
        assert g.p_min_effect + g.p_refute == pytest.approx(1.0, abs=1e-9)
        low = es.compare(x, y, paired=paired, min_d=float(min_d), alternative="less")
        assert (low.p_refute < low.alpha) == (low.d_ci_low > -min_d)


@pytest.mark.parametrize("seed", SEEDS)
def test_verdict_min_effect_equivalent_to_ci_bound(seed):
    """(b) p_min_effect < alpha  <=>  the one-sided (1-alpha) lower bound clears min_d."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0.7, 1, 30), rng.normal(0, 1, 30)
    for min_d in np.linspace(0, 1.2, 13):
        c = es.compare(x, y, min_d=float(min_d))
        assert (c.p_min_effect < c.alpha) == (c.d_ci_low > min_d)


def test_identical_outcomes_are_judged():
    """Identical paired outcomes (a patch that changed nothing) are a verdict: d = 0, p = 1."""
    same = [0.2, 0.7, 0.1, 0.9, 0.4]
    for alt in ("greater", "less", "two-sided"):
        c = es.compare(same, same, paired=True, alternative=alt, min_d=0.2)
        assert (c.d, c.p_value, c.p_min_effect) == (0.0, 1.0, 1.0)
        assert c.d_ci_low == -np.inf and c.d_ci_high == np.inf
        # no scale to measure d in: neither beyond nor within min_d can be shown
        assert np.isnan(c.p_refute)
        assert es.verdict(c, c.p_value, c.p_min_effect, c.p_refute) == "inconclusive"
    c = es.compare([3.0] * 4, [3.0] * 5)
    assert (c.d, c.p_value) == (0.0, 1.0)


def test_identical_nonzero_differences_use_the_exact_sign_and_rank_tests():
    base = np.arange(12, dtype=float)
    c = es.compare(base + 1.0, base, paired=True, alternative="greater", min_d=0.5)
    assert c.d == np.inf and c.p_value == c.p_min_effect == 0.5 ** 12
    assert es.verdict(c, c.p_value, c.p_min_effect) == "supported"
    against = es.compare(base + 1.0, base, paired=True, alternative="less")
    # every unit against the claimed direction: refuted by the same exact sign test
    assert against.p_value == 1.0 and against.p_refute == 0.5 ** 12
    assert es.verdict(against, against.p_value, against.p_min_effect, against.p_refute) == "refuted"
    assert es.compare(base + 1.0, base, paired=True, alternative="two-sided").p_value == 2 * 0.5 ** 12
    # three identical differences are not enough: 0.125 > alpha
    c3 = es.compare([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], paired=True)
    assert c3.p_value == 0.125 and es.verdict(c3, c3.p_value, c3.p_min_effect, c3.p_refute) == "inconclusive"
    # independent constant samples: every treated above every control, 1 / C(7, 3)
    ci = es.compare([2.0] * 3, [1.0] * 4, alternative="greater")
    assert ci.d == np.inf and ci.p_value == pytest.approx(1 / 35)
    assert es.Comparison.from_dict(ci.to_dict()) == ci
