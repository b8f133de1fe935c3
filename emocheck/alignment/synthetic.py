"""Planted ground truth: synthetic paired activations of two 'models' with a known relation.

Model A's activations are a low-rank latent (prompt content) plus per-emotion structure (a mean shift
shared by all emotions, an emotion-specific shift and an emotion-specific extra variance direction, so
the emotion subspaces have k >= 2) read out into d_a dimensions with isotropic noise. Model B is
    rotation        Xa R                      (R a random orthogonal d x d)
    rotation_noise  Xa R + N(0, noise_b^2)
    width           Xa M + small noise        (M a random well-conditioned d_a x d_b matrix: a width-changing map)
    none            an independent model with its own emotion structure: no relation to A at all
Used by the tests (recovered / stays at the null) and the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emocheck.errors import ConfigError
from emocheck.study import EMBEDDED_EMOTIONS

RELATIONS = ("rotation", "rotation_noise", "width", "none")
EMOTIONS = EMBEDDED_EMOTIONS


@dataclass
class Planted:
    xa: np.ndarray
    xb: np.ndarray
    labels: np.ndarray
    train: np.ndarray          # boolean mask
    emotions: list[str]
    relation: str
    truth: np.ndarray | None   # the planted map (d_a x d_b), None for 'none'


def _model(rng, labels, emotions, d, latent, noise, shift):
    n = len(labels)
    spectrum = np.linspace(3.0, 1.0, latent)
    z = rng.standard_normal((n, latent)) * spectrum
    shared = rng.standard_normal(latent)
    shared *= shift / np.linalg.norm(shared)
    for e in emotions:
        rows = labels == e
        specific = rng.standard_normal(latent)
        specific *= shift / np.linalg.norm(specific)
        extra = rng.standard_normal(latent)
        extra /= np.linalg.norm(extra)
        z[rows] += shared + specific + 2.5 * rng.standard_normal((int(rows.sum()), 1)) * extra
    readout, _ = np.linalg.qr(rng.standard_normal((d, latent)))
    return z @ readout.T * 4.0 + noise * rng.standard_normal((n, d))


def planted_pair(relation: str, *, n_per_group: int = 120, d_a: int = 40, d_b: int | None = None, latent: int = 10,
                 noise: float = 0.3, noise_b: float = 1.0, shift: float = 4.0, held_out: float = 0.3,
                 seed: int = 0, emotions=EMOTIONS) -> Planted:
    if relation not in RELATIONS:
        raise ConfigError(f"unknown relation {relation!r}; one of {', '.join(RELATIONS)}")
    rng = np.random.default_rng(seed)
    emotions = list(emotions)
    labels = np.repeat([*emotions, "neutral"], n_per_group)
    train = np.ones(len(labels), dtype=bool)
    for g in [*emotions, "neutral"]:
        rows = np.flatnonzero(labels == g)
        train[rng.permutation(rows)[: int(round(held_out * len(rows)))]] = False
    xa = _model(rng, labels, emotions, d_a, latent, noise, shift)
    truth = None
    if relation in ("rotation", "rotation_noise"):
        truth, _ = np.linalg.qr(rng.standard_normal((d_a, d_a)))
        xb = xa @ truth
        if relation == "rotation_noise":
            xb = xb + noise_b * rng.standard_normal(xb.shape)
    elif relation == "width":
        d_b = d_b or d_a + 16
        # well conditioned (singular values 0.7-1.3): a map that crushes a direction would also push
        # it out of the top-p principal components, which no reduced-space map can undo
        left, _ = np.linalg.qr(rng.standard_normal((d_a, d_a)))
        right, _ = np.linalg.qr(rng.standard_normal((d_b, d_a)))
        truth = left @ np.diag(rng.uniform(0.7, 1.3, d_a)) @ right.T
        xb = xa @ truth + 0.05 * rng.standard_normal((len(labels), d_b))
    else:
        xb = _model(rng, labels, emotions, d_b or d_a, latent, noise, shift)
    return Planted(xa, xb, labels, train, emotions, relation, truth)
