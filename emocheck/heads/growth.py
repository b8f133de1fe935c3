"""Top-n head sets against random-head nulls, and how the effect grows with n (phase 6, Q3).

Interventions at the LAST prompt token (where the emotion projection is read), each measured on
the projection of the final layer's resid_post (last token) on the unit emotion direction
(vs_neutral, from training prompts):

    ablate    emotion -> neutral: on held-out prompts of the emotion, replace the set's head outputs
              (hook_z) with their mean over HELD-OUT neutral prompts (mean ablation keeps the activation
              on-distribution). Effect = drop of the projection (clean - patched); > 0 = the set carries it.
    ablate_zero      the same with z_h := 0 (off-distribution; the classic knock-out)
    ablate_resample  the same with z_h := z_h of ONE held-out neutral prompt, drawn per judged prompt
              (seeded by the prompt's id): on-distribution, and keeps the prompt-to-prompt spread that
              the mean removes
    patch_in  neutral -> emotion: on held-out neutral prompts, write the set's mean output over HELD-OUT
              prompts of the emotion. Effect = rise of the projection (patched - clean).

Selection apart from evaluation: heads are ranked on TRAINING prompts (`emocheck.heads.screening`,
direct-effect mean difference: training emotion mean minus training neutral mean) and the direction
comes from training prompts; everything a judged effect is made of (the prompts it runs on AND the
mean it ablates to or writes) comes from HELD-OUT prompts (`intervention_rows`). A reference taken from
the training prompts would carry the ranking's noise into the judgement: a head whose training neutral
mean came out low by chance is ranked high AND ablates to that same low mean, so with no signal in any
head the top set beat its random sets in most data sets (tests/test_heads_calibration.py). Given the
training data, the chosen set's judged statistic is then a function of held-out data alone, as every
random set's is, so under "no emotion signal in any head" (heads alike within a layer) the chosen set
is exchangeable with its random sets and the Monte-Carlo p is exact. The random sets have the chosen
set's layer profile (`emocheck.heads.nulls`). Two estimates:

    first_order  the direct-path (linear) effect, for every held-out prompt and MANY random sets
                 (cheap: it is read off the screening pass); n = 1, 2, 4, 8, 16 -> growth table + PNG
    exact        real patched forward passes (nnsight), for CLAIM_N heads, a seeded sample of held-out
                 prompts and fewer random sets (each set costs one forward per prompt on a shared CPU);
                 the same sets also get the first-order estimate, so the two are compared (Spearman).

Outputs under results/<profile>/patching/heads/<model>/: growth_<kind>.csv, growth.png,
exact_<kind>_<emotion>_n<N>.csv (+ .json with the sets and key).
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch
from emocheck.progress import tqdm

from emocheck.heads.nulls import direct_path_effects, monte_carlo_p, overlap, random_head_sets, set_masks
from emocheck.profiles import Profile, results_dir
from emocheck.storage import read_table_artifact, write_table_artifact
from emocheck.storage import atomic_save_figure, atomic_write_dataframe, file_lock, stable_hash

N_VALUES = (1, 2, 4, 8, 16)
CLAIM_N = 8
KINDS = ("ablate", "patch_in")                   # first-order growth and the Q3 claims
EXACT_KINDS = ("ablate", "ablate_zero", "ablate_resample", "patch_in")
MODE_OF = {"ablate": "mean", "ablate_zero": "zero", "ablate_resample": "resample", "patch_in": "replace"}
GROWTH_CODE_VERSION = "head-growth-v2"     # v2: references from held-out prompts
#: The sizes are the profile's `heads` fields (emocheck.profiles.HeadSizes). full's growth_sets is
#: ci's: the growth curves are descriptive (no claim reads them), and the claims' n = 8 keeps 40 sets.


def settings(profile: Profile) -> dict:
    """The growth sizes of the profile (exact_prompts, exact_sets, growth_sets, direct_sets)."""
    h = profile.heads
    return {"exact_prompts": h.exact_prompts, "exact_sets": h.exact_sets, "growth_sets": h.growth_sets,
            "direct_sets": h.direct_sets}


def out_dir(profile: Profile, model_name: str):
    return results_dir(profile, "patching", "heads", model_name)


def _rows(reps, label: str, split_name: str) -> np.ndarray:
    return np.flatnonzero(reps.rows(label, split_name))


def intervention_rows(reps, emotion: str, kind: str):
    """(held-out rows the intervention runs on, held-out rows of the other class whose mean it writes).

    Both from HELD-OUT prompts: the ranking saw the training prompts (module docstring)."""
    if kind not in MODE_OF:
        raise ValueError(f"unknown head intervention {kind!r}; one of {', '.join(MODE_OF)}")
    if kind.startswith("ablate"):
        return _rows(reps, emotion, "held_out"), _rows(reps, "neutral", "held_out")
    return _rows(reps, "neutral", "held_out"), _rows(reps, emotion, "held_out")


def sign(kind: str) -> float:
    return -1.0 if kind.startswith("ablate") else 1.0      # ablation: effect = clean - patched


def resample_sources(source: np.ndarray, prompt_ids, seed: int) -> np.ndarray:
    """For each prompt, one row of `source` (held-out neutral prompts) to resample from, seeded by id."""
    return np.array([source[int(stable_hash({"seed": seed, "prompt": str(p)}, 12), 16) % len(source)]
                     for p in prompt_ids])


def first_order(scores: dict, reps, emotion: str, kind: str, chosen, n_sets: int, seed: int,
                emotions: list[str]) -> dict:
    ei = emotions.index(emotion)
    direct = scores["direct"][..., ei]                                  # [n_all, L, H]
    run, source = intervention_rows(reps, emotion, kind)
    replacement = direct[source].double().mean(0)
    sets = [tuple(chosen)] + random_head_sets(chosen, direct.shape[2], n_sets, seed)
    masks = set_masks(sets, *direct.shape[1:])
    eff = sign(kind) * direct_path_effects(direct[run], replacement, masks)
    # each set's summed write on the run and on the source prompts: its Welch t (run vs source)
    flat = masks.double().reshape(len(sets), -1).T
    on_run = direct[run].double().reshape(len(run), -1) @ flat
    on_src = direct[source].double().reshape(len(source), -1) @ flat
    se = torch.sqrt(on_run.var(0) / len(run) + on_src.var(0) / len(source))
    t = -sign(kind) * (on_run.mean(0) - on_src.mean(0)) / se
    return {"effects": eff.numpy(), "sets": sets, "t": t.numpy()}


def first_order_null(screen, scores, reps, emotions, profile: Profile, emotion: str, kind: str, n: int) -> dict:
    """The top-n set's mean first-order effect over held-out prompts and that of `direct_sets` random
    sets of the same layers (seeded by profile, n, emotion and kind)."""
    ei = list(emotions).index(emotion)
    chosen = screen.top_heads(emotion, n)
    k = settings(profile)["direct_sets"]
    seed = profile.seed + 7919 * n + 31 * ei + (0 if kind == "ablate" else 17)
    fo = first_order(scores, reps, emotion, kind, chosen, k, seed, list(emotions))
    means = fo["effects"].mean(0)
    return {"observed": float(means[0]), "null": means[1:], "chosen": chosen, "n_prompts": fo["effects"].shape[0],
            "overlap": overlap(chosen, fo["sets"][1:]), "observed_t": float(fo["t"][0]), "null_t": fo["t"][1:]}


def writers_null(screen, scores, reps, emotions, profile: Profile, emotion: str) -> dict:
    """What the Q1 writers claim judges: the top-CLAIM_N set's held-out Welch t (its summed direct write
    on held-out emotion prompts against held-out neutral prompts) and the same t of `direct_sets`
    random sets of its layers; the mean effects in residual units ride along as metrics.

    Why a t and not the mean effect: the ranking prefers heads with large writes (their training noise
    is large, and the direction is built from the same training prompts), and a large head's held-out
    mean effect spreads more than a random set's, so with no emotion in any head but heads of different
    sizes the chosen set's mean lands in its random sets' upper tail too often (raw p <= .05 in 0.14 of
    data sets at log-scale SD 0.5, 0.24 at SD 1; tests/test_heads_calibration.py). Each set's t is
    scaled by its own spread, so under that null it is distributed alike for every set."""
    r = first_order_null(screen, scores, reps, emotions, profile, emotion, "ablate", CLAIM_N)
    return {"observed": r["observed_t"], "null": r["null_t"], "chosen": r["chosen"],
            "metrics": {"n_prompts": r["n_prompts"], "mean_effect": r["observed"],
                        "mean_effect_random_mean": float(np.mean(r["null"])),
                        "mean_effect_rank": int(1 + np.sum(r["null"] >= r["observed"])),
                        "mean_overlap_with_random": float(r["overlap"].mean())}}


def growth_table(screen, scores, reps, emotions, profile: Profile, kind: str) -> pd.DataFrame:
    """First-order growth: per emotion and n, the top-n set's mean effect vs the random-set null."""
    rows = []
    for e in emotions:
        for n in N_VALUES:
            r = first_order_null(screen, scores, reps, emotions, profile, e, kind, n)
            obs, null = r["observed"], r["null"]
            sd = null.std(ddof=1)
            rows.append({"emotion": e, "kind": kind, "n": n, "observed": obs, "null_mean": float(null.mean()),
                         "null_sd": float(sd), "null_p95": float(np.percentile(null, 95)),
                         "z": float((obs - null.mean()) / sd) if sd > 0 else float("nan"),
                         "mc_p": monte_carlo_p(obs, null), "n_sets": len(null), "n_prompts": r["n_prompts"],
                         "mean_overlap": float(r["overlap"].mean()),
                         "heads": ";".join(f"L{a}H{b}" for a, b in r["chosen"])})
    return pd.DataFrame(rows)


