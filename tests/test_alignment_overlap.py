"""Principal-angle overlap: range, basis invariance, symmetry, chance level (property tests)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from emocheck.alignment.overlap import chance_overlap, orthonormal_rows, overlap_curve, principal_cosines, subspace_overlap
from emocheck.errors import ConfigError


def _basis(seed, k, d):
    return np.random.default_rng(seed).standard_normal((k, d))


dims = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(6, 20), st.integers(0, 10**6))


@settings(max_examples=60, deadline=None)
@given(dims)
def test_overlap_in_unit_interval_and_symmetric(args):
    k1, k2, d, seed = args
    u, v = _basis(seed, k1, d), _basis(seed + 1, k2, d)
    o = subspace_overlap(u, v)
    assert 0.0 <= o <= 1.0 + 1e-12
    assert o == pytest.approx(subspace_overlap(v, u), abs=1e-10)


@settings(max_examples=60, deadline=None)
@given(dims)
def test_overlap_invariant_to_the_choice_of_basis(args):
    k1, k2, d, seed = args
    rng = np.random.default_rng(seed + 7)
    u, v = _basis(seed, k1, d), _basis(seed + 1, k2, d)
    # any invertible mix of the spanning rows spans the same subspace
    mix_u, mix_v = rng.standard_normal((k1, k1)) + 3 * np.eye(k1), rng.standard_normal((k2, k2)) + 3 * np.eye(k2)
    assert subspace_overlap(mix_u @ u, mix_v @ v) == pytest.approx(subspace_overlap(u, v), abs=1e-8)


@settings(max_examples=40, deadline=None)
@given(dims)
def test_overlap_invariant_to_a_common_rotation(args):
    k1, k2, d, seed = args
    q, _ = np.linalg.qr(np.random.default_rng(seed + 3).standard_normal((d, d)))
    u, v = _basis(seed, k1, d), _basis(seed + 1, k2, d)
    assert subspace_overlap(u @ q, v @ q) == pytest.approx(subspace_overlap(u, v), abs=1e-8)


def test_identical_and_orthogonal_spans():
    e = np.eye(6)
    assert subspace_overlap(e[:3], e[[2, 0, 1]] * 5) == pytest.approx(1.0)
    assert subspace_overlap(e[:3], e[3:]) == pytest.approx(0.0)
    assert subspace_overlap(e[:2], e[[0, 3]]) == pytest.approx(0.5)
    np.testing.assert_allclose(principal_cosines(e[:2], e[[0, 3]]), [1.0, 0.0], atol=1e-12)


def test_random_subspaces_average_k_over_d():
    """The chance level that the public implementation read as structure: E = k/d."""
    d, k, draws = 40, 3, 3000
    rng = np.random.default_rng(0)
    fixed = np.eye(d)[:k]
    vals = [subspace_overlap(rng.standard_normal((k, d)), fixed) for _ in range(draws)]
    se = np.std(vals) / np.sqrt(draws)
    assert abs(np.mean(vals) - chance_overlap(k, d)) < 4 * se


def test_rank_loss_lowers_overlap_instead_of_hiding():
    e = np.eye(5)
    collapsed = np.vstack([e[0], 2 * e[0]])        # two rows, one dimension
    assert subspace_overlap(collapsed, e[:2]) == pytest.approx(0.5)
    assert orthonormal_rows(collapsed).shape == (1, 5)


def test_curve_nested_and_errors():
    u, v = _basis(0, 4, 10), _basis(1, 4, 10)
    curve = overlap_curve(u, v)
    assert curve.shape == (4,) and curve[0] == pytest.approx(subspace_overlap(u[:1], v[:1]))
    with pytest.raises(ConfigError, match="different spaces"):
        subspace_overlap(u, _basis(2, 2, 9))
    with pytest.raises(ConfigError, match="exceeds"):
        overlap_curve(u, v, 5)
    with pytest.raises(ConfigError, match="NaN"):
        subspace_overlap(np.full((1, 3), np.nan), np.ones((1, 3)))


@settings(max_examples=40, deadline=None)
@given(dims)
def test_fast_nested_curve_equals_the_definition(args):
    k1, k2, d, seed = args
    u, v = _basis(seed, k1, d), _basis(seed + 1, k2, d)
    k = min(k1, k2)
    expected = [subspace_overlap(u[:j], v[:j]) for j in range(1, k + 1)]
    np.testing.assert_allclose(overlap_curve(u, v), expected, atol=1e-9)


def test_batched_curves_match_one_by_one():
    from emocheck.alignment.overlap import overlap_curves

    stack = np.random.default_rng(0).standard_normal((7, 3, 9))
    v = _basis(3, 3, 9)
    np.testing.assert_allclose(overlap_curves(stack, v), [overlap_curve(s, v) for s in stack], atol=1e-12)
