"""emocheck.stats.directions: the treated direction against K control directions (random effect)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as st

from emocheck import stats
from emocheck.errors import EvidenceError
from emocheck.stats.directions import direction_rank, fit_additive


def _design(seed, n=30, k=12, tau=0.5, effect=0.0, nan_frac=0.0):
    r = np.random.default_rng(seed)
    a = r.normal(0, 1, n)
    c = a[:, None] + r.normal(0, tau, k)[None, :] + r.normal(0, 1, (n, k))
    if nan_frac:
        c[r.random((n, k)) < nan_frac] = np.nan
    return a + effect + r.normal(0, 1, n), c


def test_additive_fit_matches_statsmodels_ols_with_nan_cells():
    _, c = _design(0, n=15, k=6, nan_frac=0.3)
    mu, a, b, resid_var, df = fit_additive(c)
    rows, cols = np.nonzero(~np.isnan(c))
    frame = pd.DataFrame({"y": c[rows, cols], "p": rows.astype(str), "d": cols.astype(str)})
    ols = smf.ols("y ~ C(p) + C(d)", data=frame).fit()
    fitted = mu + a[rows] + b[cols]
    np.testing.assert_allclose(fitted, ols.fittedvalues.to_numpy(), atol=1e-8)
    assert df == ols.df_resid
    assert resid_var == pytest.approx(ols.mse_resid, rel=1e-8)
    assert abs(b.sum()) < 1e-10 and abs(a.sum()) < 1e-10


def test_complete_table_fit_is_row_and_column_means():
    _, c = _design(1)
    mu, a, b, _, _ = fit_additive(c)
    np.testing.assert_allclose(mu + a, c.mean(axis=1) - 0 * b.mean(), atol=1e-10)
    np.testing.assert_allclose(b, c.mean(axis=0) - c.mean(), atol=1e-10)


def test_without_direction_variance_it_is_the_paired_t_against_the_row_means():
    r = np.random.default_rng(2)
    n, k = 25, 10
    e = r.normal(0, 1, (n, k))
    e -= e.mean(axis=0, keepdims=True)  # identical column means: fitted direction effects are 0
    a = r.normal(0, 1, n)
    c = a[:, None] + e
    t = a + 0.4 + r.normal(0, 1, n)
    comp = stats.compare_directions(t, c)
    ref = st.ttest_rel(t, c.mean(axis=1), alternative="greater")
    assert comp.extra["tau_direction"] == 0
    assert comp.df == n - 1
    assert comp.t == pytest.approx(ref.statistic, rel=1e-10)
    assert comp.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert comp.mean_difference == pytest.approx(np.mean(t - c.mean(axis=1)), rel=1e-12)


@pytest.mark.parametrize("null, share", [("population_mean", lambda k: 1 / k), ("exchangeable", lambda k: 1 + 1 / k)])
def test_direction_variance_enters_the_standard_error_with_satterthwaite_df(null, share):
    """population_mean: SE^2 = s^2/n + tau^2/K (the average control direction); exchangeable (the
    default): SE^2 = s^2/n + tau^2 (1 + 1/K) (the treated direction as one more draw)."""
    t, c = _design(3, tau=2.0, effect=1.0)
    comp = stats.compare_directions(t, c, null=null)
    n, k = c.shape
    d_i = t - c.mean(axis=1)
    col = c.mean(axis=0)
    resid = c - c.mean(axis=1, keepdims=True) - col[None, :] + c.mean()
    mse = (resid**2).sum() / ((n - 1) * (k - 1))
    tau2 = max(0.0, col.var(ddof=1) - mse / n)
    a, b = d_i.var(ddof=1) / n, tau2 * share(k)
    assert comp.extra["tau_direction"] == pytest.approx(np.sqrt(tau2), rel=1e-9)
    assert comp.extra["direction_null"] == null
    assert comp.t == pytest.approx(d_i.mean() / np.sqrt(a + b), rel=1e-9)
    assert comp.df == pytest.approx((a + b) ** 2 / (a**2 / (n - 1) + b**2 / (k - 1)), rel=1e-9)
    assert n - 1 > comp.df >= k - 1
    sigma1 = np.sqrt(np.mean(np.var(t[:, None] - c, axis=0, ddof=1)) + tau2)
    assert comp.d == pytest.approx(d_i.mean() / sigma1, rel=1e-9)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_interval_inverts_the_min_effect_test(alternative):
    for seed in range(15):
        t, c = _design(10 + seed, effect=0.8 if alternative != "less" else -0.8, nan_frac=0.2)
        comp = stats.compare_directions(t, c, min_d=0.3, alternative=alternative)
        if alternative == "greater":
            assert (comp.p_min_effect < 0.05) == (comp.d_ci_low > 0.3)
        elif alternative == "less":
            assert (comp.p_min_effect < 0.05) == (comp.d_ci_high < -0.3)
        assert comp.d_ci_low < comp.d < comp.d_ci_high


def test_rank_and_permutation_p_by_hand():
    t = np.array([1.0, 2.0, 3.0])
    c = np.array([[0.0, 5.0, 1.0, np.nan], [1.0, 5.0, 2.0, 9.0], [2.0, 5.0, 3.0, 9.0]])
    rank, p, adv = direction_rank(t, c, "greater")
    np.testing.assert_allclose(adv, [1.0, -3.0, 0.0, -6.5])
    # directions at least as good as treated (advantage <= 0): 3 of 4
    assert rank == 4 and p == pytest.approx(4 / 5)
    rank_l, p_l, _ = direction_rank(t, c, "less")
    assert rank_l == 1 + 2 and p_l == pytest.approx(3 / 5)
    _, p2, _ = direction_rank(t, c, "two-sided")
    assert p2 == pytest.approx(min(1.0, 2 * min(4 / 5, 3 / 5)))


def test_shift_and_scale_invariance_and_builtins():
    t, c = _design(4, nan_frac=0.25, effect=0.5)
    a = stats.compare_directions(t, c, min_d=0.2)
    b = stats.compare_directions(3 * t + 7, 3 * c + 7, min_d=0.2)
    for key in ("d", "t", "df", "p_value", "p_min_effect", "d_ci_low", "d_ci_high"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-8)
    data = a.to_dict()
    assert data["kind"] == "directions" and isinstance(data["extra"]["direction_rank"], int)
    assert stats.Comparison.from_dict(data) == a


def test_bad_input_is_one_clear_error():
    t, c = _design(5)
    with pytest.raises(EvidenceError, match="2-D"):
        stats.compare_directions(t, c[:, 0])
    with pytest.raises(EvidenceError, match="n_prompts"):
        stats.compare_directions(t[:-1], c)
    with pytest.raises(EvidenceError, match="at least 2"):
        stats.compare_directions(t, c[:, :1])
    bad = c.copy()
    bad[3] = np.nan
    with pytest.raises(EvidenceError, match=r"prompts \[3\] have no control direction"):
        stats.compare_directions(t, bad)
    bad = c.copy()
    bad[1:, 2] = np.nan
    with pytest.raises(EvidenceError, match=r"directions \[2\] were run on fewer than 2"):
        stats.compare_directions(t, bad)
    bad = c.copy()
    bad[0, 0] = np.inf
    with pytest.raises(EvidenceError, match="inf"):
        stats.compare_directions(t, bad)
    t_bad = t.copy()
    t_bad[0] = np.nan
    with pytest.raises(EvidenceError, match="treated contains non-finite"):
        stats.compare_directions(t_bad, c)
    with pytest.raises(ValueError, match="alternative"):
        stats.compare_directions(t, c, alternative="bigger")
    with pytest.raises(EvidenceError, match="null must be one of 'exchangeable', 'population_mean'"):
        stats.compare_directions(t, c, null="average")
