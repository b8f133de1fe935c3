"""Figures of phase 4 (PNG beside the CSVs): the layer-pair heat map and the k curves with bands."""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck.storage import atomic_save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_layer_heatmap(table: pd.DataFrame, chosen: tuple[int, int], title: str, path) -> None:
    """Two panels: training overlap (what the pair is chosen by) and held-out calibrated score, by layer
    pair; the chosen pair is boxed and the relative-depth diagonal drawn."""
    plt = _plt()
    src = sorted(table["source_layer"].unique())
    tgt = sorted(table["target_layer"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, col, label in ((axes[0], "train_overlap", "training overlap (selection)"),
                           (axes[1], "held_out_score", "held-out calibrated score (vs label-permuted)")):
        grid = table.pivot(index="source_layer", columns="target_layer", values=col).loc[src, tgt].to_numpy()
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=ax, label=label)
        depth = [np.argmin([abs((t + 1) / len(tgt) - (s + 1) / len(src)) for t in range(len(tgt))]) for s in range(len(src))]
        ax.plot(depth, range(len(src)), color="white", lw=0.8, ls="--", label="equal relative depth")
        ax.add_patch(plt.Rectangle((tgt.index(chosen[1]) - 0.5, src.index(chosen[0]) - 0.5), 1, 1, fill=False,
                                   ec="red", lw=2, label="chosen on training"))
        ax.set_xlabel(f"target layer ({table.attrs.get('target', 'target')})")
        ax.set_ylabel(f"source layer ({table.attrs.get('source', 'source')})")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def plot_k_curves(overlaps: pd.DataFrame, kselect: pd.DataFrame, title: str, path) -> None:
    """Per contrast: raw overlap per emotion with the chance k/d line and the label-permuted null band
    (left), and the calibrated score with its prompt-bootstrap band and the null band (right)."""
    plt = _plt()
    contrasts = list(dict.fromkeys(kselect["contrast"]))
    fig, axes = plt.subplots(len(contrasts), 2, figsize=(11, 3.6 * len(contrasts)), squeeze=False)
    for row, contrast in zip(axes, contrasts):
        sub = overlaps[overlaps["contrast"] == contrast]
        for emotion, g in sub.groupby("emotion", sort=False):
            line = row[0].plot(g["k"], g["observed"], marker="o", ms=3, label=emotion)[0]
            row[0].fill_between(g["k"], g["label_permuted_low"], g["label_permuted_high"], color=line.get_color(), alpha=0.12)
        g0 = sub.drop_duplicates("k")
        row[0].plot(g0["k"], g0["chance_k_over_d"], color="grey", ls="--", label="chance k/d")
        row[0].set_ylim(0, 1.02)
        row[0].set_xlabel("k")
        row[0].set_ylabel("overlap (mean cos^2)")
        row[0].set_title(f"{contrast}: overlap after alignment; bands = label-permuted null 95%", fontsize=9)
        row[0].legend(fontsize=7)
        ks = kselect[kselect["contrast"] == contrast]
        row[1].plot(ks["k"], ks["mean"], marker="o", color="C3", label="calibrated score (mean over emotions)")
        row[1].fill_between(ks["k"], ks["ci_low"], ks["ci_high"], color="C3", alpha=0.2, label="prompt bootstrap 95%")
        row[1].fill_between(ks["k"], ks["null_low"], ks["null_high"], color="grey", alpha=0.25, label="null 95%")
        row[1].axhline(0, color="grey", lw=0.8)
        best = ks[ks["best"]]
        row[1].scatter(best["k"], best["mean"], s=80, facecolors="none", edgecolors="k", label="best k")
        row[1].set_xlabel("k")
        row[1].set_ylabel("calibrated score")
        row[1].set_title(f"{contrast}: k selection", fontsize=9)
        row[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)
