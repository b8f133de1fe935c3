"""AUC, bootstrap intervals (scipy.stats.bootstrap) and the bootstrap choice of the subspace dimension k."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as _st

from emocheck.errors import EvidenceError
from emocheck.stats._common import _as_1d, _check_confidence




def auc(pos, neg) -> float:
    """AUC = P(pos > neg) + 0.5 P(pos == neg), from the Mann-Whitney U with mid-ranks.

    Equals sklearn.metrics.roc_auc_score on labels (1 for pos, 0 for neg) without building the
    n_pos x n_neg comparison matrix.
    """
    pos = _as_1d(pos, "pos")
    neg = _as_1d(neg, "neg")
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auc needs at least one positive and one negative value")
    ranks = _st.rankdata(np.concatenate([pos, neg]))  # average ranks handle ties as 1/2
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def _auc_vectorized(pos, neg, axis=-1):
    """AUC along ``axis`` for scipy.stats.bootstrap (vectorized=True)."""
    pos = np.moveaxis(pos, axis, -1)
    neg = np.moveaxis(neg, axis, -1)
    n1, n2 = pos.shape[-1], neg.shape[-1]
    ranks = _st.rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)
    return (ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n2)


def _scipy_bootstrap(data, statistic, *, vectorized, paired, confidence, n_resamples, seed, method):
    """scipy.stats.bootstrap with a seeded Generator; returns (low, high) floats.

    scipy >= 1.15 calls the seed argument ``rng``; older versions ``random_state``.
    """
    _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    kwargs = dict(
        paired=paired, vectorized=vectorized, confidence_level=confidence,
        n_resamples=n_resamples, method=method,
    )
    try:
        res = _st.bootstrap(data, statistic, rng=rng, **kwargs)
    except TypeError:  # pragma: no cover - scipy < 1.15
        res = _st.bootstrap(data, statistic, random_state=rng, **kwargs)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def auc_ci(
    pos, neg, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
    *, method: str = "percentile",
) -> tuple[float, float]:
    """Stratified bootstrap CI for :func:`auc`: pos and neg are resampled separately.

    scipy.stats.bootstrap resamples each of several independent samples on its own, which is
    exactly the stratified scheme (class sizes are kept fixed). The percentile method is the
    default because AUC often sits at 0 or 1, where BCa's acceleration is undefined.
    """
    pos = _as_1d(pos, "pos")
    neg = _as_1d(neg, "neg")
    if pos.size < 2 or neg.size < 2:
        raise ValueError("auc_ci needs at least 2 positive and 2 negative values")
    return _scipy_bootstrap(
        (pos, neg), _auc_vectorized, vectorized=True, paired=False, confidence=confidence,
        n_resamples=n_resamples, seed=seed, method=method,
    )


def bootstrap_ci(
    statistic: Callable,
    *samples,
    paired: bool = False,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: str = "BCa",
) -> tuple[float, float]:
    """Thin wrapper around scipy.stats.bootstrap with ``np.random.default_rng(seed)``.

    ``statistic(*samples) -> float`` is called once per resample (vectorized=False), so any
    Python function works. ``paired=True`` resamples the same indices in every sample.
    Degenerate bootstrap distributions give NaN bounds (scipy warns).
    """
    if not samples:
        raise ValueError("bootstrap_ci needs at least one sample")
    data = tuple(_as_1d(s, f"samples[{i}]") for i, s in enumerate(samples))
    return _scipy_bootstrap(
        data, statistic, vectorized=False, paired=paired, confidence=confidence,
        n_resamples=n_resamples, seed=seed, method=method,
    )




def k_selection_bootstrap(
    overlaps: np.ndarray, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """How sure are we about the best subspace dimension k?

    ``overlaps``: (n_units, k_max) array, overlaps[u, k-1] = overlap of unit u at dimension k.
    Units (rows) are resampled with replacement, keeping each unit's whole k-profile together
    (units are the independent observations; k values within a unit are correlated).

    Returns a DataFrame with one row per k = 1..k_max and columns
      k, mean (observed mean over units), ci_low, ci_high (percentile bootstrap, ``confidence``),
      p_best (fraction of resamples in which this k has the highest mean; ties go to the
      smallest k, the more parsimonious choice), best (True for the argmax of ``mean``,
      smallest k on ties).
    """
    _check_confidence(confidence)
    arr = np.asarray(overlaps, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"overlaps must be a 2-D (n_units, k_max) array, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise EvidenceError(f"k selection needs at least 2 units, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise EvidenceError("overlaps contains non-finite values (NaN/inf)")
    n_units, k_max = arr.shape
    rng = np.random.default_rng(seed)
    # Chunk the resamples so memory stays O(chunk * n_units * k_max) for large inputs.
    means = np.empty((n_resamples, k_max))
    chunk = max(1, min(n_resamples, 2_000_000 // max(1, n_units * k_max)))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n_units, size=(stop - start, n_units))
        means[start:stop] = arr[idx].mean(axis=1)
    a = (1.0 - confidence) / 2
    low, high = np.quantile(means, [a, 1 - a], axis=0)
    wins = np.bincount(np.argmax(means, axis=1), minlength=k_max) / n_resamples
    observed = arr.mean(axis=0)
    best = np.zeros(k_max, dtype=bool)
    best[int(np.argmax(observed))] = True
    return pd.DataFrame(
        {
            "k": np.arange(1, k_max + 1),
            "mean": observed,
            "ci_low": low,
            "ci_high": high,
            "p_best": wins,
            "best": best,
        }
    )
