"""Exact growth curves and specificity of the top head sets (phase 6, Q3), from real patched passes.

* `exact_growth_table`: for every emotion, intervention (mean / zero / resample ablation, patch-in;
  `emocheck.heads.growth.EXACT_KINDS`) and n = 1, 2, 4, 8, 16, the top-n set's mean exact effect on
  the final-layer emotion projection over a seeded sample of held-out prompts, against the per-set
  means of the profile's random sets with the same layer profile (`emocheck.heads.growth.exact`, one
  prefix pass per prompt and every set as one row of a last-token batch). Written as
  growth_exact.csv + growth_exact.png under results/<profile>/patching/heads/<model>/.
* `specificity`: on the held-out prompts of one emotion, the exact effect of mean-ablating the top-8
  heads of EACH emotion on that emotion's final-layer projection (same prompts, same direction, same
  neutral means): does an emotion's own set remove more of it than the other emotions' sets do?
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck.heads.growth import (CLAIM_N, EXACT_KINDS, N_VALUES, _final_unit, exact_arrays, exact_effects, exact_many,
                                   intervention_rows, out_dir)
from emocheck.heads.nulls import monte_carlo_p
from emocheck.study import study_for
from emocheck.profiles import Profile
from emocheck.storage import atomic_save_figure, atomic_write_dataframe, file_lock, read_table_artifact, stable_hash
from emocheck.storage import write_table_artifact

SPECIFICITY_CODE_VERSION = "head-specificity-v1"


def exact_grid(model_name: str, profile: Profile, kinds=EXACT_KINDS, n_values=N_VALUES,
               progress: bool = False) -> dict:
    """{(emotion, kind, n): exact table} for the whole grid, computed together (`exact_many`: one prefix
    pass per prompt for every table that is not cached yet) and read from the cache afterwards."""
    requests = [(e, kind, n) for e in study_for(profile).emotions for kind in kinds for n in n_values]
    return dict(zip(requests, exact_many(model_name, profile, requests, progress=progress)))


def exact_growth_table(model_name: str, profile: Profile, kinds=EXACT_KINDS, n_values=N_VALUES,
                       progress: bool = False) -> pd.DataFrame:
    tables = exact_grid(model_name, profile, kinds, n_values, progress=progress)
    rows = []
    for e in study_for(profile).emotions:
        for kind in kinds:
            for n in n_values:
                df = tables[(e, kind, n)]
                treated, control = exact_arrays(df)
                per_set = control.mean(0)                      # each random set's mean over the prompts
                obs, sd = float(treated.mean()), float(per_set.std(ddof=1))
                fo = df.groupby("set")["first_order"].mean()
                rows.append({"emotion": e, "kind": kind, "n": n, "observed": obs,
                             "null_mean": float(per_set.mean()), "null_sd": sd,
                             "null_p95": float(np.percentile(per_set, 95)),
                             "z": (obs - float(per_set.mean())) / sd if sd > 0 else float("nan"),
                             "rank": int(1 + np.sum(per_set > obs)), "mc_p": monte_carlo_p(obs, per_set),
                             "first_order_observed": float(fo.loc[0]), "n_sets": int(control.shape[1]),
                             "n_prompts": int(len(treated)), "heads": df.loc[df.set == 0, "heads"].iloc[0]})
    return pd.DataFrame(rows)


def write_exact_growth(model_name: str, profile: Profile, progress: bool = False) -> pd.DataFrame:
    from emocheck.heads.growth import plot_growth

    table = exact_growth_table(model_name, profile, progress=progress)
    d = out_dir(profile, model_name)
    atomic_write_dataframe(d / "growth_exact.csv", table)
    plot_growth(table, d / "growth_exact.png", ylabel="exact effect on final proj.",
                title=f"{model_name}: top-n heads vs random sets of the same layers (exact, held-out prompts)")
    return table


def specificity(model_name: str, profile: Profile, emotion: str, n: int = CLAIM_N, progress: bool = False) -> pd.DataFrame:
    """Columns: prompt_id, set_emotion, effect (exact drop of the `emotion` projection), heads. The
    prompts are every held-out `emotion` prompt of the screen sample."""
    from emocheck.heads.experiment import screen
    from emocheck.models.registry import load_model

    screen_result, scores, reps = screen(model_name, profile, progress=progress)
    emotions = study_for(profile).emotions
    sets = {e: tuple(screen_result.top_heads(e, n)) for e in emotions}
    run, source = intervention_rows(reps, emotion, "ablate")
    ids = reps.prompts["id"].to_numpy()[run]
    key = stable_hash({"code": SPECIFICITY_CODE_VERSION, "model": model_name, "vectors": reps.vectors.meta.get("key"),
                       "sets": sets, "prompts": ids.tolist(), "emotion": emotion}, 24)
    path = out_dir(profile, model_name) / f"specificity_{emotion}_n{n}.csv"
    with file_lock(path):
        cached = read_table_artifact(path, key=key, what="head specificity effects")
        if cached is not None:
            return cached
        loaded = load_model(model_name)
        z_mean = scores["z_last"][source].double().mean(0).float()
        texts = reps.prompts["text"].to_numpy()[run].tolist()
        eff = exact_effects(loaded, texts, [sets[e] for e in emotions], z_mean,
                            _final_unit(reps, emotion, loaded.n_layers - 1), "ablate", progress=progress,
                            desc=f"specificity {emotion} {model_name}")
        df = pd.DataFrame([{"prompt_id": ids[j], "set_emotion": e, "effect": eff[i, j],
                            "heads": ";".join(f"L{a}H{b}" for a, b in sets[e])}
                           for i, e in enumerate(emotions) for j in range(len(ids))])
        write_table_artifact(path, df, {"key": key, "emotion": emotion, "n": n})
    return df


def specificity_arrays(df: pd.DataFrame, own: str, other: str):
    """(own-set effects, other-set effects, prompt ids), paired by prompt."""
    wide = df.pivot(index="prompt_id", columns="set_emotion", values="effect")
    return wide[own].to_numpy(), wide[other].to_numpy(), list(wide.index)


def plot_specificity(tables: dict[str, pd.DataFrame], path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(3.4 * len(tables), 3.0), squeeze=False)
    for ax, (emotion, df) in zip(axes[0], tables.items()):
        order = list(dict.fromkeys(df["set_emotion"]))
        ax.boxplot([df[df.set_emotion == e]["effect"] for e in order], showfliers=False)
        ax.set_xticks(range(1, len(order) + 1), [f"top-8 {e}" for e in order], rotation=30, fontsize=7)
        ax.set_title(f"drop of the {emotion} projection", fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)