def _final_unit(reps, emotion: str, layer: int) -> torch.Tensor:
    v = reps.vectors.vector(emotion, layer, kind="vs_neutral", site="hook_resid_post", position="last").float()
    return v / v.norm()


def exact(model_name: str, profile: Profile, emotion: str, kind: str, n: int = CLAIM_N,
          progress: bool = True) -> pd.DataFrame:
    """Exact patched effects for the top-n set (set 0) and random sets (1..K) on a prompt sample.

    Columns: prompt_id, set, effect (exact), first_order, heads. Cached by a key over everything that
    determines it.
    """
    return exact_many(model_name, profile, [(emotion, kind, n)], progress=progress)[0]


def _exact_plan(screen_result, scores, reps, profile: Profile, model_name: str, emotion: str, kind: str, n: int) -> dict:
    """Everything that determines one exact table: its sets, prompt sample, values, key and path."""
    from emocheck.study import study_for

    cfg = settings(profile)
    n_sets = cfg["exact_sets"] if n == CLAIM_N else cfg["growth_sets"]
    chosen = screen_result.top_heads(emotion, n)
    ei = study_for(profile).index(emotion)             # the emotion's place on the scores' last axis
    # every ablation kind shares the random sets and the prompt sample (so zero / mean / resample compare)
    seed = profile.seed + 104729 + 7919 * n + 31 * ei + (0 if kind.startswith("ablate") else 17)
    sets = [tuple(chosen)] + random_head_sets(chosen, screen_result.n_heads, n_sets, seed)
    run, source = intervention_rows(reps, emotion, kind)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(run, size=min(cfg["exact_prompts"], len(run)), replace=False))
    key = stable_hash({"code": GROWTH_CODE_VERSION, "model": model_name, "vectors": reps.vectors.meta.get("key"),
                       "sets": sets, "sample": sample.tolist(), "kind": kind, "emotion": emotion}, 24)
    return {"emotion": emotion, "kind": kind, "n": n, "ei": ei, "seed": seed, "sets": sets, "source": source,
            "sample": sample, "key": key, "path": out_dir(profile, model_name) / f"exact_{kind}_{emotion}_n{n}.csv"}


