"""Linear maps between two models' reduced coordinates, fitted on paired training rows.

A fitted map sends row vectors of both models into one common space: `source(u)` = u @ source_matrix
and `target(v)` = v @ target_matrix. For Procrustes and ridge the common space is the target model's
(reduced) space and the target matrix is the identity; for CCA it is the canonical space and both
sides move. The overlap is always computed between source(U_A) and target(U_B): the map IS applied to
the span (a map fitted between the models' subspace bases, as in the public implementation this
replaces, cannot change the span and reports before == after).

    procrustes  orthogonal W minimising ||Za W - Zb||_F (needs equal reduced widths)
    ridge       W = (Za'Za + lam I)^-1 Za'Zb; lam chosen by k-fold error within the FIT rows
    cca         regularised CCA; the canonical weights of both sides
Rows are centred with the fit rows' means; maps act on displacements (directions), so the intercept
does not enter the overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emocheck.errors import ConfigError

MAP_KINDS = ("procrustes", "ridge", "cca")
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)   # multiples of mean(diag(Za'Za)) / n... see _ridge_lambda


@dataclass
class LinearMap:
    kind: str
    source_matrix: np.ndarray      # [p_A, c]
    target_matrix: np.ndarray      # [p_B, c]
    info: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Dimension c of the common space (what chance levels k/c refer to)."""
        return self.source_matrix.shape[1]

    def source(self, u) -> np.ndarray:
        return np.atleast_2d(np.asarray(u, dtype=float)) @ self.source_matrix

    def target(self, v) -> np.ndarray:
        return np.atleast_2d(np.asarray(v, dtype=float)) @ self.target_matrix


def _check(za, zb):
    za, zb = np.asarray(za, dtype=float), np.asarray(zb, dtype=float)
    if za.ndim != 2 or zb.ndim != 2 or za.shape[0] != zb.shape[0]:
        raise ConfigError(f"a map needs paired rows: got {za.shape} and {zb.shape}")
    if za.shape[0] < 3:
        raise ConfigError(f"a map needs at least 3 paired rows, got {za.shape[0]}")
    return za - za.mean(0), zb - zb.mean(0)


def fit_procrustes(za, zb) -> LinearMap:
    a, b = _check(za, zb)
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"orthogonal Procrustes needs equal reduced widths (got {a.shape[1]} and {b.shape[1]}); "
                          "use the same p for both models or the ridge map")
    u, _, vt = np.linalg.svd(a.T @ b)
    w = u @ vt
    return LinearMap("procrustes", w, np.eye(b.shape[1]), {"fit_error": _rel_error(a, b, w)})


def _rel_error(a, b, w) -> float:
    return float(np.sum((a @ w - b) ** 2) / np.sum(b**2))


def _ridge(a, b, lam):
    return np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)


def ridge_cv_errors(za, zb, grid=RIDGE_GRID, folds: int = 5, seed: int = 0) -> dict[float, float]:
    """Relative squared error of each lambda on left-out folds of the FIT rows (lambda scaled by the
    mean per-dimension sum of squares, so the grid means the same for any width or scale)."""
    a, b = _check(za, zb)
    n = a.shape[0]
    folds = max(2, min(folds, n))
    fold_of = np.random.default_rng(seed).permutation(np.arange(n) % folds)
    base = float(np.mean(np.sum(a**2, 0)))
    errs = {}
    for g in grid:
        num = den = 0.0
        for f in range(folds):
            tr, te = fold_of != f, fold_of == f
            mu_a, mu_b = a[tr].mean(0), b[tr].mean(0)
            w = _ridge(a[tr] - mu_a, b[tr] - mu_b, g * base)
            num += float(np.sum(((a[te] - mu_a) @ w - (b[te] - mu_b)) ** 2))
            den += float(np.sum((b[te] - mu_b) ** 2))
        errs[float(g)] = num / den
    return errs


def fit_ridge(za, zb, lam: float | None = None, *, grid=RIDGE_GRID, folds: int = 5, seed: int = 0) -> LinearMap:
    """Ridge least squares; lam=None chooses it from `grid` by k-fold error within the fit rows."""
    a, b = _check(za, zb)
    base = float(np.mean(np.sum(a**2, 0)))
    info = {}
    if lam is None:
        errs = ridge_cv_errors(za, zb, grid, folds, seed)
        g = min(errs, key=errs.get)
        lam = g * base
        info.update(cv_errors=errs, lambda_relative=g)
    w = _ridge(a, b, lam)
    info.update(lam=float(lam), fit_error=_rel_error(a, b, w))
    return LinearMap("ridge", w, np.eye(b.shape[1]), info)


def _inv_sqrt(c):
    vals, vecs = np.linalg.eigh(c)
    return vecs @ np.diag(1.0 / np.sqrt(np.maximum(vals, 1e-12))) @ vecs.T


def fit_cca(za, zb, reg: float = 0.1, n_components: int | None = None) -> LinearMap:
    """Regularised CCA (covariances shrunk toward reg * mean variance * I)."""
    a, b = _check(za, zb)
    n = a.shape[0]
    ca, cb = a.T @ a / (n - 1), b.T @ b / (n - 1)
    ca = (1 - reg) * ca + reg * np.trace(ca) / ca.shape[0] * np.eye(ca.shape[0])
    cb = (1 - reg) * cb + reg * np.trace(cb) / cb.shape[0] * np.eye(cb.shape[0])
    ia, ib = _inv_sqrt(ca), _inv_sqrt(cb)
    u, s, vt = np.linalg.svd(ia @ (a.T @ b / (n - 1)) @ ib)
    c = min(a.shape[1], b.shape[1]) if n_components is None else n_components
    return LinearMap("cca", ia @ u[:, :c], ib @ vt.T[:, :c], {"canonical_corr": s[:c].tolist(), "reg": reg})


def fit_map(kind: str, za, zb, *, seed: int = 0, lam: float | None = None) -> LinearMap:
    if kind == "procrustes":
        return fit_procrustes(za, zb)
    if kind == "ridge":
        return fit_ridge(za, zb, lam, seed=seed)
    if kind == "cca":
        return fit_cca(za, zb)
    raise ConfigError(f"unknown map {kind!r}; one of {', '.join(MAP_KINDS)}")


def refit_like(fitted: LinearMap, za, zb) -> LinearMap:
    """The same kind of map with the same hyper-parameters on other rows (for the shuffled-pairing null)."""
    if fitted.kind == "ridge":
        return fit_ridge(za, zb, fitted.info["lam"])
    if fitted.kind == "cca":
        return fit_cca(za, zb, fitted.info["reg"], fitted.width)
    return fit_map(fitted.kind, za, zb)


def identity_map(d: int) -> LinearMap:
    """No map at all (for the 'before' overlap, meaningful only when both models share one space)."""
    return LinearMap("identity", np.eye(d), np.eye(d))
