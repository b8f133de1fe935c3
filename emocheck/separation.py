"""Q1 analysis: how well an emotion direction separates prompts, layer by layer.

A direction (emotion vector) is estimated on training prompts; every prompt is scored by its
projection onto the unit direction; separation is Cohen's d and AUC between two groups of prompts.
The layer is chosen on training prompts (largest training d) and judged on held-out prompts, so the
reported held-out numbers carry no selection bias.

Contrasts:
    vs_neutral  emotion prompts against neutral prompts (nearly separable by surface form alone,
                so it proves little by itself)
    vs_other    emotion prompts against the prompts of the other emotions (the specificity test)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import stats
from .errors import ConfigError
from .representations import Representations

CONTRASTS = ("vs_neutral", "vs_other")


def projections(x: torch.Tensor, direction: torch.Tensor) -> np.ndarray:
    u = direction.double() / direction.double().norm()
    return (x.double() @ u).numpy()


def contrast_groups(reps: Representations, emotion: str, contrast: str, split_name: str):
    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown contrast {contrast!r}; one of {', '.join(CONTRASTS)}")
    if emotion not in reps.emotions:
        raise ConfigError(f"unknown emotion {emotion!r}; the dataset has {', '.join(reps.emotions)}")
    treated = reps.rows(emotion, split_name)
    others = ["neutral"] if contrast == "vs_neutral" else [e for e in reps.emotions if e != emotion]
    control = reps.rows(others, split_name)
    return treated, control


def layer_profile(reps: Representations, emotion: str, *, direction_kind: str, contrast: str,
                  site: str = "hook_resid_post", position: str = "last") -> pd.DataFrame:
    """Per layer: training and held-out d and AUC of the projection onto the chosen direction."""
    rows = []
    for layer in reps.layers:
        direction = reps.vectors.vector(emotion, layer, direction_kind, site, position)
        scores = projections(reps.activations.get(layer, site, position), direction)
        rec = {"model": reps.model, "emotion": emotion, "direction": direction_kind, "contrast": contrast,
               "site": site, "position": position, "layer": layer}
        for split_name in ("train", "held_out"):
            t, c = contrast_groups(reps, emotion, contrast, split_name)
            rec[f"{split_name}_d"] = stats.cohens_d(scores[t], scores[c])
            rec[f"{split_name}_auc"] = stats.auc(scores[t], scores[c])
        rows.append(rec)
    return pd.DataFrame(rows)


def choose_layer(profile: pd.DataFrame) -> int:
    """The layer with the largest TRAINING d (ties: the earliest)."""
    return int(profile.loc[profile["train_d"].idxmax(), "layer"])


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
    from .storage import atomic_write_bytes
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
