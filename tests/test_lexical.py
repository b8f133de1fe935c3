"""The lexical baseline and the paired AUC comparisons: DeLong against scikit-learn's AUC and a
bootstrap, both tests calibrated by simulation (planted null at most alpha, planted effect detected)."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from emocheck.errors import ConfigError
from emocheck.representations import lexical


def test_lexical_baseline_finds_keywords_and_is_memoised():
    rng = np.random.default_rng(0)
    filler = ["the box", "a note", "our call", "the bill", "my order"]
    train = [f"{'thanks for' if i % 2 else 'about'} {filler[i % 5]} {rng.integers(100)}" for i in range(60)]
    y = [i % 2 for i in range(60)]
    test = ["thanks for the box", "about the box", "thanks for our call", "about my order"]
    s = lexical.lexical_scores(train, y, test)
    assert s[0] > s[1] and s[2] > s[3]
    lexical._MEMO.clear()
    again = lexical.lexical_scores(train, y, test)
    np.testing.assert_allclose(s, again)
    assert len(lexical._MEMO) == 1
    with pytest.raises(ConfigError, match="both groups"):
        lexical.lexical_scores(train, [1] * 60, test)


def _pair(rng, m, n, shift_a, shift_b, rho=0.5):
    y = np.r_[np.ones(m), np.zeros(n)].astype(bool)
    z = rng.standard_normal(m + n)
    a = np.sqrt(rho) * z + np.sqrt(1 - rho) * rng.standard_normal(m + n) + shift_a * y
    b = np.sqrt(rho) * z + np.sqrt(1 - rho) * rng.standard_normal(m + n) + shift_b * y
    return a, b, y


def test_delong_aucs_match_sklearn_and_se_matches_bootstrap():
    rng = np.random.default_rng(1)
    a, b, y = _pair(rng, 80, 120, 1.0, 0.5)
    res = lexical.delong(a, b, y)
    assert res["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert res["auc_b"] == pytest.approx(roc_auc_score(y, b))
    # stratified bootstrap of the AUC difference (AUC by Mann-Whitney ranks, checked against sklearn above)
    idx = np.stack([np.r_[rng.choice(np.flatnonzero(y), y.sum()), rng.choice(np.flatnonzero(~y), (~y).sum())]
                    for _ in range(2000)], axis=1)
    yb = y[idx[:, 0]]
    boot = lexical._auc_columns(a[idx], yb) - lexical._auc_columns(b[idx], yb)
    assert lexical._auc_columns(a[:, None], y)[0] == pytest.approx(res["auc_a"])
    assert res["se"] == pytest.approx(np.std(boot), rel=0.12)
    same = lexical.delong(a, a, y)
    assert same["delta"] == 0 and same["se"] == 0 and same["p_greater"] == 0.5


def test_delong_and_permutation_are_calibrated_under_a_planted_null():
    """Two exchangeable scorers of equal AUC; unequal groups (40 vs 80). 400 simulations: the rejection
    rate at 0.05 must lie within 0.05 +- 3 Monte Carlo SE (0.011)."""
    rng = np.random.default_rng(2)
    rej_delong = rej_perm = 0
    reps = 400
    for k in range(reps):
        a, b, y = _pair(rng, 40, 80, 0.8, 0.8)
        rej_delong += lexical.delong(a, b, y)["p_greater"] < 0.05
        observed, null = lexical.paired_auc_null(a, b, y, draws=199, seed=k)
        rej_perm += lexical.permutation_p(observed, null) < 0.05
    mc = 3 * np.sqrt(0.05 * 0.95 / reps)
    assert rej_delong / reps < 0.05 + mc, rej_delong / reps
    assert rej_perm / reps < 0.05 + mc, rej_perm / reps
    assert rej_perm / reps > 0.05 - mc        # not trivially conservative


def test_both_tests_detect_a_planted_difference():
    rng = np.random.default_rng(3)
    hits_delong = hits_perm = 0
    for k in range(100):
        a, b, y = _pair(rng, 60, 120, 1.5, 0.5)
        hits_delong += lexical.delong(a, b, y)["p_greater"] < 0.05
        observed, null = lexical.paired_auc_null(a, b, y, draws=199, seed=k)
        hits_perm += lexical.permutation_p(observed, null) < 0.05
    assert hits_delong >= 90 and hits_perm >= 90, (hits_delong, hits_perm)


def test_permutation_null_observed_is_the_auc_difference():
    rng = np.random.default_rng(4)
    a, b, y = _pair(rng, 30, 30, 1.0, 0.0)
    observed, null = lexical.paired_auc_null(a, b, y, draws=500)
    assert observed == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert abs(null.mean()) < 0.02 and len(null) == 500


def test_mask_triggers():
    assert lexical.mask_triggers(["Thanks a lot, Sam."], ["Thanks a lot"]) == ["___, Sam."]
    with pytest.raises(ConfigError, match="not in"):
        lexical.mask_triggers(["Hello"], ["Bye"])


def test_beats_words_tie_rule_is_calibrated_when_both_scorers_separate_perfectly():
    """Well-separated groups (shift 5 SD, 20 vs 40): both scorers often separate perfectly, every paired
    swap then leaves the AUC difference at 0 and the permutation null has zero spread. The tie rule
    (stats.compare_to_null: p = 1, inconclusive) must give no error, no support for ties, and keep the
    rejection rate of the whole verdict path at most alpha + 3 MC SE under this planted null; a perfect
    direction against imperfect words is still detected."""
    from emocheck import stats

    rng = np.random.default_rng(5)
    reps, ties, rejected = 300, 0, 0
    for k in range(reps):
        a, b, y = _pair(rng, 20, 40, 5.0, 5.0)
        observed, null = lexical.paired_auc_null(a, b, y, draws=199, seed=k)
        comp = stats.compare_to_null(observed, null, alternative="greater", min_d=0.0)
        verdict = stats.verdict(comp, comp.p_value, comp.p_min_effect, comp.p_refute)
        if comp.extra["null_tie"]:
            ties += 1
            assert observed == 0 and verdict == "inconclusive"
        rejected += verdict == "supported"
    assert ties > reps // 4, ties                     # the degenerate case really occurs here
    assert rejected / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps), rejected / reps
    hits = 0
    for k in range(50):
        a, b, y = _pair(rng, 20, 40, 8.0, 1.0)         # direction perfect, words not
        observed, null = lexical.paired_auc_null(a, b, y, draws=199, seed=k)
        comp = stats.compare_to_null(observed, null, alternative="greater", min_d=0.0)
        hits += stats.verdict(comp, comp.p_value, comp.p_min_effect) == "supported"
    assert hits >= 45, hits
