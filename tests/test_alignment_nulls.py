"""Nulls, calibrated score, k-selection bootstrap and transfer on small planted data."""
import numpy as np
import pytest

from emocheck.alignment.kselect import bootstrap_k, k_selection_by_emotion
from emocheck.alignment.maps import fit_map
from emocheck.alignment.nulls import calibrate, permuted_label_sets, random_subspace_null
from emocheck.alignment.overlap import chance_overlap
from emocheck.alignment.reduce import fit_reducer
from emocheck.alignment.subspaces import contrast_subspace, difference_subspace, difference_subspaces, reference_labels
from emocheck.alignment.synthetic import planted_pair
from emocheck.alignment.transfer import mean_direction
from emocheck.errors import ConfigError


def test_calibrate_score_and_p():
    null = np.array([[0.1], [0.2], [0.3], [0.4]])
    cal = calibrate(0.35, null)
    assert cal["score"][0] == pytest.approx((0.35 - 0.25) / 0.75)
    assert cal["p_value"][0] == pytest.approx((1 + 1) / 5)
    assert calibrate(0.25, null)["score"][0] == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="do not match"):
        calibrate([0.1, 0.2], null)


def test_random_null_matches_k_over_d():
    v = np.eye(30)[:5]
    draws = random_subspace_null(v, 2000, seed=0)
    se = draws.std(0) / np.sqrt(2000)
    assert np.all(np.abs(draws.mean(0) - chance_overlap(np.arange(1, 6), 30)) < 4 * se)


def test_permutations_keep_group_sizes_and_touch_only_the_contrast_rows():
    labels = np.array(["a"] * 5 + ["b"] * 5 + ["neutral"] * 5)
    for perm in permuted_label_sets(labels, "a", "vs_neutral", ["a", "b"], 20, seed=0):
        assert (perm[5:10] == "b").all()
        assert (perm == "a").sum() == 5 and (perm == "neutral").sum() == 5
    assert reference_labels("a", "vs_other", ["a", "b", "c"]) == ["b", "c"]
    with pytest.raises(ConfigError, match="unknown contrast"):
        reference_labels("a", "sideways", ["a"])


def test_batched_subspaces_equal_one_by_one():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((30, 6))
    e, r = np.array([np.arange(10), np.arange(5, 15)]), np.array([np.arange(20, 30), np.arange(18, 28)])
    batched = difference_subspaces(z, e, r, 3)
    for i in range(2):
        single = difference_subspace(z[e[i]], z[r[i]], 3)
        np.testing.assert_allclose(np.abs(np.sum(batched[i] * single, 1)), 1.0, atol=1e-10)


@pytest.fixture(scope="module")
def rotation_setup():
    p = planted_pair("rotation", seed=2)
    tr, ho = p.train, ~p.train
    zs, zt = fit_reducer(p.xa[tr], 16).transform(p.xa), fit_reducer(p.xb[tr], 16).transform(p.xb)
    m = fit_map("ridge", zs[tr & (p.labels == "neutral")], zt[tr & (p.labels == "neutral")])
    return p, zs, zt, m


def test_k_bootstrap_finds_the_planted_dimension(rotation_setup):
    """The planted emotion-specific structure has two directions (shift + extra variance): the
    calibrated vs_other overlap is high at k <= 2, and the table carries bands and neighbour tests."""
    p, zs, zt, m = rotation_setup
    ho = ~p.train
    means = {e: np.full(4, 0.2) for e in p.emotions}
    draws = {e: np.random.default_rng(0).uniform(0, 0.4, (50, 4)) for e in p.emotions}
    ks = bootstrap_k(m, zs[ho], zt[ho], p.labels[ho], p.emotions, "vs_other", 4, means, draws, 60, seed=0)
    assert list(ks.k) == [1, 2, 3, 4] and ks.best.sum() == 1
    # percentile bands are non-degenerate; they need not contain the observed value (see kselect's doc)
    assert (ks.ci_low < ks.ci_high).all()
    assert ks.loc[ks.k <= 2, "mean"].min() > 0.8
    best = ks[ks.best].iloc[0]
    assert np.isfinite([best.p_best_vs_smaller_k, best.p_best_vs_larger_k]).sum() >= 1
    emo = k_selection_by_emotion(ks[[f"score_{e}" for e in p.emotions]].to_numpy().T, 200, seed=0)
    assert list(emo.k) == [1, 2, 3, 4]
    with pytest.raises(ConfigError, match="at least 10"):
        bootstrap_k(m, zs[ho], zt[ho], p.labels[ho], p.emotions, "vs_other", 4, means, draws, 5, seed=0)


