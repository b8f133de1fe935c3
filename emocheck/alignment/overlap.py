"""Subspace overlap by principal angles.

overlap(U, V) = ||Q_U Q_V^T||_F^2 / min(k_U, k_V): the mean cos^2 of the principal angles between
span(U) and span(V), where U [k_U, d] and V [k_V, d] hold spanning vectors as ROWS and Q_U, Q_V are
orthonormal bases of their spans. It lies in [0, 1], depends only on the spans (not the bases), and is
symmetric. For a uniformly random k-subspace against a fixed k-subspace of R^d its mean is k/d (the
chance level that must be printed beside every overlap).

A rank-deficient input (a map that collapses the subspace) keeps the requested k in the denominator,
so losing dimensions lowers the overlap instead of hiding.
"""
from __future__ import annotations

import numpy as np

from emocheck.errors import ConfigError


def orthonormal_rows(u: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (rows) of the row span of u [k, d]; rank-deficient directions are dropped."""
    u = np.atleast_2d(np.asarray(u, dtype=float))
    if u.ndim != 2 or u.shape[0] == 0:
        raise ConfigError(f"a subspace needs a [k, d] array of spanning rows, got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise ConfigError("subspace basis contains NaN or inf")
    _, s, vh = np.linalg.svd(u, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros((0, u.shape[1]))
    return vh[s > rtol * s[0]]


def principal_cosines(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between span(u) and span(v), descending."""
    qu, qv = orthonormal_rows(u), orthonormal_rows(v)
    if qu.shape[1] != qv.shape[1]:
        raise ConfigError(f"subspaces live in different spaces (d = {qu.shape[1]} and {qv.shape[1]}); map one first")
    if qu.shape[0] == 0 or qv.shape[0] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(qu @ qv.T, compute_uv=False), 0.0, 1.0)


def subspace_overlap(u: np.ndarray, v: np.ndarray) -> float:
    """Mean cos^2 of the principal angles, over min(k_u, k_v) angles (requested k, see module doc)."""
    u, v = np.atleast_2d(u), np.atleast_2d(v)
    k = min(u.shape[0], v.shape[0])
    cos = principal_cosines(u, v)
    return float(np.sum(cos[:k] ** 2) / k)


def nested_bases(u: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal columns [..., d, k] whose first j span the first j rows of u [..., k, d], for every
    j at once (QR keeps the nesting); a row dependent on the earlier ones gives a zero column."""
    q, r = np.linalg.qr(np.swapaxes(np.asarray(u, dtype=float), -1, -2))
    diag = np.abs(np.diagonal(r, axis1=-2, axis2=-1))
    scale = np.max(diag, axis=-1, keepdims=True)
    keep = diag > rtol * np.where(scale > 0, scale, 1.0)
    return q * keep[..., None, :]


def overlap_curves(u: np.ndarray, v: np.ndarray, k_max: int | None = None) -> np.ndarray:
    """Batched overlap_curve: u [..., k, d] against v [..., k, d] (broadcast) -> [..., k_max]."""
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    kk = min(u.shape[-2], v.shape[-2])
    k_max = kk if k_max is None else k_max
    if k_max > kk:
        raise ConfigError(f"k_max={k_max} exceeds the bases' sizes {u.shape[-2]} and {v.shape[-2]}")
    if u.shape[-1] != v.shape[-1]:
        raise ConfigError(f"subspaces live in different spaces (d = {u.shape[-1]} and {v.shape[-1]}); map one first")
    qu, qv = nested_bases(u[..., :k_max, :]), nested_bases(v[..., :k_max, :])
    c2 = (np.swapaxes(qu, -1, -2) @ qv) ** 2                  # [..., k_max, k_max]
    block = np.cumsum(np.cumsum(c2, axis=-1), axis=-2)        # block[j, j] = ||C[:j+1, :j+1]||^2
    ks = np.arange(1, k_max + 1)
    return np.clip(np.diagonal(block, axis1=-2, axis2=-1) / ks, 0.0, 1.0)


def overlap_curve(u: np.ndarray, v: np.ndarray, k_max: int | None = None) -> np.ndarray:
    """[overlap(u[:k], v[:k]) for k = 1..k_max]: nested subspaces from ordered bases."""
    return overlap_curves(np.atleast_2d(u), np.atleast_2d(v), k_max)


def chance_overlap(k: int | np.ndarray, d: int) -> np.ndarray | float:
    """E[overlap] of a uniformly random k-subspace of R^d with a fixed k-subspace: k/d."""
    return np.asarray(k, dtype=float) / float(d)
