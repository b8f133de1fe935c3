"""Directions patched in phase 5 and their null distributions.

Every direction is rescaled to the emotion vector's norm ||v_e|| at the patched layer, so alpha is one
displacement size shared by the treated direction and all of its controls.

* `random_directions`: isotropic Gaussian draws (draw k from seed + k).
* `label_permuted_directions`: difference-of-means vectors with the emotion/neutral labels of the
  training prompts shuffled, at the same layer, site, position and group sizes. They keep the
  anisotropy of the real residual stream (Gemma's few massive dimensions dominate them as they
  dominate v_e), which isotropic draws lack; "better than a label-permuted vector" is the stricter null.
* `subspace_direction`: v_e projected onto the emotion's top-k PCA subspace (the seed's "subspace
  directions"); `random_subspace_directions`: v_e projected onto random k-subspaces, its null.
"""
from __future__ import annotations

import numpy as np
import torch

from emocheck.errors import ConfigError


def _rescale(v: torch.Tensor, norm: float) -> torch.Tensor:
    n = float(v.norm())
    if n == 0 or not np.isfinite(n):
        raise ConfigError("cannot rescale a zero or non-finite direction")
    return v / n * float(norm)


def random_directions(d: int, n: int, seed: int, norm: float | torch.Tensor = 1.0) -> torch.Tensor:
    """[n, d] Gaussian directions, each rescaled to `norm`; draw k uses seed + k (recorded)."""
    out = []
    for k in range(n):
        g = torch.Generator().manual_seed(int(seed) + k)
        out.append(_rescale(torch.randn(d, generator=g, dtype=torch.float64), float(norm)))
    return torch.stack(out) if out else torch.zeros(0, d, dtype=torch.float64)


def emotion_direction(vecs, emotion: str, layer: int, site: str, kind: str = "vs_neutral") -> torch.Tensor:
    """v_e (kind vs_neutral) or another kind rescaled to ||v_e||."""
    v = vecs.vector(emotion, layer, kind="vs_neutral", site=site).double()
    if kind == "vs_neutral":
        return v
    return _rescale(vecs.vector(emotion, layer, kind=kind, site=site).double(), float(v.norm()))


def label_permuted_directions(x_emotion: torch.Tensor, x_neutral: torch.Tensor, n: int, seed: int,
                              norm: float | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """[n, d] difference-of-means vectors with emotion/neutral labels shuffled (same group sizes).

    x_emotion [n_e, d], x_neutral [n_0, d]: training activations at one layer/site/position. Draw k
    permutes the pooled rows with seed + k. Returns (directions rescaled to `norm` (or raw when None),
    raw norms / ||true difference of means|| per draw, to report how small chance differences are).
    """
    xe, x0 = x_emotion.double(), x_neutral.double()
    if xe.shape[0] < 2 or x0.shape[0] < 2:
        raise ConfigError("label-permutation nulls need at least 2 emotion and 2 neutral training prompts")
    pooled = torch.cat([xe, x0])
    ne = xe.shape[0]
    true_norm = float((xe.mean(0) - x0.mean(0)).norm())
    out, ratios = [], []
    for k in range(n):
        g = torch.Generator().manual_seed(int(seed) + k)
        perm = torch.randperm(pooled.shape[0], generator=g)
        v = pooled[perm[:ne]].mean(0) - pooled[perm[ne:]].mean(0)
        ratios.append(float(v.norm()) / true_norm if true_norm else float("nan"))
        out.append(_rescale(v, norm) if norm is not None else v)
    return torch.stack(out), np.asarray(ratios)


def subspace_direction(v: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """v projected onto the row space of `components` ([k, d], orthonormal rows), rescaled to ||v||."""
    c = components.double()
    return _rescale(c.T @ (c @ v.double()), float(v.norm()))


def random_subspace_directions(v: torch.Tensor, k: int, n: int, seed: int) -> torch.Tensor:
    """[n, d]: v projected onto n random k-dimensional subspaces (draw j from seed + j), rescaled to ||v||."""
    d = v.shape[-1]
    out = []
    for j in range(n):
        g = torch.Generator().manual_seed(int(seed) + j)
        q, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
        out.append(_rescale(q @ (q.T @ v.double()), float(v.norm())))
    return torch.stack(out) if out else torch.zeros(0, d, dtype=torch.float64)

