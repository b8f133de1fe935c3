"""Functional transfer: a direction learned in the source model, mapped into the target, separates
the target's held-out prompts.

The direction is the emotion-specific mean difference (emotion minus the mean of the other emotions'
means) on the source's TRAINING rows, in the source's reduced coordinates. It is mapped as a
displacement (d @ source_matrix); the target's held-out rows are scored by their projection
(target coordinates @ target_matrix) onto the unit mapped direction. The claim compares the scores of
the target's held-out emotion prompts with those of the other emotions (d and AUC); the null is the
same computation for random directions of the source space mapped through the same map.
"""
from __future__ import annotations

import numpy as np

from emocheck import stats
from emocheck.alignment.maps import LinearMap
from emocheck.alignment.subspaces import reference_labels


def mean_direction(z: np.ndarray, labels: np.ndarray, emotion: str, contrast: str, emotions: list[str]) -> np.ndarray:
    labels = np.asarray(labels)
    ref = reference_labels(emotion, contrast, emotions)
    ref_mean = np.mean([z[labels == r].mean(0) for r in ref], axis=0)
    return z[labels == emotion].mean(0) - ref_mean


def project(z: np.ndarray, direction: np.ndarray) -> np.ndarray:
    u = np.asarray(direction, dtype=float).ravel()
    return np.asarray(z, dtype=float) @ (u / np.linalg.norm(u))


def transfer_scores(fitted: LinearMap, direction_a: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """Projections of the target rows zb onto the mapped source direction (in the common space)."""
    return project(fitted.target(zb), fitted.source(direction_a)[0])


def groups(labels: np.ndarray, emotion: str, contrast: str, emotions: list[str]):
    labels = np.asarray(labels)
    return labels == emotion, np.isin(labels, reference_labels(emotion, contrast, emotions))


def random_direction_aucs(fitted: LinearMap, zb: np.ndarray, treated: np.ndarray, control: np.ndarray,
                          draws: int, seed: int) -> np.ndarray:
    """AUCs of `draws` random source directions (isotropic in the source's reduced space) mapped
    through the same map and scored on the same target rows."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    mapped = rng.standard_normal((draws, fitted.source_matrix.shape[0])) @ fitted.source_matrix
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True)
    scores = mapped @ fitted.target(zb)[np.asarray(treated) | np.asarray(control)].T     # [draws, n]
    is_t = np.asarray(treated)[np.asarray(treated) | np.asarray(control)]
    ranks = rankdata(scores, axis=1)                     # ties get mid-ranks, as in stats.auc
    n_t, n_c = int(is_t.sum()), int((~is_t).sum())
    return (ranks[:, is_t].sum(1) - n_t * (n_t + 1) / 2) / (n_t * n_c)