def _exact_values(plan: dict, scores, reps, final: int):
    """(z values: [L, H, hd] shared or [n_prompts, L, H, hd] per prompt, direct-path replacement,
    unit direction) of one plan."""
    kind, source, direct = plan["kind"], plan["source"], scores["direct"][..., plan["ei"]]
    if kind == "ablate_resample":                  # one held-out neutral prompt per judged prompt
        ids_col = reps.prompts["id"].to_numpy()[plan["sample"]]
        src = resample_sources(source, ids_col, plan["seed"])
        z_values, replacement = scores["z_last"][src].float(), direct[src].double()
    else:
        z_values = scores["z_last"][source].double().mean(0).float()                  # [L, H, hd]
        replacement = direct[source].double().mean(0)
        if kind == "ablate_zero":
            replacement = torch.zeros_like(replacement)   # z = 0 writes nothing (the o_proj bias is no head's)
    return z_values, replacement, _final_unit(reps, plan["emotion"], final)


def exact_many(model_name: str, profile: Profile, requests, progress: bool = False) -> list[pd.DataFrame]:
    """`exact` for many (emotion, kind, n) at once: the tables not already cached are computed together,
    one prefix pass per distinct prompt and every (request, set) row of that prompt in one batched
    last-token pass (`emocheck.heads.prefix_cache.last_token_rows`), then written one file each under
    its own lock. Equal to running `exact` one request at a time up to float rounding."""
    from emocheck.heads.experiment import screen
    from emocheck.heads.prefix_cache import last_token_rows
    from emocheck.heads.specs import HeadPatchSpec, stack_rows
    from emocheck.models.registry import load_model

    screen_result, scores, reps = screen(model_name, profile, progress=progress)
    plans = [_exact_plan(screen_result, scores, reps, profile, model_name, e, k, n) for e, k, n in requests]
    out: list[pd.DataFrame | None] = [None] * len(plans)
    for i, plan in enumerate(plans):                   # verified; rebuilt when damaged
        out[i] = read_table_artifact(plan["path"], key=plan["key"], what="exact head-set effects")
    todo = [i for i, df in enumerate(out) if df is None]
    if todo:
        loaded = load_model(model_name)
        final = loaded.n_layers - 1
        n_layers, n_heads, head_dim = scores["z_last"].shape[1:]
        texts_all = reps.prompts["text"].to_numpy()
        work: dict[str, list] = {}                      # prompt text -> [(plan index, prompt slot)]
        values = {}
        for i in todo:
            plans[i]["masks"] = stack_rows([HeadPatchSpec(s, MODE_OF[plans[i]["kind"]], "last") for s in plans[i]["sets"]],
                                           n_layers, n_heads)
            values[i] = _exact_values(plans[i], scores, reps, final)
            for j, row in enumerate(plans[i]["sample"]):
                work.setdefault(texts_all[row], []).append((i, j))
        effects = {i: np.zeros((len(plans[i]["sets"]), len(plans[i]["sample"]))) for i in todo}
        for text, pairs in tqdm(list(work.items()), desc=f"exact head sets {model_name}", disable=not progress,
                                leave=False):
            masks, vals = [], []
            for i, j in pairs:
                z, s = values[i][0], len(plans[i]["sets"])
                if plans[i]["kind"] == "ablate_zero":
                    z = torch.zeros(n_layers, n_heads, head_dim)
                elif z.dim() == 4:
                    z = z[j]
                masks.append(plans[i]["masks"])
                vals.append(z[None].expand(s, -1, -1, -1))
            clean, patched = last_token_rows(loaded, text, torch.cat(masks), torch.cat(vals), final)
            start = 0
            for i, j in pairs:
                s = len(plans[i]["sets"])
                u = values[i][2].float()
                effects[i][:, j] = (sign(plans[i]["kind"]) * ((patched[start:start + s] - clean[None]) @ u)).double().numpy()
                start += s
        for i in todo:
            plan = plans[i]
            sets, sample, kind = plan["sets"], plan["sample"], plan["kind"]
            ids_col = reps.prompts["id"].to_numpy()[sample]
            direct = scores["direct"][..., plan["ei"]]
            fo = sign(kind) * direct_path_effects(direct[sample], values[i][1], set_masks(sets, *direct.shape[1:]))
            df = pd.DataFrame([{"prompt_id": ids_col[j], "set": s, "effect": effects[i][s, j],
                                "first_order": float(fo[j, s]), "heads": ";".join(f"L{a}H{b}" for a, b in sets[s])}
                               for s in range(len(sets)) for j in range(len(sample))])
            with file_lock(plan["path"]):
                cached = read_table_artifact(plan["path"], key=plan["key"], what="exact head-set effects")
                if cached is not None:                  # another worker wrote it meanwhile: keep theirs
                    out[i] = cached
                    continue
                write_table_artifact(plan["path"], df, {"key": plan["key"], "sets": [list(map(list, x)) for x in sets],
                                                        "sample": ids_col.tolist(), "kind": kind,
                                                        "emotion": plan["emotion"], "n": plan["n"]})
            out[i] = df
    return out


