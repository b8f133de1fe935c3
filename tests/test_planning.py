"""emocheck.stats.power (rule planning) and emocheck.stats.planning: planning power, adjusted bound, reasons."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.power import TTestIndPower, TTestPower

from emocheck import stats
from emocheck.stats.planning import decision_bound, effective_level, not_supported_reason, plan
from emocheck.stats.power import detectable_d, power_min_effect, required_n_min_effect


@pytest.mark.parametrize("alternative, sm_alt", [("greater", "larger"), ("two-sided", "two-sided")])
@pytest.mark.parametrize("d, n", [(0.3, 48), (0.5, 20)])
def test_min_d_zero_is_statsmodels_power(alternative, sm_alt, d, n):
    assert power_min_effect(d, n, paired=True, alternative=alternative) == pytest.approx(
        TTestPower().power(d, n, 0.05, alternative=sm_alt), rel=1e-6)
    assert power_min_effect(d, n, alternative=alternative) == pytest.approx(
        TTestIndPower().power(d, n, 0.05, ratio=1.0, alternative=sm_alt), rel=1e-6)


def test_less_mirrors_greater():
    assert power_min_effect(0.5, 40, min_d=0.2, paired=True, alternative="less") == pytest.approx(
        power_min_effect(0.5, 40, min_d=0.2, paired=True, alternative="greater"))


def test_min_effect_power_by_hand_and_the_issue_numbers():
    n, d, min_d, level = 48, 0.6, 0.2, 0.05 / 8
    crit = st.nct.isf(level, n - 1, min_d * math.sqrt(n))
    assert power_min_effect(d, n, min_d=min_d, paired=True, alpha=level) == pytest.approx(
        st.nct.sf(crit, n - 1, d * math.sqrt(n)), rel=1e-9)
    # issue 8: with n = 200 pairs, min_d = 0.2 and Holm over 56 claims, 80% power needs d of about 0.49
    assert detectable_d(199.0, math.sqrt(200), min_d=0.2, alpha=0.05 / 56) == pytest.approx(0.49, abs=0.005)


def test_required_n_is_the_smallest_n_with_the_power():
    n = required_n_min_effect(0.5, min_d=0.2, alpha=0.05 / 10, paired=True)
    assert power_min_effect(0.5, n, min_d=0.2, alpha=0.005, paired=True) >= 0.8
    assert power_min_effect(0.5, n - 1, min_d=0.2, alpha=0.005, paired=True) < 0.8
    assert required_n_min_effect(0.2, min_d=0.2) is None  # no n detects d = min_d
    # min_d = 0 and alpha .05 two-sided independent: Cohen's table value for d = 0.5 (64 per group)
    assert required_n_min_effect(0.5, alternative="two-sided") == 64


def test_detectable_d_has_the_power():
    d = detectable_d(47.0, math.sqrt(48), min_d=0.2, alpha=0.01)
    assert power_min_effect(d, 48, min_d=0.2, alpha=0.01, paired=True) == pytest.approx(0.8, abs=1e-4)


def _row(comp, p_adj, pm_adj, family=4, correction="holm"):
    row = {"verdict": stats.verdict(comp, p_adj, pm_adj), "alpha": comp.alpha, "alternative": comp.alternative,
           "min_d": comp.min_d, "d_ci_low": comp.d_ci_low, "d_ci_high": comp.d_ci_high, "p_value": comp.p_value,
           "p_min_effect": comp.p_min_effect, "p_adjusted": p_adj, "p_min_effect_adjusted": pm_adj,
           "correction": correction, "family_declared": family}
    row["d_bound_adjusted"] = decision_bound(comp.to_dict(), pm_adj)
    return row


def test_adjusted_bound_is_the_interval_at_the_corrected_level():
    r = np.random.default_rng(0)
    x = r.normal(0.7, 1, 40)
    comp = stats.compare(x, np.zeros(40), paired=True, min_d=0.2)
    # no correction: the bound is the raw one-sided bound (the lower end of the 90% interval)
    assert decision_bound(comp.to_dict(), comp.p_min_effect) == pytest.approx(comp.d_ci_low, rel=1e-8)
    # Bonferroni over 10: the lower end of the 1 - 2 * alpha / 10 interval
    p_adj = min(1.0, 10 * comp.p_min_effect)
    assert effective_level(comp.to_dict(), p_adj) == pytest.approx(0.005)
    lo, _ = stats.cohens_d_ci(x, np.zeros(40), paired=True, confidence=0.99)
    assert decision_bound(comp.to_dict(), p_adj) == pytest.approx(lo, rel=1e-8)


@pytest.mark.parametrize("kind", ["paired", "unequal", "directions", "null"])
def test_adjusted_bound_clears_min_d_iff_the_corrected_p_does(kind):
    r = np.random.default_rng(1)
    for _ in range(25):
        e = r.uniform(0.2, 1.2)
        null = None
        if kind == "paired":
            comp = stats.compare(r.normal(e, 1, 30), np.zeros(30), paired=True, min_d=0.2)
        elif kind == "unequal":
            comp = stats.compare(r.normal(e, 1.5, 40), r.normal(0, 1, 80), min_d=0.2)
        elif kind == "directions":
            a = r.normal(0, 1, 30)
            comp = stats.compare_directions(a + e + r.normal(0, 1, 30), a[:, None] + r.normal(0, 1, (30, 10)), min_d=0.2)
        else:
            null = r.normal(0, 1, 499)
            comp = stats.compare_to_null(2 + 3 * e, null, min_d=0.5)
        m = int(r.integers(1, 12))
        p_adj = min(1.0, m * comp.p_min_effect)
        bound = decision_bound(comp.to_dict(), p_adj, null)
        if abs(bound - comp.min_d) > 1e-6:
            assert (bound > comp.min_d) == (p_adj < 0.05), (kind, bound, p_adj)


def test_two_sided_bound_is_on_the_side_of_d_and_reasons():
    r = np.random.default_rng(2)
    comp = stats.compare(r.normal(-0.9, 1, 40), np.zeros(40), paired=True, min_d=0.2, alternative="two-sided")
    b = decision_bound(comp.to_dict(), comp.p_min_effect)
    assert comp.d < b < 0  # an upper bound: the end of the interval nearest zero
    # raw interval clears min_d but Bonferroni over 200 claims does not
    comp = stats.compare(r.normal(0.55, 1, 40), np.zeros(40), paired=True, min_d=0.2)
    assert comp.d_ci_low > 0.2
    row = _row(comp, min(1, 200 * comp.p_value), min(1, 200 * comp.p_min_effect), family=200)
    assert row["verdict"] == "inconclusive"
    assert "raw interval clears min_d = 0.2, but after holm over 200 declared claims" in not_supported_reason(row)
    assert row["d_bound_adjusted"] < 0.2
    row = _row(comp, comp.p_value, comp.p_min_effect, family=1)
    assert row["verdict"] == "supported" and not_supported_reason(row) == ""
    weak = stats.compare(r.normal(0.1, 1, 40), np.zeros(40), paired=True, min_d=0.2)
    assert not_supported_reason(_row(weak, weak.p_value, weak.p_min_effect)).startswith("raw interval does not clear")


def test_plan_columns_per_kind():
    r = np.random.default_rng(3)
    comp = stats.compare(r.normal(0.5, 1, 48), np.zeros(48), paired=True, min_d=0.2)
    p = plan(comp.to_dict(), 8)
    assert p["planning_level"] == pytest.approx(0.05 / 8)
    assert p["detectable_d_80"] == pytest.approx(detectable_d(47.0, math.sqrt(48), min_d=0.2, alpha=0.05 / 8))
    assert p["n_required_excess_0.3"] == required_n_min_effect(0.5, min_d=0.2, alpha=0.05 / 8, paired=True)
    null = stats.compare_to_null(3.0, r.normal(0, 1, 99))
    pn = plan(null.to_dict(), 10)
    assert pn["null_draws_needed"] == 200  # p = 1 / (K + 1) < 0.005 needs K >= 200
    assert 1 / (pn["null_draws_needed"] + 1) < 0.005 <= 1 / pn["null_draws_needed"]
    a = r.normal(0, 1, 30)
    dirs = stats.compare_directions(a + 1 + r.normal(0, 1, 30), a[:, None] + r.normal(0, 1, (30, 10)))
    pd_ = plan(dirs.to_dict(), 2)
    assert 0 < pd_["detectable_d_80"] < 2 and pd_["n_required_excess_0.2"] is None
