"""Which k shows the most shared structure? A bootstrap over PROMPTS of the calibrated overlap per k.

Each resample draws held-out prompts with replacement within each label group (the same prompts in
both models: the pairing is kept), recomputes both models' emotion subspaces, passes them through the
fixed fitted map (the map's uncertainty is not the question here; it is fitted on other prompts),
and calibrates each emotion's overlap at every k against that emotion's label-permuted null mean
(from the full held-out data). The score per k is the mean over emotions.

Resampling prompts, not emotions: with three emotions a bootstrap over emotions has three units.
`emocheck.stats.k_selection_bootstrap` resamples the rows of a fixed (units x k) matrix and cannot
recompute subspaces, so it is applied only to the per-emotion curves as a secondary view
(`k_selection_by_emotion`); the prompt bootstrap here follows its output columns.

A resample repeats prompts, which lowers the effective number of prompts and biases subspace
overlaps (on planted data the observed value at the largest k fell below its whole percentile band;
on the embedded pair plain percentiles made k = 1 "win" 83% of resamples although k = 2 had the
higher observed score). So every statistic uses the bias-reflected replicates 2 * observed - boot
(the basic bootstrap): bands are basic-bootstrap intervals, p_best and the neighbour tests are
computed on reflected replicates.

best k vs its neighbours: p_vs_smaller / p_vs_larger = fraction of resamples in which the best k's
score is not above the neighbour's (one-sided bootstrap p; NaN where there is no neighbour).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck import stats
from emocheck.alignment.analysis import single_blas_thread
from emocheck.alignment.maps import LinearMap
from emocheck.alignment.overlap import overlap_curves
from emocheck.alignment.subspaces import difference_subspaces, reference_labels
from emocheck.errors import ConfigError


def _calibrated(o, null_mean):
    return (o - null_mean) / np.maximum(1 - null_mean, 1e-12)


@single_blas_thread
def bootstrap_k(fitted: LinearMap, zs_held: np.ndarray, zt_held: np.ndarray, labels_held: np.ndarray,
                emotions: list[str], contrast: str, k_max: int, null_means: dict[str, np.ndarray],
                null_draws: dict[str, np.ndarray], n_resamples: int, seed: int, confidence: float = 0.95) -> pd.DataFrame:
    labels_held = np.asarray(labels_held)
    if n_resamples < 10:
        raise ConfigError(f"k selection needs at least 10 bootstrap resamples, got {n_resamples}")

    def scores(draws):
        """draws: {label: row indices [B, n_label]} -> calibrated curves [n_emotions, B, k_max]."""
        per = []
        for e in emotions:
            ref = reference_labels(e, contrast, emotions)
            rows_r = np.concatenate([draws[r] for r in ref], axis=1)
            ua = difference_subspaces(zs_held, draws[e], rows_r, k_max)
            ub = difference_subspaces(zt_held, draws[e], rows_r, k_max)
            per.append(_calibrated(overlap_curves(ua @ fitted.source_matrix, ub @ fitted.target_matrix, k_max),
                                   null_means[e]))
        return np.array(per)

    groups = {g: np.flatnonzero(labels_held == g) for g in np.unique(labels_held)}
    per_emotion = scores({g: idx[None] for g, idx in groups.items()})[:, 0]
    observed = per_emotion.mean(0)
    rng = np.random.default_rng(seed)
    draws = {g: rng.choice(idx, size=(n_resamples, len(idx)), replace=True) for g, idx in groups.items()}
    boot = 2 * observed - scores(draws).mean(0)       # basic bootstrap: reflect the bias (see the doc)
    a = (1 - confidence) / 2
    low, high = np.quantile(boot, [a, 1 - a], axis=0)
    best = int(np.argmax(observed))
    wins = np.bincount(np.argmax(boot, axis=1), minlength=k_max) / n_resamples
    # the null band in calibrated units: each emotion's label-permuted draws, calibrated, averaged
    null_cal = np.mean([_calibrated(null_draws[e], null_means[e]) for e in emotions], axis=0)
    p_smaller = np.full(k_max, np.nan)
    p_larger = np.full(k_max, np.nan)
    if best > 0:
        p_smaller[best] = float(np.mean(boot[:, best] <= boot[:, best - 1]))
    if best < k_max - 1:
        p_larger[best] = float(np.mean(boot[:, best] <= boot[:, best + 1]))
    return pd.DataFrame({
        "contrast": contrast, "k": np.arange(1, k_max + 1), "mean": observed, "ci_low": low, "ci_high": high,
        "p_best": wins, "best": np.arange(k_max) == best,
        "null_low": np.quantile(null_cal, a, axis=0), "null_high": np.quantile(null_cal, 1 - a, axis=0),
        "p_best_vs_smaller_k": p_smaller, "p_best_vs_larger_k": p_larger,
        **{f"score_{e}": per_emotion[i] for i, e in enumerate(emotions)},
        "n_resamples": n_resamples,
    })


def k_selection_by_emotion(per_emotion_scores: np.ndarray, n_resamples: int, seed: int) -> pd.DataFrame:
    """stats.k_selection_bootstrap over emotions (units) of calibrated curves [n_emotions, k_max]."""
    return stats.k_selection_bootstrap(per_emotion_scores, n_resamples=n_resamples, seed=seed)
