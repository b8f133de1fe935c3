"""Q1 analysis: how well an emotion direction separates prompts, layer by layer.

A direction (emotion vector) is estimated on training prompts; every prompt is scored by its
projection onto the unit direction; separation is Cohen's d and AUC between two groups of prompts.
The layer is chosen on training prompts only, by 5-fold cross-validation inside the training split
(direction from four folds, scores on the fifth; the d of the out-of-fold scores), because a direction
scored on the prompts it was estimated from looks better the more dimensions and noise a layer has.
It is judged on held-out prompts, so the reported held-out numbers carry no selection bias.

Contrasts:
    vs_neutral  emotion prompts against neutral prompts (nearly separable by surface form alone,
                so it proves little by itself)
    vs_other    emotion prompts against the prompts of the other emotions (the specificity test)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from emocheck import stats
from emocheck.errors import ConfigError
from emocheck.storage import atomic_save_figure
from emocheck.representations.build import Representations
from emocheck.representations.vectors import vectors_for_layer

CONTRASTS = ("vs_neutral", "vs_other")


def projections(x: torch.Tensor, direction: torch.Tensor) -> np.ndarray:
    norm = direction.double().norm()
    if norm == 0:  # no direction (identical group means): every prompt scores 0
        return np.zeros(x.shape[0])
    return (x.double() @ (direction.double() / norm)).numpy()


def contrast_groups(reps: Representations, emotion: str, contrast: str, split_name: str):
    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown contrast {contrast!r}; one of {', '.join(CONTRASTS)}")
    if emotion not in reps.emotions:
        raise ConfigError(f"unknown emotion {emotion!r}; the dataset has {', '.join(reps.emotions)}")
    treated = reps.rows(emotion, split_name)
    others = ["neutral"] if contrast == "vs_neutral" else [e for e in reps.emotions if e != emotion]
    control = reps.rows(others, split_name)
    return treated, control


def _cv_scores(x: torch.Tensor, labels: np.ndarray, train: np.ndarray, emotions: list[str], emotion: str,
               direction_kind: str, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold projections for the training rows (NaN elsewhere)."""
    idx = np.flatnonzero(train)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(idx), dtype=int)
    for e in np.unique(labels[idx]):                     # stratified by emotion
        members = rng.permutation(np.flatnonzero(labels[idx] == e))
        fold_of[members] = np.arange(len(members)) % folds
    scores = np.full(len(labels), np.nan)
    for f in range(folds):
        fit, held = idx[fold_of != f], idx[fold_of == f]
        direction = vectors_for_layer(x[fit], labels[fit], emotions)[direction_kind][emotion]
        scores[held] = projections(x[held], direction)
    return scores


def layer_profile(reps: Representations, emotion: str, *, direction_kind: str, contrast: str,
                  site: str = "hook_resid_post", position: str = "last", folds: int = 5) -> pd.DataFrame:
    """Per layer: cross-validated training d (what the layer is chosen by), training d and AUC with the
    full-training direction, and held-out d and AUC."""
    rows = []
    labels = reps.prompts["emotion"].to_numpy()
    train = reps.rows(split_name="train")
    t_train, c_train = contrast_groups(reps, emotion, contrast, "train")
    for layer in reps.layers:
        x = reps.activations.get(layer, site, position)
        direction = reps.vectors.vector(emotion, layer, direction_kind, site, position)
        scores = projections(x, direction)
        cv = _cv_scores(x, labels, train, reps.emotions, emotion, direction_kind, folds, reps.profile.seed)
        rec = {"model": reps.model, "emotion": emotion, "direction": direction_kind, "contrast": contrast,
               "site": site, "position": position, "layer": layer,
               "train_cv_d": stats.cohens_d(cv[t_train], cv[c_train])}
        for split_name in ("train", "held_out"):
            t, c = contrast_groups(reps, emotion, contrast, split_name)
            rec[f"{split_name}_d"] = stats.cohens_d(scores[t], scores[c])
            rec[f"{split_name}_auc"] = stats.auc(scores[t], scores[c])
        rows.append(rec)
    return pd.DataFrame(rows)


def choose_layer(profile: pd.DataFrame) -> int:
    """The layer with the largest cross-validated TRAINING d (ties: the earliest)."""
    return int(profile.loc[profile["train_cv_d"].idxmax(), "layer"])


def held_out_scores(reps: Representations, emotion: str, layer: int, *, direction_kind: str, contrast: str,
                    site: str = "hook_resid_post", position: str = "last"):
    """(treated scores, control scores, treated ids, control ids) on held-out prompts."""
    direction = reps.vectors.vector(emotion, layer, direction_kind, site, position)
    scores = projections(reps.activations.get(layer, site, position), direction)
    t, c = contrast_groups(reps, emotion, contrast, "held_out")
    ids = reps.prompts["id"].to_numpy()
    return scores[t], scores[c], ids[t].tolist(), ids[c].tolist()


def plot_layer_profiles(profiles: pd.DataFrame, path) -> None:
    """One panel per contrast: held-out AUC by layer, a line per emotion and direction kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contrasts = list(dict.fromkeys(profiles["contrast"]))
    fig, axes = plt.subplots(1, len(contrasts), figsize=(6 * len(contrasts), 4), squeeze=False)
    for ax, contrast in zip(axes[0], contrasts):
        sub = profiles[profiles["contrast"] == contrast]
        for (emotion, kind), g in sub.groupby(["emotion", "direction"]):
            ax.plot(g["layer"], g["held_out_auc"], marker="o", ms=3, label=f"{emotion} ({kind})")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("layer (resid_post)")
        ax.set_ylabel("held-out AUC")
        ax.set_title(f"{profiles['model'].iloc[0]}: emotion {contrast.replace('_', ' ')}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)
