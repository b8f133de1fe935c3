"""Emotion vectors and subspaces (phase 3), as plain functions over extracted activations.

For each layer, site and position rule, from the TRAINING split only (held-out prompts judge them):

    vs_neutral  emotion_vec(layer, e) = mean(resid | e) - mean(resid | neutral)      (the seed's definition)
    vs_other    mean(resid | e) - mean over the other emotions of mean(resid | e')   (emotion-specific)
    specific    vs_neutral with the shared emotional component projected out; the shared component is
                the unit mean of all emotions' vs_neutral vectors. Needed because the vs_neutral vectors
                of different emotions point largely the same way ("emotional vs neutral").

Subspaces: PCA over the per-sample difference vectors resid_i(e) - mean(resid | neutral), UNcentred
(SVD of the differences), so the first component carries the mean displacement (the emotion vector's
direction) and the next ones the main ways emotion prompts differ from neutral; k up to 10, with
eigenvalues (s^2 / (n-1)) and explained variance ratios (s^2 / sum s^2 over all components).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from emocheck.errors import ConfigError

VECTOR_KINDS = ("vs_neutral", "vs_other", "specific")


def mean_difference(treated: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    return treated.double().mean(0) - control.double().mean(0)


def unit(v: torch.Tensor) -> torch.Tensor:
    n = v.norm()
    if n == 0:
        raise ConfigError("cannot normalise a zero vector")
    return v / n


def project_out(v: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    u = unit(direction)
    return v - (v @ u) * u


def vectors_for_layer(x: torch.Tensor, labels: np.ndarray, emotions: list[str], neutral: str = "neutral") -> dict:
    """{kind: {emotion: vector [d]}} for one layer/site/position; x [n, d], labels [n] (train rows)."""
    means = {}
    for e in [*emotions, neutral]:
        rows = torch.as_tensor(labels == e)
        if int(rows.sum()) < 2:
            raise ConfigError(f"emotion {e!r} has {int(rows.sum())} training prompts; vectors need at least 2")
        means[e] = x[rows].double().mean(0)
    vs_neutral = {e: means[e] - means[neutral] for e in emotions}
    vs_other = {}
    for e in emotions:
        others = [means[o] for o in emotions if o != e]
        vs_other[e] = means[e] - torch.stack(others).mean(0) if others else vs_neutral[e]
    shared = torch.stack([vs_neutral[e] for e in emotions]).mean(0)
    # A zero shared component (e.g. resid_pre of block 0 at a last token every prompt shares, such as
    # a final ".") leaves nothing to project out.
    usable = len(emotions) > 1 and bool(shared.norm() > 0)
    specific = {e: project_out(vs_neutral[e], shared) if usable else vs_neutral[e] for e in emotions}
    return {"vs_neutral": vs_neutral, "vs_other": vs_other, "specific": specific}


def subspace_for_layer(x_emotion: torch.Tensor, x_neutral: torch.Tensor, k: int = 10) -> dict:
    """Uncentred PCA of per-sample differences from the neutral mean."""
    diffs = x_emotion.double() - x_neutral.double().mean(0)
    n = diffs.shape[0]
    _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    k = min(k, vh.shape[0])
    power = s**2
    return {
        "components": vh[:k],                      # [k, d], rows orthonormal
        "eigenvalues": power[:k] / max(n - 1, 1),
        "explained": power[:k] / power.sum(),
    }


@dataclass
class EmotionVectors:
    """Vectors per (position, site, kind): tensors [n_layers, n_emotions, d_model] in float32."""
    model: str
    layers: list[int]
    emotions: list[str]
    tensors: dict[str, torch.Tensor]                 # '<position>/<site>/<kind>' -> [L, E, d]
    neutral_norm: dict[str, torch.Tensor] = field(default_factory=dict)  # '<position>/<site>' -> [L] median norm
    meta: dict = field(default_factory=dict)

    def vector(self, emotion: str, layer: int, kind: str = "vs_neutral", site: str = "hook_resid_post",
               position: str = "last") -> torch.Tensor:
        if emotion not in self.emotions:
            raise ConfigError(f"unknown emotion {emotion!r}; vectors exist for {', '.join(self.emotions)}")
        if layer not in self.layers:
            raise ConfigError(f"layer {layer} is out of range: vectors exist for layers {self.layers[0]}..{self.layers[-1]}")
        if kind not in VECTOR_KINDS:
            raise ConfigError(f"unknown vector kind {kind!r}; one of {', '.join(VECTOR_KINDS)}")
        name = f"{position}/{site}/{kind}"
        if name not in self.tensors:
            raise ConfigError(f"no vectors for position {position!r} and site {site!r}")
        return self.tensors[name][self.layers.index(layer), self.emotions.index(emotion)].clone()

    def cosine_matrix(self, layer: int, kind: str = "vs_neutral", site: str = "hook_resid_post",
                      position: str = "last") -> np.ndarray:
        v = torch.stack([self.vector(e, layer, kind, site, position) for e in self.emotions]).double()
        v = v / v.norm(dim=1, keepdim=True)
        return (v @ v.T).numpy()


@dataclass
class EmotionSubspaces:
    model: str
    layers: list[int]
    emotions: list[str]
    tensors: dict[str, torch.Tensor]   # '<position>/<site>/<emotion>/{components,eigenvalues,explained}'
    meta: dict = field(default_factory=dict)

    def components(self, emotion: str, layer: int, k: int | None = None, site: str = "hook_resid_post",
                   position: str = "last") -> torch.Tensor:
        if emotion not in self.emotions:
            raise ConfigError(f"unknown emotion {emotion!r}; subspaces exist for {', '.join(self.emotions)}")
        if layer not in self.layers:
            raise ConfigError(f"layer {layer} is out of range: subspaces exist for layers {self.layers[0]}..{self.layers[-1]}")
        comps = self.tensors[f"{position}/{site}/{emotion}/components"][self.layers.index(layer)]
        if k is not None and not 1 <= k <= comps.shape[0]:
            raise ConfigError(f"k={k} is out of range 1..{comps.shape[0]}")
        return comps[:k].clone()

    def explained(self, emotion: str, layer: int, site: str = "hook_resid_post", position: str = "last") -> torch.Tensor:
        return self.tensors[f"{position}/{site}/{emotion}/explained"][self.layers.index(layer)].clone()

    def eigenvalues(self, emotion: str, layer: int, site: str = "hook_resid_post", position: str = "last") -> torch.Tensor:
        return self.tensors[f"{position}/{site}/{emotion}/eigenvalues"][self.layers.index(layer)].clone()


def compute_emotion_vectors(acts, labels: np.ndarray, emotions: list[str], *, model: str = "?") -> EmotionVectors:
    """From an ActivationSet restricted to training rows (labels aligned with acts.ids)."""
    layers = acts.layers
    tensors, norms = {}, {}
    neutral_rows = torch.as_tensor(labels == "neutral")
    for position in acts.meta["positions"]:
        for site in acts.meta["sites"]:
            per_kind = {k: [] for k in VECTOR_KINDS}
            layer_norms = []
            for layer in layers:
                x = acts.get(layer, site, position)
                vecs = vectors_for_layer(x, labels, emotions)
                for kind in VECTOR_KINDS:
                    per_kind[kind].append(torch.stack([vecs[kind][e] for e in emotions]))
                layer_norms.append(x[neutral_rows].norm(dim=1).median())
            for kind in VECTOR_KINDS:
                tensors[f"{position}/{site}/{kind}"] = torch.stack(per_kind[kind]).float()
            norms[f"{position}/{site}"] = torch.stack(layer_norms).float()
    return EmotionVectors(model, list(layers), list(emotions), tensors, norms)


def compute_emotion_subspaces(acts, labels: np.ndarray, emotions: list[str], *, k: int = 10, model: str = "?") -> EmotionSubspaces:
    tensors = {}
    neutral_rows = torch.as_tensor(labels == "neutral")
    for position in acts.meta["positions"]:
        for site in acts.meta["sites"]:
            for e in emotions:
                rows = torch.as_tensor(labels == e)
                parts = [subspace_for_layer(acts.get(layer, site, position)[rows],
                                            acts.get(layer, site, position)[neutral_rows], k) for layer in acts.layers]
                kk = min(p["components"].shape[0] for p in parts)
                for name in ("components", "eigenvalues", "explained"):
                    tensors[f"{position}/{site}/{e}/{name}"] = torch.stack([p[name][:kk] for p in parts]).float()
    return EmotionSubspaces(model, list(acts.layers), list(emotions), tensors)
