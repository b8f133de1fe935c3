"""Phase 5 experiment: residual patching conditions, random controls, evaluator scores, sweep, plots.

Design (decided before looking at any judged result; see also emocheck.patching):

**Scale.** alpha multiplies the CAA-style emotion vector ``v_e = mean(resid | e) - mean(resid | neutral)``
at the patched layer and site (last prompt token, training prompts only). alpha = 1 moves a residual
by the average emotion-vs-neutral displacement, whatever the model's residual norm: Gemma 3's few
massive dimensions make a scale relative to the raw residual norm meaningless (a "small" random vector
at 0.5 x norm wrecks its text). Random controls are drawn with exactly ``||v_e||`` (so "alpha" is a
displacement size shared by the treated and control conditions); the "specific" direction (``v_e`` with
the shared emotional component projected out) is rescaled to ``||v_e||`` too.

**Schedule.** ``fixed`` (the project's one schedule): the same alpha at each of the window's tokens, so
alpha means the same displacement at every patched token and no decay rate has to be chosen; the
5-token window is already short. ``exp_decay`` stays available in PatchSpec.

**Conditions** (all on the same prompts, paired by prompt; one batched generation, one direction per
row, zero for the baseline - the tests prove this changes no token): ``baseline``; per emotion e:
``e`` (v_e), ``neg:e`` (-v_e), ``specific:e``; ``random{k}:e`` for k < profile.random_directions
(seeded Gaussian directions with norm ||v_e||, seeds recorded); ``signflip:e`` (v_e with random
coordinate signs: same norm and same per-dimension magnitudes - the fairer null on Gemma, whose few
massive residual dimensions make an isotropic random direction far more destructive than v_e).

**Layer and alpha selection rule** (fixed in advance; evaluated on TUNING prompts disjoint from the
judged ones, `split_generation_prompts`): sweep layers at 25/50/75% depth x alpha in SWEEP_ALPHAS with
each emotion vector and one random direction (norm = mean ||v_e||). A cell is *fluent* when, against the
unpatched baseline on the tuning prompts, no condition raises the median continuation NLL (under the
unpatched model) by more than log(1.5) nats/token and none raises the mean repeated-3-gram fraction by
more than 0.10. Among fluent cells pick the largest mean (over emotions) paired d of the emotion
vector vs the random direction on the emotion's target evaluator (gratitude: politeness; anger:
-sentiment; apology: remorse); ties go to the smaller alpha. No fluent cell: the middle layer, smallest
alpha.

**Fluency control for claims** (emocheck.patching.experiment.paired_scores): per prompt, the score
difference D_i (treated - control) is regressed on the fluency difference F_i (continuation NLL under
the unpatched model, treated - control): D = b0 + b1 F. The claim is judged on D_i - b1 F_i, whose
mean is the intercept b0 = the effect expected at equal fluency. The raw d, b1, the mean fluency
difference and repetition differences are recorded as metrics beside it.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emocheck.errors import ConfigError
from emocheck.patching.fluency import fluency_table
from emocheck.patching.residual import PatchSpec, generate_patched
from emocheck.profiles import Profile, get_profile, results_dir
from emocheck.storage import (atomic_save_figure, atomic_write_dataframe, atomic_write_json, file_lock, read_table_artifact,
                              sidecar_path, stable_hash, write_table_artifact)

log = logging.getLogger(__name__)

EXPERIMENT_VERSION = 1
EMOTIONS = ("gratitude", "anger", "apology")
#: Each emotion's target evaluator column and the sign of the predicted effect.
TARGETS = {"gratitude": ("politeness", +1), "anger": ("sentiment", -1), "apology": ("emo_remorse", +1)}
SCORE_COLUMNS = ("sentiment", "politeness", "emo_gratitude", "emo_anger", "emo_remorse")
SWEEP_FRACTIONS = (0.25, 0.5, 0.75)
SWEEP_ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
FLUENCY_MAX_DNLL = math.log(1.5)
FLUENCY_MAX_DREP3 = 0.10
#: Per profile: tuning prompts (disjoint from judged ones), sweep grid, rows per batched generation.
SETTINGS = {
    "smoke": {"tuning_prompts": 4, "fractions": (0.5,), "alphas": (0.5, 2.0), "rows_per_batch": 64},
    "ci": {"tuning_prompts": 10, "fractions": SWEEP_FRACTIONS, "alphas": SWEEP_ALPHAS, "rows_per_batch": 96},
    "full": {"tuning_prompts": 20, "fractions": SWEEP_FRACTIONS, "alphas": SWEEP_ALPHAS, "rows_per_batch": 96},
}
DEFAULT_WINDOW = (0, 5)


def settings(profile: Profile) -> dict:
    base = dict(SETTINGS.get(profile.name, SETTINGS["ci"]))
    base.update(profile.extra.get("patching", {}) if isinstance(profile.extra, dict) else {})
    return base


# ---------------------------------------------------------------------------------------- prompts


def split_generation_prompts(profile: Profile, prompts: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(judged, tuning): judged = the first `generation_prompts` rows, tuning = the LAST rows.

    Disjoint by construction; raises when the file is too small for both.
    """
    if prompts is None:
        from emocheck.dataset import load_generation_prompts

        prompts = load_generation_prompts()
    n_tune = settings(profile)["tuning_prompts"]
    n = profile.generation_prompts
    if n + n_tune > len(prompts):
        raise ConfigError(
            f"profile {profile.name!r} wants {n} judged + {n_tune} tuning generation prompts but the file has "
            f"{len(prompts)}"
        )
    return prompts.iloc[:n].reset_index(drop=True), prompts.iloc[len(prompts) - n_tune:].reset_index(drop=True)


