"""emocheck.stats.nulls: an observed statistic against K null draws."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from emocheck import stats
from emocheck.errors import EvidenceError
from emocheck.stats.nulls import mc_pvalue


def test_monte_carlo_p_by_hand_with_ties():
    null = np.array([0.0, 1.0, 2.0, 2.0, 3.0])
    assert mc_pvalue(2.0, null, "greater") == pytest.approx((1 + 3) / 6)
    assert mc_pvalue(2.0, null, "less") == pytest.approx((1 + 4) / 6)
    assert mc_pvalue(2.0, null, "two-sided") == 1.0
    assert mc_pvalue(9.0, null, "two-sided") == pytest.approx(2 / 6)
    # shifted by 1: draws + 1 >= 2.5 are 2, 2, 3 -> +1 each -> 3, 3, 4
    assert mc_pvalue(2.5, null, "greater", shift=1.0) == pytest.approx((1 + 3) / 6)


def test_compare_to_null_numbers():
    r = np.random.default_rng(0)
    null = r.normal(1.0, 2.0, 99)
    comp = stats.compare_to_null(7.0, null, min_d=1.0)
    m, s = null.mean(), null.std(ddof=1)
    assert comp.d == pytest.approx((7.0 - m) / s)
    assert comp.p_value == pytest.approx((1 + np.sum(null >= 7.0)) / 100)
    assert comp.p_min_effect == pytest.approx((1 + np.sum(null + s >= 7.0)) / 100)
    assert comp.n_treated == 1 and comp.n_control == 99 and comp.kind == "vs_null"
    t_pred = (7.0 - m) / (s * np.sqrt(1 + 1 / 99))
    assert comp.extra["p_parametric"] == pytest.approx(st.t.sf(t_pred, 98))
    assert comp.extra["p_smallest_possible"] == pytest.approx(0.01)
    assert stats.Comparison.from_dict(comp.to_dict()) == comp


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_interval_inverts_the_shifted_test(alternative):
    r = np.random.default_rng(1)
    for _ in range(200):
        null = r.normal(0, 1, 199)
        x = r.normal(2.0 if alternative == "greater" else -2.0, 1.0)
        min_d = float(r.uniform(0, 2))
        comp = stats.compare_to_null(x, null, min_d=min_d, alternative=alternative)
        if alternative == "greater":
            assert (comp.p_min_effect < 0.05) == (comp.d_ci_low > min_d)
        else:
            assert (comp.p_min_effect < 0.05) == (comp.d_ci_high < -min_d)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_refute_p_agrees_with_the_rank_interval(alternative):
    """p_refute < alpha <=> the observation lies below the null shifted by min_d SDs at the interval's level:
    the upper end of the 1 - 2 alpha rank interval below min_d ('greater'; mirrored for 'less'); never both
    supported and refuted."""
    r = np.random.default_rng(2)
    sign = 1.0 if alternative == "greater" else -1.0
    for _ in range(200):
        null = r.normal(0, 1, 199)
        x = sign * r.normal(0.5, 1.5)
        min_d = float(r.uniform(0, 3))
        comp = stats.compare_to_null(x, null, min_d=min_d, alternative=alternative)
        if alternative == "greater":
            assert (comp.p_refute < 0.05) == (comp.d_ci_high < min_d)
        else:
            assert (comp.p_refute < 0.05) == (comp.d_ci_low > -min_d)
        assert not (comp.p_refute < 0.05 and comp.p_min_effect < 0.05)


def test_too_few_draws_give_infinite_bounds_and_no_support():
    comp = stats.compare_to_null(100.0, np.arange(10.0))
    assert comp.p_value == pytest.approx(1 / 11)
    assert comp.d_ci_low == -np.inf and comp.d_ci_high == np.inf
    assert stats.verdict(comp, comp.p_value, comp.p_min_effect, comp.p_refute) == "inconclusive"


def test_bad_input_is_one_clear_error():
    with pytest.raises(EvidenceError, match="at least 2"):
        stats.compare_to_null(1.0, [0.5])
    with pytest.raises(EvidenceError, match="zero SD"):
        stats.compare_to_null(1.0, [0.5, 0.5, 0.5])   # a constant null the observation is not part of
    with pytest.raises(EvidenceError, match="non-finite"):
        stats.compare_to_null(1.0, [0.5, np.nan, 0.1])
    with pytest.raises(EvidenceError, match="finite"):
        stats.compare_to_null(np.inf, [0.5, 0.2, 0.1])
    with pytest.raises(EvidenceError, match="one number"):
        stats.compare_to_null([1.0, 2.0], [0.5, 0.2, 0.1])
    with pytest.raises(EvidenceError, match="1-D"):
        stats.compare_to_null(1.0, [[0.5, 0.2], [0.1, 0.3]])
    with pytest.raises(ValueError, match="min_d"):
        stats.compare_to_null(1.0, [0.5, 0.2, 0.1], min_d=-1)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_a_tie_with_a_degenerate_null_is_not_supported(alternative):
    """Every draw equals the observation (zero spread): p = p(d>min_d) = 1, d = 0, unbounded interval."""
    comp = stats.compare_to_null(0.0, np.zeros(199), alternative=alternative, min_d=0.0)
    assert comp.p_value == 1.0 and comp.p_min_effect == 1.0
    assert comp.d == 0.0 and comp.d_ci_low == -np.inf and comp.d_ci_high == np.inf
    assert comp.extra["null_tie"] is True and comp.extra["p_parametric"] == 1.0
    assert stats.verdict(comp, comp.p_value, comp.p_min_effect, comp.p_refute) == "inconclusive"
    assert stats.compare_to_null(0.3, [0.1, 0.2, 0.5]).extra["null_tie"] is False


def test_a_tie_goes_through_the_report_and_its_forest_plot(tmp_path):
    """An unbounded interval (a tie, or too few draws) is drawn to the plot's edge, not an error."""
    from emocheck.plugin import report as rep

    comp = stats.compare_to_null(0.0, np.zeros(199), alternative="greater", min_d=0.0)
    r = {"claim_id": "h/test_l.py::test_b[x]", "short_id": "test_b", "module": "h/test_l.py", "family": "fam",
         "family_size": 1, "statement": "beats words", "model": "m", "params": {}, "status": "ok", "error": None,
         "metrics": {}, "settings": {"paired": False, "alternative": "greater", "min_d": 0.0, "alpha": 0.05,
                                     "ci_method": "analytic", "n_resamples": 200, "seed": 0},
         "comparison": comp.to_dict(), "samples": None}
    rows, families = rep.finalize([r], "holm")
    assert rows[0]["verdict"] == "inconclusive"
    paths = rep.write_statistics([r], rows, families, {"correction": "holm", "alpha": 0.05}, tmp_path)
    assert any(k.startswith("forest_plot:") for k in paths)


