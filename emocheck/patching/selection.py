"""Layer/alpha selection on the tuning prompts, gated on the TREATED directions only.

**Rule** (fixed in advance; applied to a sweep on tuning prompts disjoint from the judged ones): sweep
layers at 25/50/75% depth x alphas, with each emotion vector and a random direction (fresh draw per
prompt, norm = mean ||v_e||). A cell is *fluent* when, against the unpatched baseline on the tuning
prompts, none of the EMOTION vectors raises the median continuation NLL (under the unpatched model)
by more than log(1.5) nats/token or the mean repeated-3-gram fraction by more than 0.10. Among fluent
cells pick the largest mean (over emotions) paired d of the emotion vector vs the unpatched baseline
on the emotion's target evaluator; ties go to the smaller alpha. No fluent cell: the middle layer,
smallest alpha.

The old rule also required the random direction to be fluent, so the control set the dose (on Gemma
a random direction of the vector's norm breaks the text from alpha 0.5, and the rule picked 0.25,
where nothing can hold). The random directions' fluency is now a finding of its own
(:func:`random_fluency`, table + figure), and :func:`dose_matched_alpha` picks the alpha at which a
random direction costs as much fluency as the treated vectors at the selected cell, for a
dose-matched control.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from emocheck.patching.running import SCORE_COLUMNS
from emocheck.study import EMBEDDED_EMOTIONS, make_study

#: The embedded study's targets (a run passes the active study's: Study.targets)
TARGETS = make_study(EMBEDDED_EMOTIONS).targets()
from emocheck.patching.scoring import paired_d
from emocheck.storage import atomic_save_figure

FLUENCY_MAX_DNLL = math.log(1.5)
FLUENCY_MAX_DREP3 = 0.10


def sweep_layers(n_layers: int, fractions) -> list[int]:
    return sorted({min(n_layers - 1, max(0, int(round(f * (n_layers - 1))))) for f in fractions})


def sweep_table(samples: pd.DataFrame, targets: dict | None = None) -> pd.DataFrame:
    """Dose-response: per layer x alpha x condition, score shifts and fluency vs the baseline, and each
    emotion vector's signed d on its target (`targets`: emotion -> (column, sign); Study.targets)."""
    targets = TARGETS if targets is None else targets
    base = samples[samples["kind"] == "baseline"].set_index("sample_id")
    rows = []
    for (layer, alpha), cell in samples[samples["kind"] != "baseline"].groupby(["layer", "alpha"]):
        for cond, sub in cell.groupby("condition"):
            sub = sub.set_index("sample_id")
            kind, emo = sub["kind"].iloc[0], sub["emotion"].iloc[0]
            row = {"layer": int(layer), "alpha": float(alpha), "condition": cond, "kind": kind, "emotion": emo,
                   "median_dnll": float(sub["nll"].median() - base["nll"].median()),
                   "mean_drep3": float(np.nanmean(sub["rep3"]) - np.nanmean(base["rep3"])),
                   "mean_distinct2": float(np.nanmean(sub["distinct2"])),
                   "n_empty": int(sub["empty"].sum()) if "empty" in sub else int((sub["text"].str.strip() == "").sum()),
                   "example": str(sub["text"].iloc[0])[:120]}
            for col in dict.fromkeys([*SCORE_COLUMNS, *(c for c in sub.columns if c.startswith("emo_"))]):
                if col in sub:
                    row[f"{col}_vs_baseline"] = float((sub[col] - base.loc[sub.index, col]).mean())
            if emo in targets and kind == "emotion":
                col, sign = targets[emo]
                if col in sub:
                    row["target"] = col
                    row["target_d_vs_baseline"] = paired_d(sign * (sub[col] - base.loc[sub.index, col]))
            rows.append(row)
    return pd.DataFrame(rows)


def _fluent(cell: pd.DataFrame) -> bool:
    return bool((cell["median_dnll"] <= FLUENCY_MAX_DNLL).all() and (cell["mean_drep3"].fillna(0) <= FLUENCY_MAX_DREP3).all())


