"""Phase 5 experiment, entry point: tuning sweep -> selection -> judged conditions -> tables and figures.

Design (decided before looking at any judged result; the pieces live in their own modules):

* **Scale.** alpha multiplies the CAA-style emotion vector ``v_e = mean(resid | e) - mean(resid |
  neutral)`` at the patched layer and site (last prompt token, training prompts). Every control
  direction is rescaled to ``||v_e||`` so alpha is one displacement size (``directions``).
* **Schedule.** ``fixed``: the same alpha at each of the 5 window tokens (``residual.PatchSpec``).
* **Split.** Tuning and judged generation prompts by hash, stratified by topic and genre (``splits``).
* **Selection.** Layer and alpha from a sweep on the tuning prompts, gated on the emotion vectors'
  fluency only; a dose-matched alpha for random controls (``selection``).
* **Conditions.** The emotion vector against null directions drawn fresh per prompt (random and
  label-permuted), the negated / specific / subspace directions, random subspaces, and prompting as
  a reference condition (``conditions``); all rows batched into one generation (``running``).
* **Evidence.** Raw paired differences; fluency non-inferiority as claims of their own; ANCOVA and
  topic-cluster p-values as sensitivity columns (``scoring``). Propagation to later layers from a
  forward pass (``propagation``).

``python -m emocheck.patching.experiment --profile ci --models smollm2-135m gemma3-270m`` runs it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import pandas as pd

from emocheck.patching.conditions import EMOTIONS, Condition, claim_conditions, subset_of, sweep_conditions  # noqa: F401 (re-export)
from emocheck.patching.directions import emotion_direction, random_directions  # noqa: F401 (re-export)
from emocheck.patching.residual import PatchSpec
from emocheck.patching.running import condition_key, empty_counts, run_conditions
from emocheck.patching.selection import (plot_random_fluency, plot_sweep, random_fluency, select_layer_alpha,
                                         sweep_layers, sweep_table)
from emocheck.patching.splits import balance, split_prompts
from emocheck.profiles import SECONDARY_CONDITIONS, Profile, get_profile, results_dir
from emocheck.storage import read_table_artifact, write_table_artifact
from emocheck.storage import atomic_save_figure, atomic_write_dataframe, atomic_write_json, file_lock, stable_hash
from emocheck.study import NLL_MARGIN, REP3_MARGIN, study_for  # noqa: F401 (re-export: the fluency margins)

log = logging.getLogger(__name__)

#: The secondary conditions of the design, in design order.
ALL_SECONDARY = SECONDARY_CONDITIONS
#: The sizes of phase 5 are the profile's `patching` fields (emocheck.profiles.PatchingSizes). ci is
#: sized for a CPU shared by several jobs (about 20 rows/min): 20 judged prompts, so each null (random,
#: label-permuted) still has K = 20 draws. rows_per_batch is the engine's CPU batch: a decode step reads
#: every weight whatever the batch (Gemma's 262k x 640 unembedding alone is 670 MB), so larger batches
#: cost less per row (`python benchmarks/bench_batch_rows.py gemma3-270m --sizes 32 96 192`). full is
#: sized for an hour on 2 cores (emocheck.patching.budget): the emotion vectors and the baseline on all
#: 200 judged prompts, the random and label-permuted draws on 100 of them (K = 100 fresh draws each),
#: the secondary conditions on 40 (nested in the 100), and a 3-layer x 4-alpha sweep on 8 tuning prompts.
DEFAULT_WINDOW = (0, 5)


def settings(profile: Profile) -> dict:
    """The profile's phase-5 sizes as a dict (emocheck.profiles.PatchingSizes)."""
    return asdict(profile.patching)


