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
higher observed score). So the bands and p_best use the bias-reflected replicates 2 * observed - boot
(the basic bootstrap).

best k vs its neighbours, with the selection apart from the test: each label group's held-out
prompts are split at random into two halves. The best k is the argmax of the calibrated score on the
SELECTION half; its test against each neighbour runs on the TEST half only: p_vs_smaller /
p_vs_larger = the one-sided normal p of the selected k's test-half score minus the neighbour's, over
the SD of that difference across test-half resamples (NaN where there is no neighbour). Not the
share of reflected resamples below zero: with no structure the subspaces are poorly determined,
resamples of the same prompts keep their directions, and that share was anti-conservative (8.5% at
a 5% level). Each half is calibrated against its own label-permuted null mean (subspaces from fewer
prompts overlap more by chance, by an amount that depends on k, so the full data's null mean would
favour some k in both halves alike). Testing the argmax against its neighbours on the bootstrap it
was picked from passed 42% of simulated data sets with no best k (tests/test_alignment_kselect.py);
with the split, 2%. The curve columns (mean, ci_low, ci_high, p_best) describe all held-out prompts.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck import stats
from emocheck.alignment.analysis import single_blas_thread
from emocheck.alignment.maps import LinearMap
from emocheck.alignment.overlap import overlap_curves
from emocheck.alignment.nulls import label_permuted_null
from emocheck.alignment.subspaces import difference_subspaces, reference_labels
from emocheck.errors import ConfigError


def _calibrated(o, null_mean):
    return (o - null_mean) / np.maximum(1 - null_mean, 1e-12)


@single_blas_thread
def bootstrap_k(fitted: LinearMap, zs_held: np.ndarray, zt_held: np.ndarray, labels_held: np.ndarray,
                emotions: list[str], contrast: str, k_max: int, null_means: dict[str, np.ndarray],
                null_draws: dict[str, np.ndarray], n_resamples: int, seed: int, confidence: float = 0.95,
                half_null_draws: int = 200) -> pd.DataFrame:
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
    wins = np.bincount(np.argmax(boot, axis=1), minlength=k_max) / n_resamples

    # selection apart from the test (see the module doc)
    halves = [{}, {}]
    for g, idx in groups.items():
        perm = rng.permutation(idx)
        halves[0][g], halves[1][g] = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2:])

    def half_scores(half, n_boot):
        rows = np.concatenate(list(half.values()))
        sub_labels = labels_held[rows]
        means = {e: label_permuted_null(fitted, zs_held[rows], zt_held[rows], sub_labels, e, contrast, emotions,
                                        k_max, half_null_draws, seed + 7 + i).mean(0)
                 for i, e in enumerate(emotions)}
        local = {g: np.flatnonzero(sub_labels == g) for g in half}
        zs_h, zt_h = zs_held[rows], zt_held[rows]

        def sc(d):
            per = []
            for e in emotions:
                ref = reference_labels(e, contrast, emotions)
                rows_r = np.concatenate([d[r] for r in ref], axis=1)
                ua = difference_subspaces(zs_h, d[e], rows_r, k_max)
                ub = difference_subspaces(zt_h, d[e], rows_r, k_max)
                per.append(_calibrated(overlap_curves(ua @ fitted.source_matrix, ub @ fitted.target_matrix, k_max),
                                       means[e]))
            return np.array(per).mean(0)

        obs = sc({g: idx[None] for g, idx in local.items()})[0]
        if not n_boot:
            return obs, None
        d = {g: rng.choice(idx, size=(n_boot, len(idx)), replace=True) for g, idx in local.items()}
        return obs, 2 * obs - sc(d)

    select_obs, _ = half_scores(halves[0], 0)
    best = int(np.argmax(select_obs))
    test_obs, boot_test = half_scores(halves[1], n_resamples)

    def beats(nb):
        from scipy.stats import norm

        diff = test_obs[best] - test_obs[nb]
        se = float(np.std(boot_test[:, best] - boot_test[:, nb], ddof=1))
        return float(norm.sf(diff / se)) if se > 0 else (0.0 if diff > 0 else 1.0)
    # the null band in calibrated units: each emotion's label-permuted draws, calibrated, averaged
    null_cal = np.mean([_calibrated(null_draws[e], null_means[e]) for e in emotions], axis=0)
    p_smaller = np.full(k_max, np.nan)
    p_larger = np.full(k_max, np.nan)
    if best > 0:
        p_smaller[best] = beats(best - 1)
    if best < k_max - 1:
        p_larger[best] = beats(best + 1)
    return pd.DataFrame({
        "contrast": contrast, "k": np.arange(1, k_max + 1), "mean": observed, "ci_low": low, "ci_high": high,
        "p_best": wins, "best": np.arange(k_max) == best,
        "null_low": np.quantile(null_cal, a, axis=0), "null_high": np.quantile(null_cal, 1 - a, axis=0),
        "p_best_vs_smaller_k": p_smaller, "p_best_vs_larger_k": p_larger, "selection_half_score": select_obs,
        **{f"score_{e}": per_emotion[i] for i, e in enumerate(emotions)},
        "n_resamples": n_resamples,
    })


def k_selection_by_emotion(per_emotion_scores: np.ndarray, n_resamples: int, seed: int) -> pd.DataFrame:
    """stats.k_selection_bootstrap over emotions (units) of calibrated curves [n_emotions, k_max]."""
    return stats.k_selection_bootstrap(per_emotion_scores, n_resamples=n_resamples, seed=seed)