def select_layer_alpha(table: pd.DataFrame, n_layers: int) -> dict:
    """The fixed rule (module doc) applied to a sweep table from the TUNING prompts."""
    cells = []
    for (layer, alpha), cell in table.groupby(["layer", "alpha"]):
        treated = cell[cell["kind"] == "emotion"]
        effect = float(treated["target_d_vs_baseline"].mean()) if "target_d_vs_baseline" in treated else math.nan
        rand = cell[cell["kind"] == "random"]
        cells.append({"layer": int(layer), "alpha": float(alpha), "fluent": _fluent(treated), "effect": effect,
                      "random_fluent": _fluent(rand) if len(rand) else None,
                      "treated_median_dnll": float(treated["median_dnll"].mean()),
                      "random_median_dnll": float(rand["median_dnll"].mean()) if len(rand) else math.nan})
    cells = pd.DataFrame(cells)
    ok = cells[cells["fluent"] & np.isfinite(cells["effect"])]
    if len(ok):
        best = ok.sort_values(["effect", "alpha"], ascending=[False, True]).iloc[0]
        reason = "largest mean target d vs baseline among cells where the emotion vectors stay fluent"
    else:
        layers = sorted(cells["layer"].unique())
        mid = layers[len(layers) // 2]
        best = cells[cells["layer"] == mid].sort_values("alpha").iloc[0]
        reason = "no fluent cell: middle layer, smallest alpha"
    layer, alpha = int(best["layer"]), float(best["alpha"])
    return {"layer": layer, "alpha": alpha, "reason": reason,
            "dose_matched_alpha": dose_matched_alpha(cells, layer, alpha),
            "cells": cells.to_dict(orient="records")}


def dose_matched_alpha(cells: pd.DataFrame, layer: int, alpha: float) -> float:
    """The sweep alpha at `layer` whose random-direction median dNLL is closest to the emotion vectors'
    at (layer, alpha); ties go to the smaller alpha."""
    at = cells[cells["layer"] == layer]
    target = float(at.loc[at["alpha"] == alpha, "treated_median_dnll"].iloc[0])
    at = at[np.isfinite(at["random_median_dnll"])]
    if not len(at):
        return float(alpha)
    gap = (at["random_median_dnll"] - target).abs()
    return float(at.assign(gap=gap).sort_values(["gap", "alpha"]).iloc[0]["alpha"])


def random_fluency(table: pd.DataFrame) -> pd.DataFrame:
    """Finding of its own: fluency cost of random directions (norm = mean ||v_e||) vs the emotion vectors."""
    rows = []
    for (layer, alpha), cell in table.groupby(["layer", "alpha"]):
        rand, emo = cell[cell["kind"] == "random"], cell[cell["kind"] == "emotion"]
        rows.append({"layer": int(layer), "alpha": float(alpha),
                     "random_median_dnll": float(rand["median_dnll"].mean()) if len(rand) else math.nan,
                     "random_mean_drep3": float(rand["mean_drep3"].mean()) if len(rand) else math.nan,
                     "emotion_median_dnll": float(emo["median_dnll"].mean()),
                     "emotion_mean_drep3": float(emo["mean_drep3"].mean()),
                     "random_breaks_text": bool(len(rand)) and not _fluent(rand),
                     "emotion_breaks_text": not _fluent(emo)})
    return pd.DataFrame(rows)


def _alpha_axis(ax, alphas) -> None:
    """A log2 alpha axis whose limits come from the swept alphas, not from the plotted data: with a tiny
    sweep a d can be undefined (NaN on every point), and a log axis with no finite data has no limits."""
    a = np.asarray([x for x in alphas if np.isfinite(x) and x > 0], dtype=float)
    if a.size:
        ax.set_xlim(a.min() / 1.4, a.max() * 1.4)
    ax.set_xscale("log", base=2)


def plot_sweep(table: pd.DataFrame, path: Path, title: str = "", targets: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emo = table[table["kind"] == "emotion"]
    targets = TARGETS if targets is None else targets
    emotions = [e for e in targets if e in set(emo["emotion"])]
    fig, axes = plt.subplots(1, len(emotions) + 1, figsize=(4 * (len(emotions) + 1), 3.4), squeeze=False)
    for ax, e in zip(axes[0], emotions):
        for layer, sub in emo[emo["emotion"] == e].groupby("layer"):
            sub = sub.sort_values("alpha")
            ax.plot(sub["alpha"], sub.get("target_d_vs_baseline", np.nan), marker="o", label=f"layer {layer}")
        if not np.isfinite(pd.to_numeric(emo[emo["emotion"] == e].get("target_d_vs_baseline", pd.Series(dtype=float)),
                                         errors="coerce")).any():
            ax.text(0.5, 0.5, "d undefined\n(too few tuning prompts)", transform=ax.transAxes, ha="center",
                    va="center", fontsize=8, color="grey")
        ax.axhline(0, color="grey", lw=0.5)
        _alpha_axis(ax, table["alpha"])
        ax.set_title(f"{e}: {targets[e][0]} (signed) d vs baseline", fontsize=9)
        ax.set_xlabel("alpha (x ||emotion vector||)")
    ax = axes[0][-1]
    for (layer, kind), sub in table.groupby(["layer", "kind"]):
        sub = sub.groupby("alpha")["median_dnll"].max().sort_index()
        ax.plot(sub.index, sub.values, marker="o", ls="-" if kind == "emotion" else "--", label=f"L{layer} {kind}")
    ax.axhline(FLUENCY_MAX_DNLL, color="red", lw=0.7)
    _alpha_axis(ax, table["alpha"])
    ax.set_title("fluency: max median dNLL vs baseline", fontsize=9)
    ax.set_xlabel("alpha")
    ax.legend(fontsize=6)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def plot_random_fluency(rf: pd.DataFrame, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for layer, sub in rf.groupby("layer"):
        sub = sub.sort_values("alpha")
        line, = ax.plot(sub["alpha"], sub["random_median_dnll"], ls="--", marker="x", label=f"L{layer} random")
        ax.plot(sub["alpha"], sub["emotion_median_dnll"], ls="-", marker="o", color=line.get_color(),
                label=f"L{layer} emotion vectors")
    ax.axhline(FLUENCY_MAX_DNLL, color="red", lw=0.7)
    _alpha_axis(ax, rf["alpha"])
    ax.set_xlabel("alpha (x ||emotion vector||)")
    ax.set_ylabel("median continuation NLL shift (nats/token)")
    ax.set_title(title or "random directions vs emotion vectors: fluency cost", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_save_figure(fig, path)