def split_generation_prompts(profile: Profile, prompts: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(judged, tuning) for the profile: hash-stratified by topic and genre (emocheck.patching.splits)."""
    if prompts is None:
        from emocheck.dataset import load_generation_prompts

        prompts = load_generation_prompts()
    st = settings(profile)
    return split_prompts(prompts, st["judged_prompts"] or profile.generation_prompts, st["tuning_prompts"], profile.seed)


def random_seed_base(profile: Profile) -> int:
    return 1_000_003 * (profile.seed + 1)


def null_prompt_ids(profile: Profile, judged: pd.DataFrame) -> tuple:
    """The judged prompts the random and label-permuted draws run on (the profile's `null_prompts`; all when
    unset), in the claim design's seeded hash order: later phases that run their own random controls on
    a budget (circuit modulation) use the same nested subset, so their prompts pair with phase 5's."""
    return subset_of(judged["id"], settings(profile).get("null_prompts"), random_seed_base(profile))


def base_spec(profile: Profile, model_name: str) -> PatchSpec:
    return PatchSpec(layers=(0,), site="hook_resid_post", alpha=1.0, window=DEFAULT_WINDOW,
                     max_new_tokens=profile.new_tokens, model=model_name)


def out_dir(profile: Profile, model_name: str, *parts: str) -> Path:
    return results_dir(profile, "patching", "residual", model_name, *parts)


def _reps(model_name: str, profile: Profile):
    from emocheck.representations.build import build_representations

    return build_representations(model_name, profile)


def null_source(reps):
    """(emotion, layer, site) -> training activations (emotion rows, neutral rows) at the last token."""
    def source(emotion: str, layer: int, site: str):
        x = reps.activations.get(layer, site, "last")
        return x[reps.rows(emotion, "train")], x[reps.rows("neutral", "train")]
    return source


@lru_cache(maxsize=None)
def sweep(model_name: str, profile_name: str, progress: bool = True) -> dict:
    """Run (or read) the tuning sweep; write dose_response.csv/png, random_fluency.csv/png, selection.json."""
    from emocheck.models.registry import load_model

    profile = get_profile(profile_name)
    st = settings(profile)
    study = study_for(profile)
    loaded = load_model(model_name)
    vecs = _reps(model_name, profile).vectors
    layers = [l for l in sweep_layers(loaded.n_layers, st["fractions"]) if l in vecs.layers]
    _, tuning = split_generation_prompts(profile)
    spec = base_spec(profile, model_name)
    conds = sweep_conditions(vecs, layers, st["alphas"], spec.site, random_seed_base(profile) + 999, tuning["id"],
                             emotions=study.emotions)
    d = out_dir(profile, model_name, "sweep")
    samples = run_conditions(loaded, tuning, conds, spec, d, rows_per_batch=st["rows_per_batch"], progress=progress,
                             score_columns=study.score_columns())
    table = sweep_table(samples, study.targets())
    selection = select_layer_alpha(table, loaded.n_layers)
    rf = random_fluency(table)
    selection["norms"] = {str(layer): {e: float(emotion_direction(vecs, e, layer, spec.site).norm()) for e in study.emotions}
                          for layer in layers}
    selection.update({"model": model_name, "profile": profile.name, "tuning_prompt_ids": tuning["id"].tolist(),
                      "tuning_topics": balance(tuning, "topic"), "tuning_genres": balance(tuning, "genre"),
                      "rule": "see emocheck.patching.selection module doc", "site": spec.site,
                      "window": list(spec.window), "schedule": spec.schedule})
    atomic_write_dataframe(d / "dose_response.csv", table)
    atomic_write_dataframe(d / "random_fluency.csv", rf)
    atomic_write_json(d / "selection.json", selection)
    plot_sweep(table, d / "dose_response.png", f"{model_name} ({profile.name}): tuning-prompt sweep", study.targets())
    plot_random_fluency(rf, d / "random_fluency.png", f"{model_name}: fluency cost, random vs emotion vectors")
    return selection


def _claim_conditions(model_name: str, profile: Profile, sel: dict, judged: pd.DataFrame):
    reps = _reps(model_name, profile)
    spec = base_spec(profile, model_name)
    study = study_for(profile)
    return claim_conditions(reps.vectors, sel["layer"], sel["alpha"], spec.site, judged["id"], random_seed_base(profile),
                            null_source=null_source(reps), subspaces=reps.subspaces,
                            dose_alpha=sel.get("dose_matched_alpha"), secondary=settings(profile)["secondary"],
                            null_prompts=settings(profile).get("null_prompts"),
                            secondary_prompts=settings(profile).get("secondary_prompts"), emotions=study.emotions,
                            prefixes={e: study.design(e).prompt_prefix for e in study.emotions})


@lru_cache(maxsize=None)
def claims_samples(model_name: str, profile_name: str, progress: bool = True) -> pd.DataFrame:
    """Per-sample table of every claim condition on the judged prompts at the selected layer/alpha."""
    from emocheck.models.registry import load_model

    profile = get_profile(profile_name)
    sel = sweep(model_name, profile_name, progress)
    loaded = load_model(model_name)
    judged, _ = split_generation_prompts(profile)
    conds = _claim_conditions(model_name, profile, sel, judged)
    d = out_dir(profile, model_name, "claims")
    samples = run_conditions(loaded, judged, conds, spec := base_spec(profile, model_name), d,
                             rows_per_batch=settings(profile)["rows_per_batch"], progress=progress,
                             score_columns=study_for(profile).score_columns())
    counts = samples.groupby("condition").size()
    atomic_write_json(d / "design.json", {
        "model": model_name, "profile": profile.name, "layer": sel["layer"], "alpha": sel["alpha"],
        "dose_matched_alpha": sel.get("dose_matched_alpha"), "site": spec.site, "judged_prompt_ids": judged["id"].tolist(),
        "judged_topics": balance(judged, "topic"), "judged_genres": balance(judged, "genre"),
        "rows_per_condition": {k: int(v) for k, v in counts.items()}, "n_rows": int(len(samples))})
    write_summary(samples, d, model_name, study_for(profile))
    return samples


@lru_cache(maxsize=None)
def propagation(model_name: str, profile_name: str, progress: bool = True) -> pd.DataFrame:
    """Projection shifts on v_e at layers >= L after patching at L (forward pass); propagation.csv/png."""
    from emocheck.models.registry import load_model
    from emocheck.patching.propagation import plot_propagation, propagation_table

    profile = get_profile(profile_name)
    sel = sweep(model_name, profile_name, progress)
    loaded = load_model(model_name)
    judged, _ = split_generation_prompts(profile)
    conds = _claim_conditions(model_name, profile, sel, judged)
    vecs = _reps(model_name, profile).vectors
    site = base_spec(profile, model_name).site
    read = [l for l in vecs.layers if l >= sel["layer"]]
    units = {e: {l: emotion_direction(vecs, e, l, site) for l in read} for e in study_for(profile).emotions}
    d = out_dir(profile, model_name, "propagation")
    key = stable_hash({"model": loaded.identity, "layer": sel["layer"], "site": site, "read": read,
                       "prompts": judged["id"].tolist(), "conds": [condition_key(c) for c in conds]})
    path = d / "propagation.csv"
    with file_lock(path):
        df = read_table_artifact(path, key=key, what="propagation table")   # verified; rebuilt when damaged
        if df is not None:
            return df
        df = propagation_table(loaded, judged, conds, sel["layer"], site, units)
        write_table_artifact(path, df, {"key": key, "layer": sel["layer"], "alpha": sel["alpha"], "read_layers": read})
    plot_propagation(df, d / "propagation.png", f"{model_name}: patch at layer {sel['layer']}, alpha {sel['alpha']:g}")
    return df


def write_summary(samples: pd.DataFrame, d: Path, model_name: str, study=None) -> pd.DataFrame:
    """summary.csv (per condition means), empty_counts.csv and a figure of score shift vs fluency shift
    (on each emotion's target column)."""
    study = study or study_for()
    scores = study.score_columns()
    cols = [c for c in (*scores, "nll", "ppl", "distinct2", "rep3", "n_tokens") if c in samples]
    summary = samples.groupby(["condition", "kind", "emotion"], as_index=False)[cols].mean()
    summary = summary.merge(empty_counts(samples), on=["condition", "kind", "emotion"])
    atomic_write_dataframe(d / "summary.csv", summary)
    atomic_write_dataframe(d / "empty_counts.csv", empty_counts(samples))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        base = summary[summary["kind"] == "baseline"].iloc[0]
        targets = list(dict.fromkeys(col for col, _ in study.targets().values())) or list(scores[:1])
        fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.4), squeeze=False)
        axes = axes[0]
        for ax, col in zip(axes, targets):
            if col not in summary:
                continue
            for kind, sub in summary[summary["kind"] != "baseline"].groupby("kind"):
                ax.scatter(sub["nll"] - base["nll"], sub[col] - base[col], label=kind, s=18)
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_xlabel("mean NLL shift vs baseline (unpatched model)")
            ax.set_title(f"{col} shift vs baseline", fontsize=9)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{model_name}: score vs fluency per condition", fontsize=10)
        fig.tight_layout()
        atomic_save_figure(fig, d / "conditions.png")
    except Exception as exc:  # a figure must never fail a claim
        log.warning("could not draw the conditions figure: %s", exc)
    return summary


def main(argv=None) -> int:
    """`python -m emocheck.patching.experiment --profile ci --models smollm2-135m gemma3-270m`."""
    import argparse

    ap = argparse.ArgumentParser(description="run (or resume) the phase-5 residual patching experiment")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--sweep-only", action="store_true")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    for model in args.models or profile.models:
        t = time.perf_counter()
        sel = sweep(model, profile.name)
        print(f"{model}: selected layer {sel['layer']} alpha {sel['alpha']} (dose-matched random alpha "
              f"{sel['dose_matched_alpha']}; {sel['reason']}) [{time.perf_counter() - t:.0f}s]", flush=True)
        if not args.sweep_only:
            propagation(model, profile.name)
            print(f"{model}: propagation done [{time.perf_counter() - t:.0f}s]", flush=True)
            samples = claims_samples(model, profile.name)
            print(f"{model}: {len(samples)} samples -> {out_dir(profile, model, 'claims')} "
                  f"[{time.perf_counter() - t:.0f}s]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
