"""Directions and their nulls: norms, seeds, label permutation keeps anisotropy, subspaces."""
import torch
import pytest

from emocheck.errors import ConfigError
from emocheck.patching.directions import (label_permuted_directions, random_directions, random_subspace_directions,
                                          subspace_direction)


def test_random_directions_norm_seed():
    a = random_directions(64, 3, seed=10, norm=2.5)
    assert a.shape == (3, 64) and torch.allclose(a.norm(dim=1), torch.full((3,), 2.5, dtype=torch.float64))
    assert torch.equal(a, random_directions(64, 3, seed=10, norm=2.5))
    assert torch.equal(a[1], random_directions(64, 1, seed=11, norm=2.5)[0])   # draw k uses seed + k
    assert abs(float(a[0] @ a[1])) / 2.5**2 < 0.5


def _anisotropic(n, d=50, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(d, dtype=torch.float64)
    scale[0] = 30.0                                    # one massive dimension, like Gemma's
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    x[:, 1] += shift
    return x


def test_label_permuted_keeps_anisotropy_and_is_seeded():
    xe, x0 = _anisotropic(40, seed=1, shift=3.0), _anisotropic(40, seed=2)
    perm, ratio = label_permuted_directions(xe, x0, 20, seed=5, norm=7.0)
    assert perm.shape == (20, 50) and torch.allclose(perm.norm(dim=1), torch.full((20,), 7.0, dtype=torch.float64))
    # the massive dimension dominates permuted vectors (it would get 1/50 of the energy if isotropic)
    share = (perm[:, 0] ** 2 / 49.0).mean()
    assert share > 0.3
    assert (ratio > 0).all() and torch.equal(perm, label_permuted_directions(xe, x0, 20, seed=5, norm=7.0)[0])
    raw, _ = label_permuted_directions(xe, x0, 1, seed=5)
    assert torch.allclose(raw[0] / raw[0].norm() * 7.0, perm[0])
    with pytest.raises(ConfigError, match="at least 2"):
        label_permuted_directions(xe[:1], x0, 2, seed=0)


def test_subspace_directions():
    d = 32
    comps = torch.linalg.qr(torch.randn(d, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0].T
    v = comps[0] * 2 + torch.randn(d, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.1
    s = subspace_direction(v, comps)
    assert s.norm().item() == pytest.approx(v.norm().item())
    resid = s - comps.T @ (comps @ s)
    assert resid.norm().item() < 1e-9                          # lies in the subspace
    nulls = random_subspace_directions(v, 3, 5, seed=4)
    assert torch.allclose(nulls.norm(dim=1), torch.full((5,), float(v.norm()), dtype=torch.float64))
    assert torch.equal(nulls[2], random_subspace_directions(v, 3, 1, seed=6)[0])
    assert (nulls @ (v / v.norm()) / v.norm()).abs().max() < 0.99   # not v itself