# ---------------------------------------------------------------------------------------- directions


def random_directions(d: int, n: int, seed: int, norm: float | torch.Tensor = 1.0) -> torch.Tensor:
    """[n, d] Gaussian directions, each rescaled to `norm`; draw k uses seed + k (recorded)."""
    out = []
    for k in range(n):
        g = torch.Generator().manual_seed(int(seed) + k)
        v = torch.randn(d, generator=g, dtype=torch.float64)
        out.append(v / v.norm() * float(norm))
    return torch.stack(out) if out else torch.zeros(0, d, dtype=torch.float64)


def random_seed_base(profile: Profile) -> int:
    return 1_000_003 * (profile.seed + 1)


@dataclass
class Condition:
    name: str
    kind: str                 # baseline | emotion | negated | specific | random
    emotion: str | None
    layer: int | None
    alpha: float
    vector: torch.Tensor      # [d] already multiplied by alpha (zeros for the baseline)
    seed: int | None = None
    norm: float = 0.0         # norm of the unscaled direction (= ||v_e|| for all but the baseline)


def _vectors(model_name: str, profile: Profile):
    from emocheck.representations.build import emotion_vectors

    return emotion_vectors(model_name, profile)


def emotion_direction(vecs, emotion: str, layer: int, site: str, kind: str = "vs_neutral") -> torch.Tensor:
    v = vecs.vector(emotion, layer, kind="vs_neutral", site=site).double()
    if kind == "vs_neutral":
        return v
    other = vecs.vector(emotion, layer, kind=kind, site=site).double()
    return other / other.norm() * v.norm()