def exact_effects(loaded, texts: list[str], sets, z_values: torch.Tensor, u: torch.Tensor, kind: str, *,
                  rows_per_pass: int = 64, progress: bool = False, desc: str = "exact") -> np.ndarray:
    """[n_sets, n_prompts] exact effects on resid_post(final layer, last token) @ u of replacing each
    set's hook_z at the last token by z_values: [L, H, hd] for every prompt, or [n_prompts, L, H, hd]
    one per prompt (resample ablation); ignored for 'ablate_zero'. Runs each prompt's prefix once and
    every set as one row of a last-token batch (emocheck.heads.prefix_cache; equal to full patched passes)."""
    from emocheck.heads.prefix_cache import last_token_residuals
    from emocheck.heads.specs import HeadPatchSpec

    final = loaded.n_layers - 1
    u = u.float()
    mode = MODE_OF[kind]
    per_prompt = z_values is not None and z_values.dim() == 4
    if per_prompt and z_values.shape[0] != len(texts):
        raise ValueError(f"{z_values.shape[0]} per-prompt values for {len(texts)} prompts")
    specs = [HeadPatchSpec(s, mode, "last", label=f"set{i}") for i, s in enumerate(sets)]
    effects = np.zeros((len(sets), len(texts)))
    for j, text in enumerate(tqdm(texts, desc=desc, disable=not progress, leave=False)):
        z = None if mode == "zero" else (z_values[j] if per_prompt else z_values)
        values = None if z is None else {layer: z[layer] for layer in range(loaded.n_layers)}
        clean, patched = last_token_residuals(loaded, text, specs, values, final, rows_per_pass=rows_per_pass)
        effects[:, j] = (sign(kind) * ((patched - clean[None]) @ u)).double().numpy()
    return effects


