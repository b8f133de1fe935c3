"""Planted ground truth: known rotation, rotation + noise, width-changing map are recovered (overlap
near 1 after, near chance before, transfer AUC near the source's); no relation stays at the null.

These run the same analysis code (emocheck.alignment.analysis.analyse_pair) as the real models."""
import numpy as np
import pytest

from emocheck.alignment.analysis import AlignConfig, analyse_pair
from emocheck.alignment.synthetic import planted_pair

CFG = AlignConfig(p=16, k_max=4, k_claim=2, permutations=99, pairing_draws=49, random_draws=99)


@pytest.fixture(scope="module")
def analyses():
    out = {}
    for rel in ("rotation", "rotation_noise", "width", "none"):
        p = planted_pair(rel, seed=1)
        out[rel] = (p, analyse_pair(p.xa, p.xb, p.labels, p.train, p.emotions, CFG))
    return out


def _at_k(a, k=2, contrast="vs_other"):
    o = a.overlaps
    return o[(o.k == k) & (o.contrast == contrast)]


@pytest.mark.parametrize("relation", ["rotation", "rotation_noise", "width"])
def test_related_pairs_are_recovered(analyses, relation):
    planted, a = analyses[relation]
    o = _at_k(a)
    assert o["observed"].mean() > 0.85, o
    assert (o["label_permuted_p"] <= 0.02).all() and (o["shuffled_pairing_p"] <= 0.03).all()
    assert (o["label_permuted_score"] > 0.5).all()
    # chance is printed beside, and the observed overlap is far above it
    assert np.allclose(o["chance_k_over_d"], 2 / 16) and (o["observed"] > 4 * o["chance_k_over_d"]).all()
    t = a.transfer
    assert (t["mapped_auc"] > t["source_own_auc"] - 0.05).all(), t
    assert (t["random_auc_p"] <= 0.02).all()


@pytest.mark.parametrize("relation", ["rotation", "rotation_noise"])
def test_before_is_at_chance_for_a_rotation(analyses, relation):
    """Regression for a map that is never applied to the span: before == after. Here the raw
    (unmapped) overlap of a rotated copy is near chance and the mapped one near 1."""
    _, a = analyses[relation]
    o = _at_k(a)
    d = 40
    assert (o["before"] < 5 * 2 / d).all(), o["before"]
    assert (o["observed"] - o["before"]).min() > 0.5


def test_width_changing_map_has_no_before(analyses):
    _, a = analyses["width"]
    assert _at_k(a)["before"].isna().all()
    assert a.fitted.source_matrix.shape == (16, 16)


def test_no_relation_stays_at_the_null(analyses):
    _, a = analyses["none"]
    o = a.overlaps[a.overlaps.k == 2]
    assert o["shuffled_pairing_score"].abs().max() < 0.35
    assert (o["shuffled_pairing_p"] > 0.05).all()
    assert o["label_permuted_score"].mean() < 0.2
    t = a.transfer
    assert (t["mapped_auc"] < 0.75).all() and (t["random_auc_p"] > 0.05).all()
    assert (t["source_own_auc"] > 0.85).all()     # the source itself does separate


def test_label_permuted_null_is_calibrated_under_no_relation():
    """Planted null, many data sets: the label-permuted p at k=2 is below 0.05 in at most 5% of them
    (plus 3 Monte-Carlo standard errors). Also the shuffled-pairing p."""
    from threadpoolctl import threadpool_limits

    n_sets, hits = 120, [0, 0]
    with threadpool_limits(limits=1, user_api="blas"):
        _calibration_loop(n_sets, hits)
    hits_perm, hits_pair = hits
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / n_sets)
    assert hits_perm / n_sets <= bound, hits_perm
    assert hits_pair / n_sets <= bound, hits_pair


def _calibration_loop(n_sets, hits):
    from emocheck.alignment.maps import fit_map
    from emocheck.alignment.nulls import calibrate, label_permuted_null, shuffled_pairing_null
    from emocheck.alignment.overlap import overlap_curve
    from emocheck.alignment.reduce import fit_reducer
    from emocheck.alignment.subspaces import contrast_subspace

    for s in range(n_sets):
        p = planted_pair("none", n_per_group=60, d_a=24, latent=6, seed=1000 + s)
        tr, ho = p.train, ~p.train
        za = fit_reducer(p.xa[tr], 8).transform(p.xa)
        zb = fit_reducer(p.xb[tr], 8).transform(p.xb)
        fit = tr & (p.labels == "neutral")
        m = fit_map("ridge", za[fit], zb[fit], lam=1.0)
        ua = contrast_subspace(za[ho], p.labels[ho], "gratitude", "vs_other", p.emotions, 2)
        ub = contrast_subspace(zb[ho], p.labels[ho], "gratitude", "vs_other", p.emotions, 2)
        obs = overlap_curve(m.source(ua), m.target(ub))
        perm = label_permuted_null(m, za[ho], zb[ho], p.labels[ho], "gratitude", "vs_other", p.emotions, 2, 39, s)
        pair = shuffled_pairing_null(m, za[fit], zb[fit], ua, ub, 39, s)
        hits[0] += calibrate(obs, perm)["p_value"][1] <= 0.05
        hits[1] += calibrate(obs, pair)["p_value"][1] <= 0.05