def claim_conditions(vecs, layer: int, alpha: float, site: str, n_random: int, seed: int,
                     emotions=EMOTIONS) -> list[Condition]:
    d = vecs.vector(emotions[0], layer, site=site).shape[-1]
    conds = [Condition("baseline", "baseline", None, layer, 0.0, torch.zeros(d, dtype=torch.float64))]
    units = random_directions(d, n_random, seed, 1.0)
    for e in emotions:
        v = emotion_direction(vecs, e, layer, site)
        n = float(v.norm())
        conds.append(Condition(e, "emotion", e, layer, alpha, alpha * v, norm=n))
        conds.append(Condition(f"neg:{e}", "negated", e, layer, alpha, -alpha * v, norm=n))
        conds.append(Condition(f"specific:{e}", "specific", e, layer, alpha,
                               alpha * emotion_direction(vecs, e, layer, site, "specific"), norm=n))
        for k in range(n_random):
            conds.append(Condition(f"random{k}:{e}", "random", e, layer, alpha, alpha * units[k] * n,
                                   seed=seed + k, norm=n))
        # Sign-flip control: v_e with every coordinate's sign drawn at random. Same norm AND the same
        # per-dimension magnitudes (Gemma's few massive dimensions keep their share), so it separates
        # "this direction" from "this much push along these dimensions".
        sf_seed = seed + 500 + EMOTIONS.index(e) if e in EMOTIONS else seed + 500
        g = torch.Generator().manual_seed(sf_seed)
        signs = torch.randint(0, 2, (d,), generator=g, dtype=torch.int64).double() * 2 - 1
        conds.append(Condition(f"signflip:{e}", "signflip", e, layer, alpha, alpha * v * signs, seed=sf_seed, norm=n))
    return conds


def sweep_conditions(vecs, layers, alphas, site: str, seed: int, emotions=EMOTIONS) -> list[Condition]:
    d = vecs.vector(emotions[0], layers[0], site=site).shape[-1]
    conds = [Condition("baseline", "baseline", None, None, 0.0, torch.zeros(d, dtype=torch.float64))]
    unit = random_directions(d, 1, seed, 1.0)[0]
    for layer in layers:
        vs = {e: emotion_direction(vecs, e, layer, site) for e in emotions}
        mean_norm = float(np.mean([float(v.norm()) for v in vs.values()]))
        for a in alphas:
            for e, v in vs.items():
                conds.append(Condition(f"{e}@L{layer}a{a:g}", "emotion", e, layer, a, a * v, norm=float(v.norm())))
            conds.append(Condition(f"random0@L{layer}a{a:g}", "random", None, layer, a, a * unit * mean_norm,
                                   seed=seed, norm=mean_norm))
    return conds


# ---------------------------------------------------------------------------------------- running


def _condition_key(c: Condition) -> dict:
    return {"name": c.name, "layer": c.layer, "alpha": c.alpha, "seed": c.seed,
            "vec": stable_hash(np.round(c.vector.double().numpy(), 6).tolist())}