def test_transfer_direction_is_the_mean_difference(rotation_setup):
    p, zs, _, _ = rotation_setup
    d = mean_direction(zs, p.labels, "anger", "vs_other", p.emotions)
    expected = zs[p.labels == "anger"].mean(0) - np.mean([zs[p.labels == e].mean(0) for e in ("gratitude", "apology")], 0)
    np.testing.assert_allclose(d, expected)
    with pytest.raises(ConfigError, match="at least 2 emotion rows"):
        contrast_subspace(zs[:3], p.labels[:3], "gratitude", "vs_neutral", p.emotions, 1)


def test_vectorised_random_direction_aucs_match_stats_auc(rotation_setup):
    from emocheck import stats
    from emocheck.alignment.transfer import random_direction_aucs, transfer_scores

    p, zs, zt, m = rotation_setup
    t, c = p.labels == "anger", np.isin(p.labels, ["gratitude", "apology"])
    fast = random_direction_aucs(m, zt, t, c, 5, seed=3)
    rng = np.random.default_rng(3)
    dirs = rng.standard_normal((5, zs.shape[1]))
    slow = [stats.auc(s[t], s[c]) for s in (transfer_scores(m, d, zt) for d in dirs)]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_fast_ridge_pairing_null_equals_refitting(rotation_setup):
    from emocheck.alignment.maps import LinearMap
    from emocheck.alignment.nulls import shuffled_pairing_null

    p, zs, zt, m = rotation_setup
    fit = p.train & (p.labels == "neutral")
    ho = ~p.train
    ua = contrast_subspace(zs[ho], p.labels[ho], "anger", "vs_other", p.emotions, 3)
    ub = contrast_subspace(zt[ho], p.labels[ho], "anger", "vs_other", p.emotions, 3)
    fast = shuffled_pairing_null(m, zs[fit], zt[fit], ua, ub, 6, seed=4)
    # the generic path (refit per draw) on a map that is not flagged as ridge
    generic = LinearMap("ridge-generic", m.source_matrix, m.target_matrix, dict(m.info))
    import emocheck.alignment.nulls as nulls_mod

    orig = nulls_mod.refit_like
    nulls_mod.refit_like = lambda fitted, a, b: orig(m, a, b)
    try:
        slow = shuffled_pairing_null(generic, zs[fit], zt[fit], ua, ub, 6, seed=4)
    finally:
        nulls_mod.refit_like = orig
    np.testing.assert_allclose(fast, slow, atol=1e-10)


def test_random_group_null_takes_the_same_group_in_both_models():
    """Identical models through the identity map: every random group's subspaces coincide (overlap 1),
    where the label-permuted null (source permuted, target's true group) stays below 1."""
    from emocheck.alignment.maps import identity_map
    from emocheck.alignment.nulls import label_permuted_null, random_group_null

    rng = np.random.default_rng(0)
    labels = np.repeat(["gratitude", "anger", "apology", "neutral"], 20)
    z = rng.standard_normal((80, 6))
    emotions = ["gratitude", "anger", "apology"]
    same = random_group_null(identity_map(6), z, z, labels, "anger", "vs_other", emotions, 2, 30, seed=1)
    other = label_permuted_null(identity_map(6), z, z, labels, "anger", "vs_other", emotions, 2, 30, seed=1)
    assert same.shape == (30, 2) and np.allclose(same, 1.0)
    assert other[:, 1].max() < 1.0 - 1e-6