# ----------------------------------------------------------------------------------------------
# Null draws sized to the family
# ----------------------------------------------------------------------------------------------


def test_null_draws_follow_the_family_size():
    from emocheck.stats.nulls import null_draws_for, unsupportable_reason

    for m in (1, 3, 6, 12, 80):
        k = null_draws_for(m, 0.05)
        assert (k + 1) >= 2 * m / 0.05 and k < 2 * m / 0.05
        # an observation beyond every draw is supported after Holm over m claims
        assert m / (k + 1) < 0.05 and unsupportable_reason(m, k, 0.05) is None
    # the review's two cases: Q2 with three models at K = 200, circuits at smoke at K = 39
    assert "0.0597 >= alpha 0.05" in unsupportable_reason(12, 200, 0.05)
    assert "0.075 >= alpha 0.05" in unsupportable_reason(3, 39, 0.05)


def test_q2_and_circuits_draw_enough_for_their_families():
    from dataclasses import replace

    from emocheck.alignment.run import alignment_config, family_size, judged_null_draws
    from emocheck.circuits.experiment import circuit_null_draws, settings
    from emocheck.profiles import get_profile
    from emocheck.stats.nulls import unsupportable_reason

    three = replace(get_profile("ci"), models=("gpt2", "pythia-160m", "gpt-neo-125m"))
    assert family_size(three) == 12 and judged_null_draws(three) == 479
    assert alignment_config(three).group_draws == 1000                   # the default where already larger
    assert unsupportable_reason(12, judged_null_draws(three), 0.05) is None
    smoke = get_profile("smoke")
    assert settings(smoke)["random"] == circuit_null_draws(smoke) == 119
    assert unsupportable_reason(3 * len(smoke.models), circuit_null_draws(smoke), 0.05) is None
    assert circuit_null_draws(get_profile("ci")) == 239