def run_conditions(loaded, prompts: pd.DataFrame, conditions: list[Condition], spec: PatchSpec, out_dir: Path,
                   rows_per_batch: int = 96, evaluators: bool = True, progress: bool = True,
                   generate=generate_patched) -> pd.DataFrame:
    """Generate every condition on every prompt, batched (all conditions of a prompt chunk share one
    generation, one direction per row), stream per-batch parts to `out_dir/parts`, then score.

    Per-row layers: a row whose condition targets layer L gets a zero vector at the other patched
    layers (exact no-op), so a sweep over layers is one generation. Returns the samples table (also
    written to `out_dir/samples.parquet`). Cached: an existing complete table with the same key is read.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    key = stable_hash({"v": EXPERIMENT_VERSION, "model": getattr(loaded, "identity", {}), "spec": spec.to_dict(),
                       "prompts": prompts[["id", "text"]].values.tolist(), "rows": rows_per_batch,
                       "conds": [_condition_key(c) for c in conditions], "eval": evaluators})
    samples_path = out_dir / "samples.parquet"
    meta_path = out_dir / "samples.json"
    with file_lock(out_dir / "samples"):
        cached = read_table_artifact(samples_path, key=key, meta_path=meta_path, what="samples table")
        if cached is not None:   # verified by checksum; a truncated or stale table is regenerated
            return cached
        layers = sorted({c.layer for c in conditions if c.layer is not None})
        if not layers:
            raise ConfigError("no condition names a layer")
        spec = spec.replace(layers=tuple(layers), alpha=1.0)      # alpha is folded into each vector
        spec.validate(loaded.n_layers)
        parts_dir = out_dir / "parts"
        parts_dir.mkdir(parents=True, exist_ok=True)
        n_cond = len(conditions)
        per_chunk = max(1, rows_per_batch // n_cond)
        chunks = [prompts.iloc[i:i + per_chunk] for i in range(0, len(prompts), per_chunk)]
        # Rows are condition-major inside a chunk; cap the rows of one generate at rows_per_batch.
        jobs = []
        for ci, chunk in enumerate(chunks):
            rows = [(c_i, p_i) for c_i in range(n_cond) for p_i in range(len(chunk))]
            # Split a chunk only when it holds one prompt (then no padding differs between parts).
            step = rows_per_batch if len(chunk) == 1 else len(rows)
            for bi in range(0, len(rows), step):
                jobs.append((ci, bi, rows[bi:bi + step]))
        part_paths = []
        t0 = time.perf_counter()
        for ci, bi, rows in tqdm(jobs, desc=f"patching {getattr(loaded, 'name', '')}", disable=not progress):
            part = parts_dir / f"part-{key}-{ci:04d}-{bi:05d}.parquet"
            part_paths.append(part)
            if read_table_artifact(part, what="part file") is not None:
                continue
            chunk = chunks[ci]
            texts = [chunk["text"].iloc[p] for _, p in rows]
            dirs = {}
            for layer in layers:
                dirs[layer] = torch.stack([
                    conditions[c].vector if conditions[c].layer == layer else torch.zeros_like(conditions[c].vector)
                    for c, _ in rows]).to(loaded.dtype)
            res = generate(loaded, texts, spec, dirs)
            flu = fluency_table(loaded, res)
            df = pd.DataFrame({
                "sample_id": [chunk["id"].iloc[p] for _, p in rows],
                "prompt": texts,
                "condition": [conditions[c].name for c, _ in rows],
                "kind": [conditions[c].kind for c, _ in rows],
                "emotion": [conditions[c].emotion or "" for c, _ in rows],
                "layer": [-1 if conditions[c].layer is None else conditions[c].layer for c, _ in rows],
                "alpha": [conditions[c].alpha for c, _ in rows],
                "seed": [-1 if conditions[c].seed is None else conditions[c].seed for c, _ in rows],
                "norm": [conditions[c].norm for c, _ in rows],
                "text": res.texts,
                "new_token_ids": [" ".join(map(str, res.new_tokens[i, : res.lengths[i]].tolist())) for i in range(len(rows))],
            })
            df = pd.concat([df, flu], axis=1)
            write_table_artifact(part, df)
        gen_seconds = time.perf_counter() - t0
        samples = pd.concat([_read_part(p) for p in part_paths], ignore_index=True)
        if evaluators:
            samples = pd.concat([samples, score_all(samples["text"].tolist())], axis=1)
        write_table_artifact(samples_path, samples, {
            "key": key, "spec": spec.to_dict(), "n_conditions": n_cond, "n_prompts": len(prompts),
            "generation_seconds": gen_seconds, "conditions": [_condition_key(c) for c in conditions]},
            meta_path=meta_path)
        for p in part_paths:
            p.unlink(missing_ok=True)
            sidecar_path(p).unlink(missing_ok=True)
        return samples


def _read_part(path: Path) -> pd.DataFrame:
    df = read_table_artifact(path, what="part file")
    if df is None:   # damaged between its check above and now: only another writer can do that
        raise ConfigError(f"part file {path} was damaged while this run used it; run again (it is regenerated)")
    return df


def score_all(texts: list[str]) -> pd.DataFrame:
    """The T2 evaluators, unchanged: sentiment score, politeness score, GoEmotions labels."""
    from emocheck.evaluators import get_evaluator

    out = pd.DataFrame(index=range(len(texts)))
    s = get_evaluator("sentiment").score(texts)
    out["sentiment"] = s["score"].to_numpy()
    p = get_evaluator("politeness").score(texts)
    out["politeness"] = p["score"].to_numpy()
    e = get_evaluator("emotion").score(texts)
    for label in ("gratitude", "anger", "remorse"):
        out[f"emo_{label}"] = e[label].to_numpy()
    out["empty"] = s["empty"].to_numpy() if "empty" in s else [not t.strip() for t in texts]
    return out


# ---------------------------------------------------------------------------------------- statistics


def paired_d(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2 or x.std(ddof=1) == 0:
        return float("nan")
    return float(x.mean() / x.std(ddof=1))


def _wide(samples: pd.DataFrame, conditions: list[str], column: str) -> pd.DataFrame:
    sub = samples[samples["condition"].isin(conditions)]
    return sub.pivot_table(index="sample_id", columns="condition", values=column, aggfunc="first")


def paired_scores(samples: pd.DataFrame, treated: str, controls: list[str], column: str,
                  adjust: bool = True) -> dict:
    """Per-prompt treated and control values (controls averaged per prompt), fluency-adjusted.

    Returns treated/control arrays for evidence.record (control unchanged; treated = control + D - b1 F
    when adjust) and metrics: raw d, adjusted d, b1, mean NLL / distinct-2 / rep-3 differences, n.
    """
    conds = [treated, *controls]
    s = _wide(samples, conds, column).reindex(columns=conds).astype(float)
    f = _wide(samples, conds, "nll").reindex(columns=conds).astype(float)
    r = _wide(samples, conds, "rep3").reindex(columns=conds).astype(float)
    dist = _wide(samples, conds, "distinct2").reindex(columns=conds).astype(float)
    ok = np.isfinite(s.to_numpy()).all(1) & np.isfinite(f.reindex(s.index).to_numpy()).all(1)
    ids = list(s.index[ok])
    s, f, r, dist = (x.reindex(ids) for x in (s, f, r, dist))
    t = s[treated].to_numpy(float)
    c = s[controls].to_numpy(float).mean(1)
    ft = f[treated].to_numpy(float)
    fc = f[controls].to_numpy(float).mean(1)
    diff, fdiff = t - c, ft - fc
    b0, b1 = float(np.mean(diff)), 0.0
    if adjust and len(ids) > 3 and np.std(fdiff) > 1e-12:
        b1, b0 = np.polyfit(fdiff, diff, 1)
        b0, b1 = float(b0), float(b1)
    adj = diff - b1 * fdiff
    metrics = {
        "n": len(ids), "raw_mean_diff": float(np.mean(diff)), "raw_d": paired_d(diff),
        "adjusted_mean_diff": float(np.mean(adj)), "adjusted_d": paired_d(adj), "fluency_slope": b1,
        "fluency_nll_diff": float(np.mean(fdiff)),
        "fluency_ppl_ratio": float(np.exp(np.mean(fdiff))),
        "rep3_diff": float(np.nanmean(r[treated].to_numpy(float) - r[controls].to_numpy(float).mean(1))),
        "distinct2_diff": float(np.nanmean(dist[treated].to_numpy(float) - dist[controls].to_numpy(float).mean(1))),
    }
    return {"treated": (c + adj) if adjust else t, "control": c, "sample_ids": list(ids), "metrics": metrics}


# ---------------------------------------------------------------------------------------- sweep + selection


def sweep_layers(n_layers: int, fractions) -> list[int]:
    return sorted({min(n_layers - 1, max(0, int(round(f * (n_layers - 1))))) for f in fractions})


def sweep_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Dose-response: per layer x alpha x condition, mean score shift vs baseline, d vs random, fluency."""
    base = samples[samples["kind"] == "baseline"].set_index("sample_id")
    rows = []
    for (layer, alpha), cell in samples[samples["kind"] != "baseline"].groupby(["layer", "alpha"]):
        rand = cell[cell["kind"] == "random"].set_index("sample_id")
        for cond, sub in cell.groupby("condition"):
            sub = sub.set_index("sample_id")
            kind, emo = sub["kind"].iloc[0], sub["emotion"].iloc[0]
            row = {"layer": int(layer), "alpha": float(alpha), "condition": cond, "kind": kind, "emotion": emo,
                   "median_dnll": float(sub["nll"].median() - base["nll"].median()),
                   "mean_drep3": float(np.nanmean(sub["rep3"]) - np.nanmean(base["rep3"])),
                   "mean_distinct2": float(np.nanmean(sub["distinct2"])),
                   "example": str(sub["text"].iloc[0])[:120]}
            for col in SCORE_COLUMNS:
                if col in sub:
                    row[f"{col}_vs_baseline"] = float((sub[col] - base.loc[sub.index, col]).mean())
            if emo in TARGETS and kind == "emotion" and len(rand):
                col, sign = TARGETS[emo]
                if col in sub:
                    row["target"] = col
                    row["target_d_vs_random"] = paired_d(sign * (sub[col] - rand.loc[sub.index, col]))
            rows.append(row)
    return pd.DataFrame(rows)


