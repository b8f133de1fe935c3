"""Head patch-in during generation (phase 6 (ii)): does writing the top emotion heads' mean output into
neutral generations move the evaluators more than random head sets do, and at what fluency cost?

Design (fixed before any judged result was looked at):

* Prompts: neutral openings from the phase-5 hash split (`emocheck.patching.splits`, stratified by
  topic and genre; the tuning prompts are never judged). `judged_prompts` per profile: the first n of
  the phase-5 judged order (ci 40, so phase 5's 20 judged prompts are the first half; full 100 of its 200).
* Conditions per judged prompt: `baseline` (no patch); per emotion `top:e` (the top-8 heads of e,
  ranked on TRAINING prompts by direct effect, `emocheck.heads.screening`) and `random:e` (a random
  set of 8 heads with the same layer profile, drawn FRESH for every prompt from a seed of (profile
  seed, emotion, prompt id), so the paired difference carries the set-to-set variance: random sets
  are a random effect exactly as phase 5's fresh random directions). Both write the heads' mean
  `hook_z` over HELD-OUT prompts of e (the screen's last-token z; the ranking saw the training prompts,
  and a mean over them would carry the noise that ranked the heads: `emocheck.heads.growth`,
  `intervention_rows`) at the last prompt token (step 0) and the next 4 generated tokens (window
  (0, 5), phase 5's window), greedy, profile.new_tokens.
* What the claim asserts: the top set raises the evaluator more than the AVERAGE random set of its
  layer profile (one fresh draw per prompt: the paired t tests the population mean of the random
  sets; the set-to-set variance tau^2 cannot be separated from the prompt noise, so whether the top
  set is outside the random sets' distribution is not tested here).
* All rows of a model are one batched generation on the fast engine (shared prompt prefix, dropped
  rows; `emocheck.heads.fast_generation`, token-identical to nnsight and plain hooks), scored with
  the T2 evaluators (`emocheck.patching.running.score_all`) and phase 5's fluency measures
  (continuation NLL under the unpatched model, repeated 3-grams).

Outputs under results/<profile>/patching/heads/<model>/generation/: samples.parquet (+ .json: key,
sets, timings), summary.csv, scores.png (score distributions of baseline, random and top sets).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from emocheck.heads.growth import CLAIM_N, intervention_rows, out_dir
from emocheck.heads.nulls import random_head_sets
from emocheck.heads.specs import HeadPatchSpec
from emocheck.profiles import Profile
from emocheck.storage import atomic_save_figure, atomic_write_dataframe, file_lock, read_table_artifact, stable_hash
from emocheck.storage import write_table_artifact
from emocheck import timing
from emocheck.study import EMBEDDED_EMOTIONS, make_study, study_for

log = logging.getLogger(__name__)

GENERATION_CODE_VERSION = "head-generation-v2"     # v2: written means from held-out prompts
WINDOW = (0, 5)
#: emotion -> the evaluator column that should rise: the embedded study's labels (Study.labels; apology
#: reads as remorse); a run reads the active study's
EVALUATOR = make_study(EMBEDDED_EMOTIONS).labels()


def settings(profile: Profile) -> dict:
    """The judged prompts of the profile (its `heads.generation_prompts`). full: 100 of phase 5's 200
    judged prompts (the first half of its judged order), for the time budget (80% power at d >= 0.54
    under the rule, against 0.44 on 200)."""
    return {"judged_prompts": profile.heads.generation_prompts}


def judged_prompts(profile: Profile) -> pd.DataFrame:
    """The judged neutral openings: phase 5's split, the first n of its judged order (None = phase 5's n)."""
    from emocheck.dataset import load_generation_prompts
    from emocheck.patching.experiment import settings as phase5_settings, split_generation_prompts
    from emocheck.patching.splits import split_prompts

    n = settings(profile)["judged_prompts"]
    if n is None:
        return split_generation_prompts(profile)[0]
    prompts = load_generation_prompts()          # the same file as phase 5's split (the plugin's option)
    return split_prompts(prompts, n, phase5_settings(profile)["tuning_prompts"], profile.seed)[0]


def random_set_for(chosen, n_heads: int, seed: int, emotion: str, prompt_id: str):
    """The fresh random set of one (emotion, prompt): same layer profile as `chosen`, seeded by name."""
    s = int(stable_hash({"seed": seed, "emotion": emotion, "prompt": prompt_id}, 12), 16)
    return random_head_sets(chosen, n_heads, 1, s)[0]


def design(screen_result, scores, reps, emotions, prompts: pd.DataFrame, seed: int, n: int = CLAIM_N):
    """Rows (dicts: sample_id, condition, kind, emotion, heads) and per-row values {layer: [R, H, hd]}."""
    rows, value_rows = [], []
    n_layers, n_heads = scores["z_last"].shape[1:3]
    means = {}
    for e in emotions:
        src = intervention_rows(reps, e, "patch_in")[1]                      # held-out prompts of e
        means[e] = scores["z_last"][src].double().mean(0).float()            # [L, H, hd]
    blank = torch.full_like(means[emotions[0]], float("nan"))
    for pid in prompts["id"]:
        rows.append({"sample_id": pid, "condition": "baseline", "kind": "baseline", "emotion": "", "heads": ()})
        value_rows.append(blank)
        for e in emotions:
            chosen = tuple(screen_result.top_heads(e, n))
            for kind, heads in (("top", chosen), ("random", random_set_for(chosen, n_heads, seed, e, pid))):
                rows.append({"sample_id": pid, "condition": f"{kind}:{e}", "kind": kind, "emotion": e, "heads": heads})
                value_rows.append(means[e])
    stacked = torch.stack(value_rows)                                        # [R, L, H, hd]
    return rows, {layer: stacked[:, layer] for layer in range(n_layers)}


@timing.timed("heads")
def run_generation(model_name: str, profile: Profile, progress: bool = False) -> pd.DataFrame:
    """The samples table of every condition on the judged prompts (cached by key; see module doc)."""
    from emocheck.heads.experiment import screen
    from emocheck.heads.fast_generation import generate_heads_fast
    from emocheck.models.registry import load_model
    from emocheck.patching.fluency import fluency_table
    from emocheck.patching.running import SCORE_COLUMNS, score_all

    study = study_for(profile)
    screen_result, scores, reps = screen(model_name, profile, progress=progress)
    prompts = judged_prompts(profile)
    rows, values = design(screen_result, scores, reps, list(study.emotions), prompts, profile.seed)
    columns = study.score_columns()
    # the embedded study's columns are the key's default, so its cached tables stay valid
    scored = {} if columns == SCORE_COLUMNS else {"scores": list(columns)}
    key = stable_hash({"code": GENERATION_CODE_VERSION, "model": model_name, "vectors": reps.vectors.meta.get("key"),
                       "prompts": prompts[["id", "text"]].values.tolist(), "window": WINDOW,
                       "tokens": profile.new_tokens,
                       "rows": [[r["condition"], r["sample_id"], [list(h) for h in r["heads"]]] for r in rows],
                       **scored}, 24)
    d = out_dir(profile, model_name) / "generation"
    path = d / "samples.parquet"
    with file_lock(path):
        cached = read_table_artifact(path, key=key, what="head generation samples")
        if cached is not None:
            return cached
        loaded = load_model(model_name)
        text_of = dict(zip(prompts["id"], prompts["text"]))
        texts = [text_of[r["sample_id"]] for r in rows]
        specs = [HeadPatchSpec(r["heads"], "replace", "last", window=WINDOW, max_new_tokens=profile.new_tokens,
                               label=r["condition"]) if r["heads"] else None for r in rows]
        t0, c0 = time.perf_counter(), time.process_time()      # CPU time: what a quiet machine's wall would be
        res = generate_heads_fast(loaded, texts, specs, values)
        t_gen, c_gen = time.perf_counter() - t0, time.process_time() - c0
        df = pd.DataFrame({"sample_id": [r["sample_id"] for r in rows], "prompt": texts,
                           "condition": [r["condition"] for r in rows], "kind": [r["kind"] for r in rows],
                           "emotion": [r["emotion"] for r in rows],
                           "heads": [";".join(f"L{a}H{b}" for a, b in r["heads"]) for r in rows],
                           "text": res.texts})
        if "topic" in prompts:
            df["topic"] = df["sample_id"].map(dict(zip(prompts["id"], prompts["topic"])))
        df = pd.concat([df, fluency_table(loaded, res)], axis=1)
        t1, c1 = time.perf_counter(), time.process_time()
        df = pd.concat([df, score_all(df["text"].tolist(), columns)], axis=1)
        t_score, c_score = time.perf_counter() - t1, time.process_time() - c1
        write_table_artifact(path, df, {"key": key, "model": model_name, "n_rows": len(df), "n_prompts": len(prompts),
                                        "window": list(WINDOW), "generation_seconds": t_gen,
                                        "generation_cpu_seconds": c_gen, "scoring_seconds": t_score,
                                        "scoring_cpu_seconds": c_score, "threads": torch.get_num_threads(),
                                        "tokens": res.meta.get("tokens")})
        log.info("%s: head generation %d rows in %.0f s (+ %.0f s evaluators)", model_name, len(df), t_gen, t_score)
    write_summary(df, d, model_name, study.labels())
    return df


def write_summary(df: pd.DataFrame, d, model_name: str, labels: dict | None = None) -> pd.DataFrame:
    labels = EVALUATOR if labels is None else labels
    cols = [c for c in dict.fromkeys((*labels.values(), "sentiment", "politeness", "nll", "rep3", "n_tokens")) if c in df]
    summary = df.groupby(["condition", "kind", "emotion"], as_index=False)[cols].mean()
    atomic_write_dataframe(d / "summary.csv", summary)
    try:
        plot_scores(df, d / "scores.png", f"{model_name}: evaluator scores of generated text, top-8 vs random 8-head sets",
                    labels)
    except Exception as exc:  # a figure must never fail a claim
        log.warning("could not draw the head generation figure: %s", exc)
    return summary


def plot_scores(df: pd.DataFrame, path, title: str = "", labels: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = EVALUATOR if labels is None else labels
    emotions = [e for e in labels if (df["emotion"] == e).any()]
    fig, axes = plt.subplots(1, len(emotions) + 1, figsize=(3.6 * (len(emotions) + 1), 3.2), squeeze=False)
    base = df[df["kind"] == "baseline"]
    for ax, e in zip(axes[0], emotions):
        col = labels[e]
        groups = [base[col].dropna(), df[df["condition"] == f"random:{e}"][col].dropna(),
                  df[df["condition"] == f"top:{e}"][col].dropna()]
        ax.boxplot(groups, showfliers=False)
        ax.set_xticks([1, 2, 3], ["baseline", "random 8", "top 8"])
        for i, g in enumerate(groups, start=1):
            ax.scatter(np.full(len(g), i) + np.linspace(-0.15, 0.15, len(g)), g, s=6, alpha=0.5)
        ax.set_title(f"{e}: {col}", fontsize=9)
    ax = axes[0][-1]
    conds = ["baseline"] + [f"{k}:{e}" for e in emotions for k in ("random", "top")]
    ax.boxplot([df[df["condition"] == c]["nll"].dropna() for c in conds], showfliers=False)
    ax.set_xticks(range(1, len(conds) + 1), conds, rotation=60, fontsize=7)
    ax.set_title("continuation NLL (unpatched model)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)