def exact_arrays(df: pd.DataFrame):
    """(treated [n_prompts], control [n_prompts, K]) from an exact table (set 0 = the chosen set)."""
    wide = df.pivot(index="prompt_id", columns="set", values="effect").sort_index(axis=1)
    return wide[0].to_numpy(), wide.drop(columns=0).to_numpy()


def plot_growth(tables: pd.DataFrame, path, title: str = "", ylabel: str = "first-order effect on final proj.") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emotions = list(dict.fromkeys(tables.emotion))
    kinds = list(dict.fromkeys(tables.kind))
    fig, axes = plt.subplots(len(kinds), len(emotions), figsize=(3.4 * len(emotions), 2.8 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, e in enumerate(emotions):
            ax = axes[r][c]
            t = tables[(tables.kind == kind) & (tables.emotion == e)].sort_values("n")
            ax.plot(t.n, t.observed, "o-", color="C3", label="top-n (train rank)")
            ax.plot(t.n, t.null_mean, "-", color="grey", label="random sets: mean")
            ax.fill_between(t.n, t.null_mean - 2 * t.null_sd, t.null_mean + 2 * t.null_sd, color="grey", alpha=0.25,
                            label="random sets: mean +/- 2 sd")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{e}: {kind}", fontsize=9)
            ax.set_xlabel("heads in set (n)")
            ax.set_ylabel(ylabel, fontsize=8)
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def run_growth(model_name: str, profile: Profile, emotion: str | None = None, progress: bool = True) -> pd.DataFrame:
    """First-order growth tables for both kinds (+ PNG), and the exact runs at CLAIM_N for `emotion`."""
    from emocheck.heads.experiment import screen
    from emocheck.study import study_for

    screen_result, scores, reps = screen(model_name, profile, progress=progress)
    emotions = list(study_for(profile).emotions)
    tables = pd.concat([growth_table(screen_result, scores, reps, emotions, profile, k) for k in KINDS],
                       ignore_index=True)
    d = out_dir(profile, model_name)
    for k in KINDS:
        atomic_write_dataframe(d / f"growth_{k}.csv", tables[tables.kind == k])
    plot_growth(tables, d / "growth.png", title=f"{model_name}: top-n heads vs random sets of the same layers")
    if emotion is not None:
        for k in KINDS:
            exact(model_name, profile, emotion, k, progress=progress)
    return tables
