"""Emotion subspaces of one model in any coordinates (raw or reduced), from chosen rows.

As in phase 3 (emocheck.representations.vectors), a subspace is the uncentred PCA (SVD) of per-sample
differences from a reference mean, so the first component carries the mean displacement:
    vs_neutral  rows of the emotion minus the mean of the neutral rows
    vs_other    rows of the emotion minus the mean of the other emotions' rows (emotion-specific; the
                vs-neutral subspaces of different emotions share one 'emotional' direction)
"""
from __future__ import annotations

import numpy as np

from emocheck.errors import ConfigError

CONTRASTS = ("vs_neutral", "vs_other")


def reference_labels(emotion: str, contrast: str, emotions: list[str]) -> list[str]:
    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown contrast {contrast!r}; one of {', '.join(CONTRASTS)}")
    if emotion not in emotions:
        raise ConfigError(f"unknown emotion {emotion!r}; the data have {', '.join(emotions)}")
    return ["neutral"] if contrast == "vs_neutral" else [e for e in emotions if e != emotion]


def difference_subspace(z_emotion: np.ndarray, z_reference: np.ndarray, k: int) -> np.ndarray:
    """Top-k right singular vectors [k, d] of (z_emotion - mean(z_reference))."""
    if len(z_emotion) < 2 or len(z_reference) < 1:
        raise ConfigError(f"a subspace needs at least 2 emotion rows and 1 reference row "
                          f"(got {len(z_emotion)} and {len(z_reference)})")
    diffs = np.asarray(z_emotion, dtype=float) - np.asarray(z_reference, dtype=float).mean(0)
    _, _, vh = np.linalg.svd(diffs, full_matrices=False)
    if vh.shape[0] < k:
        raise ConfigError(f"k={k} exceeds the rank available ({vh.shape[0]}) from {len(z_emotion)} rows")
    return vh[:k]


def contrast_subspace(z: np.ndarray, labels: np.ndarray, emotion: str, contrast: str, emotions: list[str],
                      k: int) -> np.ndarray:
    ref = reference_labels(emotion, contrast, emotions)
    labels = np.asarray(labels)
    return difference_subspace(z[labels == emotion], z[np.isin(labels, ref)], k)


def difference_subspaces(z: np.ndarray, emotion_rows: np.ndarray, reference_rows: np.ndarray, k: int,
                         chunk: int = 256) -> np.ndarray:
    """Batched difference_subspace: row-index arrays [K, n_e] and [K, n_r] -> bases [K, k, d]."""
    z = np.asarray(z, dtype=float)
    out = np.empty((len(emotion_rows), k, z.shape[1]))
    for s in range(0, len(emotion_rows), chunk):
        diffs = z[emotion_rows[s:s + chunk]] - z[reference_rows[s:s + chunk]].mean(1, keepdims=True)
        if min(diffs.shape[1:]) < k:
            raise ConfigError(f"k={k} exceeds the rank available from {diffs.shape[1]} rows")
        # top-k eigenvectors of D'D (d x d) = top right singular vectors of D, without forming U:
        # about 5x faster than a batched SVD for the thousands of null draws
        _, vecs = np.linalg.eigh(np.swapaxes(diffs, 1, 2) @ diffs)
        out[s:s + chunk] = np.swapaxes(vecs[:, :, ::-1][:, :, :k], 1, 2)
    return out