def select_layer_alpha(table: pd.DataFrame, n_layers: int) -> dict:
    """The fixed rule (module doc) applied to a sweep table from the TUNING prompts."""
    cells = []
    for (layer, alpha), cell in table.groupby(["layer", "alpha"]):
        fluent = bool((cell["median_dnll"] <= FLUENCY_MAX_DNLL).all() and (cell["mean_drep3"].fillna(0) <= FLUENCY_MAX_DREP3).all())
        effect = float(cell.loc[cell["kind"] == "emotion", "target_d_vs_random"].mean()) if "target_d_vs_random" in cell else float("nan")
        cells.append({"layer": int(layer), "alpha": float(alpha), "fluent": fluent, "effect": effect})
    cells = pd.DataFrame(cells)
    ok = cells[cells["fluent"] & np.isfinite(cells["effect"])]
    if len(ok):
        best = ok.sort_values(["effect", "alpha"], ascending=[False, True]).iloc[0]
        reason = "largest mean target d vs random among fluent cells"
    else:
        layers = sorted(cells["layer"].unique())
        mid = layers[len(layers) // 2]
        best = cells[cells["layer"] == mid].sort_values("alpha").iloc[0]
        reason = "no fluent cell: middle layer, smallest alpha"
    return {"layer": int(best["layer"]), "alpha": float(best["alpha"]), "reason": reason,
            "cells": cells.to_dict(orient="records")}


def plot_sweep(table: pd.DataFrame, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emo = table[table["kind"] == "emotion"]
    emotions = [e for e in EMOTIONS if e in set(emo["emotion"])]
    fig, axes = plt.subplots(1, len(emotions) + 1, figsize=(4 * (len(emotions) + 1), 3.4), squeeze=False)
    for ax, e in zip(axes[0], emotions):
        for layer, sub in emo[emo["emotion"] == e].groupby("layer"):
            sub = sub.sort_values("alpha")
            ax.plot(sub["alpha"], sub.get("target_d_vs_random", np.nan), marker="o", label=f"layer {layer}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{e}: {TARGETS[e][0]} (signed) d vs random", fontsize=9)
        ax.set_xlabel("alpha (x ||emotion vector||)")
    ax = axes[0][-1]
    for (layer, kind), sub in table.groupby(["layer", "kind"]):
        sub = sub.groupby("alpha")["median_dnll"].max().sort_index()
        ax.plot(sub.index, sub.values, marker="o", ls="-" if kind == "emotion" else "--", label=f"L{layer} {kind}")
    ax.axhline(FLUENCY_MAX_DNLL, color="red", lw=0.7)
    ax.set_xscale("log", base=2)
    ax.set_title("fluency: max median dNLL vs baseline", fontsize=9)
    ax.set_xlabel("alpha")
    ax.legend(fontsize=6)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)


# ---------------------------------------------------------------------------------------- entry points


def base_spec(profile: Profile, model_name: str) -> PatchSpec:
    return PatchSpec(layers=(0,), site="hook_resid_post", alpha=1.0, window=DEFAULT_WINDOW,
                     max_new_tokens=profile.new_tokens, model=model_name)


def out_dir(profile: Profile, model_name: str, *parts: str) -> Path:
    return results_dir(profile, "patching", "residual", model_name, *parts)


@lru_cache(maxsize=None)
def sweep(model_name: str, profile_name: str, progress: bool = True) -> dict:
    """Run (or read) the tuning sweep; write sweep.csv, selection.json and dose_response.png."""
    from emocheck.models.registry import load_model

    profile = get_profile(profile_name) if isinstance(profile_name, str) else profile_name
    st = settings(profile)
    loaded = load_model(model_name)
    vecs = _vectors(model_name, profile)
    layers = [l for l in sweep_layers(loaded.n_layers, st["fractions"]) if l in vecs.layers]
    _, tuning = split_generation_prompts(profile)
    spec = base_spec(profile, model_name)
    conds = sweep_conditions(vecs, layers, st["alphas"], spec.site, random_seed_base(profile) + 999)
    d = out_dir(profile, model_name, "sweep")
    samples = run_conditions(loaded, tuning, conds, spec, d, rows_per_batch=st["rows_per_batch"], progress=progress)
    table = sweep_table(samples)
    selection = select_layer_alpha(table, loaded.n_layers)
    norms = {}
    for layer in layers:
        nn_ = vecs.neutral_norm.get(f"last/{spec.site}") if getattr(vecs, "neutral_norm", None) else None
        norms[str(layer)] = {
            **{e: float(emotion_direction(vecs, e, layer, spec.site).norm()) for e in EMOTIONS},
            "median_neutral_residual_norm": float(nn_[vecs.layers.index(layer)]) if nn_ is not None else None}
    selection["norms"] = norms
    selection.update({"model": model_name, "profile": profile.name, "tuning_prompt_ids": tuning["id"].tolist(),
                      "rule": "see emocheck.patching.experiment module doc", "site": spec.site,
                      "window": list(spec.window), "schedule": spec.schedule})
    atomic_write_dataframe(d / "dose_response.csv", table)
    atomic_write_json(d / "selection.json", selection)
    plot_sweep(table, d / "dose_response.png", f"{model_name} ({profile.name}): tuning-prompt sweep")
    return selection


@lru_cache(maxsize=None)
def claims_samples(model_name: str, profile_name: str, progress: bool = True) -> pd.DataFrame:
    """Per-sample table of every claim condition on the judged prompts at the selected layer/alpha."""
    from emocheck.models.registry import load_model

    profile = get_profile(profile_name)
    sel = sweep(model_name, profile_name, progress)
    loaded = load_model(model_name)
    vecs = _vectors(model_name, profile)
    judged, _ = split_generation_prompts(profile)
    spec = base_spec(profile, model_name)
    conds = claim_conditions(vecs, sel["layer"], sel["alpha"], spec.site, profile.random_directions,
                             random_seed_base(profile))
    d = out_dir(profile, model_name, "claims")
    samples = run_conditions(loaded, judged, conds, spec, d, rows_per_batch=settings(profile)["rows_per_batch"],
                             progress=progress)
    write_summary(samples, d, model_name)
    return samples


def write_summary(samples: pd.DataFrame, d: Path, model_name: str) -> pd.DataFrame:
    """summary.csv (per condition means) and a figure of score shift vs fluency shift."""
    cols = [c for c in (*SCORE_COLUMNS, "nll", "ppl", "distinct2", "rep3", "n_tokens") if c in samples]
    summary = samples.groupby(["condition", "kind", "emotion"], as_index=False)[cols].mean()
    atomic_write_dataframe(d / "summary.csv", summary)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        base = summary[summary["kind"] == "baseline"].iloc[0]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        for ax, col in zip(axes, ("politeness", "sentiment", "emo_remorse")):
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
        print(f"{model}: selected layer {sel['layer']} alpha {sel['alpha']} ({sel['reason']}) "
              f"[{time.perf_counter() - t:.0f}s]", flush=True)
        if not args.sweep_only:
            samples = claims_samples(model, profile.name)
            print(f"{model}: {len(samples)} samples -> {out_dir(profile, model, 'claims')} "
                  f"[{time.perf_counter() - t:.0f}s]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
