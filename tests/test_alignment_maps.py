"""Maps between reduced spaces: Procrustes, ridge (lambda by error within the fit rows), CCA."""
import numpy as np
import pytest

from emocheck.alignment.maps import fit_cca, fit_map, fit_procrustes, fit_ridge, identity_map, refit_like, ridge_cv_errors
from emocheck.alignment.overlap import subspace_overlap
from emocheck.alignment.reduce import fit_reducer, outlier_dims
from emocheck.errors import ConfigError


def _pair(n=200, d=12, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) * np.linspace(3, 1, d)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return a, a @ q + noise * rng.standard_normal((n, d)), q


def test_procrustes_recovers_a_rotation_exactly():
    a, b, q = _pair()
    m = fit_procrustes(a, b)
    np.testing.assert_allclose(m.source_matrix, q, atol=1e-8)
    assert m.info["fit_error"] < 1e-12


def test_map_changes_the_span():
    """Regression for the public implementation's bug: a fitted map must move the span."""
    a, b, q = _pair()
    u = np.random.default_rng(5).standard_normal((2, 12))
    before = subspace_overlap(u, u @ q)                         # source subspace vs its true image
    m = fit_map("ridge", a, b)
    after = subspace_overlap(m.source(u), m.target(u @ q))
    assert after > 0.999 and before < 0.9 and after - before > 0.1


def test_ridge_lambda_is_chosen_by_error_on_left_out_fit_rows():
    a, b, _ = _pair(n=60, d=20, noise=2.0)
    errs = ridge_cv_errors(a, b, seed=0)
    m = fit_ridge(a, b, seed=0)
    assert m.info["lambda_relative"] == min(errs, key=errs.get)
    assert fit_ridge(a, b, lam=5.0).info["lam"] == 5.0


def test_cca_finds_the_shared_component():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((300, 1))
    a = np.hstack([shared, rng.standard_normal((300, 3))])
    b = np.hstack([rng.standard_normal((300, 2)), -2 * shared + 0.01 * rng.standard_normal((300, 1))])
    m = fit_cca(a, b, reg=0.0)
    assert m.info["canonical_corr"][0] > 0.99
    assert subspace_overlap(m.source(np.eye(4)[:1]), m.target(np.eye(3)[2:])) > 0.95


def test_map_errors_and_refit():
    a, b, _ = _pair()
    with pytest.raises(ConfigError, match="equal reduced widths"):
        fit_procrustes(a, b[:, :5])
    with pytest.raises(ConfigError, match="paired rows"):
        fit_ridge(a, b[:-1])
    with pytest.raises(ConfigError, match="unknown map"):
        fit_map("svd", a, b)
    m = fit_ridge(a, b, lam=1.0)
    assert refit_like(m, a, b).info["lam"] == 1.0
    assert identity_map(3).width == 3


def test_reducer_fits_on_given_rows_and_drops_massive_dims():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 10))
    x[:, 3] += 5000.0
    x[:, 7] += 900.0
    assert list(outlier_dims(x, 2)) == [3, 7]
    r = fit_reducer(x, 4, drop_outliers=2)
    assert 3 not in r.keep and 7 not in r.keep and r.transform(x).shape == (100, 4)
    z = fit_reducer(x, 4, whiten=True).transform(x)
    np.testing.assert_allclose(z.std(0, ddof=1), 1.0, atol=1e-8)
    assert 0 < r.explained(x) <= 1
    with pytest.raises(ConfigError, match="reduced width"):
        fit_reducer(x, 200)
    x[0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        fit_reducer(x, 4)


def test_reducer_components_are_the_principal_axes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 6)) * np.array([5, 4, 3, 2, 1, 0.5])
    r = fit_reducer(x, 3, standardise=False)
    s = x - x.mean(0)
    _, sv, vh = np.linalg.svd(s, full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(r.components * vh[:3], 1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(r.sd, sv[:3] / np.sqrt(79), rtol=1e-8)
