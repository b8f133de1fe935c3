"""Circuit modulation against residual steering and prompting, on phase 5's judged prompts and instruments.

    python -m emocheck.circuits.generation smollm2-135m --profile ci

Design (fixed before any judged result was seen):

* **Circuit patch.** Each emotion's circuit (`emocheck.circuits.experiment.run_circuit`: discovered on
  training emotion prompts) is patched into generations from phase 5's JUDGED neutral openings: at
  generation steps 0-4 (phase 5's window) every member's activation at the current token (heads'
  ``hook_z`` slices, MLPs' ``hook_mlp_out``) is REPLACED by its mean last-token activation over a
  seeded sample of HELD-OUT prompts of that emotion (the circuit was ranked on training prompts) (`emocheck.circuits.modulation`, the fast
  shared-prefix engine; greedy; phase 5's number of new tokens). Nothing is tuned: no scale exists.
* **Random circuits** (control, a random effect): K = n_prompts / 2 circuits with the circuit's size
  and type-and-layer profile (the same MLPs, as many heads per layer; a seed disjoint from discovery's), each patched the same way with ITS members'
  emotion means. Prompt j gets circuits j mod K and (j + 1 + j // K) mod K, so every prompt has 2
  draws, every draw 4 prompts, and the design is connected; judged with
  `emocheck.stats.compare_directions` (``evidence.record(treated=[n], control=[n, K])``, NaN cells),
  exchangeable null: the circuit must lie outside the random circuits' distribution (prediction
  interval), not only above their average.
* **Prompts:** phase 5's judged prompts that its random and label-permuted nulls run on
  (`emocheck.patching.experiment.null_prompt_ids`: all of them at ci, a nested seeded 100 of the 200 at
  full, for the time budget; the prompting rows, on phase 5's secondary subset, are nested in it).
* **Baseline** of this run (unpatched, same batches); its tokens are compared with phase 5's baseline.
* **Steering and prompting** are phase 5's own rows on the same prompts (`claims_samples`): the
  emotion vector at the phase-5 selected layer and alpha (condition ``e``) and the emotional prefix
  (``prompt:e``, on phase 5's seeded half of the prompts). Same evaluators (`score_all`), same
  fluency measures (NLL of the continuation under the unpatched model, repeated 3-grams).
* **Target** per emotion: the study's phase-5 target (gratitude: politeness up, anger: sentiment down,
  apology: remorse up), signed so that "more" is always toward the emotion (`signed_<emotion>`).

Outputs under results/<profile>/circuits/<model>/modulation/: samples.parquet (+ checksum sidecar;
rebuilt when stale or damaged), summary.csv, comparison.png (target shift vs fluency shift).
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from emocheck.progress import tqdm

from emocheck.circuits.components import all_components, mean_activations
from emocheck.circuits.discovery import random_circuits, set_mask
from emocheck.circuits.experiment import EMOTIONS, circuit_seed, out_dir, run_circuit, sample_texts, settings  # noqa: F401
from emocheck.circuits.modulation import ComponentPatch
from emocheck.study import EMBEDDED_EMOTIONS, make_study, study_for
from emocheck.profiles import Profile, get_profile
from emocheck.storage import atomic_save_figure, atomic_write_dataframe, file_lock, read_table_artifact, stable_hash
from emocheck.storage import write_table_artifact
from emocheck import timing

VERSION = "circuit-modulation-v1"
DRAWS_PER_PROMPT = 2
PROMPTS_PER_CHUNK = 20         # rows of this many prompts per engine call: 200 rows, near the engine's
                               # CPU batch of 192 (larger batches are cheaper per row; patching/experiment.py)


def phase5_conditions(study) -> tuple[str, ...]:
    """The phase-5 conditions the comparison reads: the baseline, each emotion vector and prompting."""
    return ("baseline",) + study.emotions + tuple(f"prompt:{e}" for e in study.emotions)


#: those of the embedded study
PHASE5_CONDITIONS = phase5_conditions(make_study(EMBEDDED_EMOTIONS))


def draw_assignment(n_prompts: int, k: int) -> list[tuple[int, int]]:
    """The two random circuits of each prompt (module doc): connected, each draw on ~2n/k prompts."""
    return [(j % k, (j + 1 + j // k) % k) for j in range(n_prompts)]


def n_random(n_prompts: int) -> int:
    return max(3, n_prompts // 2)


def _emotion_means(loaded, reps, emotion, profile):
    """Members' mean activations over HELD-OUT prompts of the emotion: the circuit was ranked on training
    emotion prompts, and their mean would write the noise that ranked its members high."""
    cfg = settings(profile)
    rng = np.random.default_rng(circuit_seed(profile, study_for(profile), emotion) + 1)
    texts = sample_texts(reps.prompts, emotion, "held_out", cfg["neutral_prompts"], rng)
    return mean_activations(loaded, texts), texts


@timing.timed("circuits")
def modulation_samples(model_name: str, profile: Profile, progress: bool = True) -> pd.DataFrame:
    """This run's rows (baseline, circuit:e, randcircuit:e), generated and scored; cached on disk."""
    from emocheck.models.registry import load_model
    from emocheck.patching.experiment import base_spec, null_prompt_ids, split_generation_prompts
    from emocheck.patching.fluency import fluency_table
    from emocheck.patching.engine import generate_fast
    from emocheck.patching.running import score_all
    from emocheck.representations.build import build_representations

    study = study_for(profile)
    circuits = {e: run_circuit(model_name, profile, e, progress=progress) for e in study.emotions}
    judged, _ = split_generation_prompts(profile)
    judged = judged[judged["id"].isin(null_prompt_ids(profile, judged))].reset_index(drop=True)
    spec = base_spec(profile, model_name)
    reps = build_representations(model_name, profile, progress=progress)
    n = len(judged)
    k = n_random(n)
    key = stable_hash({"v": VERSION, "model": model_name, "spec": spec.to_dict(), "k": k,
                       "prompts": judged[["id", "text"]].values.tolist(), "seed": profile.seed,
                       "circuits": {e: c["key"] for e, c in circuits.items()}, "vectors": reps.vectors.meta.get("key")}, 24)
    d = out_dir(profile, model_name) / "modulation"
    path = d / "samples.parquet"
    with file_lock(path):
        cached = read_table_artifact(path, key=key, what="circuit modulation samples")   # verified; rebuilt when damaged
        if cached is not None:
            return cached
        loaded = load_model(model_name)
        comps = all_components(loaded)
        sources_z, sources_m, rows = [], [], []       # rows: (prompt index, condition, emotion, draw, mask, source)
        empty = torch.zeros(len(comps), dtype=torch.bool)
        for ei, e in enumerate(study.emotions):
            means, _ = _emotion_means(loaded, reps, e, profile)
            sources_z.append(means.z)
            sources_m.append(means.mlp)
            circuit = circuits[e]["circuit_index"]
            rand = random_circuits(circuit, comps, k, profile.seed + 80021 + 97 * ei + 7919)
            cmask, rmask = set_mask([circuit], len(comps))[0], set_mask(rand, len(comps))
            for j, (a, b) in enumerate(draw_assignment(n, k)):
                rows.append((j, f"circuit:{e}", e, -1, cmask, ei))
                rows += [(j, f"randcircuit:{e}", e, q, rmask[q], ei) for q in (a, b)]
        rows += [(j, "circuit_baseline", "", -1, empty, 0) for j in range(n)]
        rows.sort(key=lambda r: r[0])
        z_vals, m_vals = torch.stack(sources_z), torch.stack(sources_m)
        parts = []
        chunks = [list(range(s, min(n, s + PROMPTS_PER_CHUNK))) for s in range(0, n, PROMPTS_PER_CHUNK)]
        for chunk in tqdm(chunks, desc=f"circuit generation {model_name}", disable=not progress):
            sub = [r for r in rows if r[0] in chunk]
            texts = [judged["text"].iloc[r[0]] for r in sub]
            patch = ComponentPatch(loaded, torch.stack([r[4] for r in sub]), z_vals, m_vals,
                                   torch.tensor([r[5] for r in sub]), spec.window)
            try:
                res = generate_fast(loaded, texts, spec, None, intervention=patch, max_rows=len(sub))
            finally:
                patch.close()
            df = pd.DataFrame({"sample_id": [judged["id"].iloc[r[0]] for r in sub], "prompt": texts, "prefix": "",
                               "condition": [r[1] for r in sub], "kind": [r[1].split(":")[0] for r in sub],
                               "emotion": [r[2] for r in sub], "draw": [r[3] for r in sub],
                               "n_patched": [int(r[4].sum()) for r in sub], "text": res.texts,
                               "new_token_ids": [" ".join(map(str, res.new_tokens[i, :res.lengths[i]].tolist()))
                                                 for i in range(len(sub))]})
            parts.append(pd.concat([df, fluency_table(loaded, res)], axis=1))
        samples = pd.concat(parts, ignore_index=True)
        if "topic" in judged:
            samples["topic"] = samples["sample_id"].map(dict(zip(judged["id"], judged["topic"])))
        samples = pd.concat([samples, score_all(samples["text"].tolist(), study.score_columns())], axis=1)
        write_table_artifact(path, samples, {"key": key, "k": k, "n_prompts": n, "spec": spec.to_dict()})
    return samples


def comparison_table(model_name: str, profile: Profile, progress: bool = True) -> pd.DataFrame:
    """This run's rows with phase 5's baseline / steering / prompting rows on the same prompts, and one
    signed target column per emotion. Writes summary.csv and comparison.png."""
    from emocheck.patching.experiment import claims_samples

    mine = modulation_samples(model_name, profile, progress)
    p5 = claims_samples(model_name, profile.name, progress)
    study = study_for(profile)
    p5 = p5[p5["condition"].isin(phase5_conditions(study))].assign(draw=-1, n_patched=0)
    both = pd.concat([mine, p5[[c for c in mine.columns if c in p5.columns]]], ignore_index=True)
    for e, (col, sign) in study.targets().items():
        both[f"signed_{e}"] = sign * both[col]
    d = out_dir(profile, model_name) / "modulation"
    summary = summarise(both, study.targets())
    atomic_write_dataframe(d / "summary.csv", summary)
    plot_comparison(summary, d / "comparison.png", f"{model_name} ({profile.name}): circuit vs steering vs prompting",
                    study.targets())
    return both


def baseline_agreement(both: pd.DataFrame) -> float:
    """Share of prompts whose unpatched tokens are identical in this run and in phase 5's run."""
    a = both[both.condition == "circuit_baseline"].set_index("sample_id")["new_token_ids"]
    b = both[both.condition == "baseline"].set_index("sample_id")["new_token_ids"]
    common = a.index.intersection(b.index)
    return float((a[common] == b.reindex(common)).mean()) if len(common) else float("nan")


def too_few_pairs_message(both: pd.DataFrame, treated: str, control: str, metrics: dict) -> str:
    """Why a paired comparison of `both` has fewer than the 3 scored prompts a test needs.

    Every condition's prompts are nested (phase 5's secondary prompts are part of its null prompts,
    which this run's circuit rows cover), so the two sides should share all prompts of the smaller
    side. Fewer shared prompts means the tables come from different designs (a stale run); otherwise
    the design is too small for the empty continuations it produced, and rerunning cannot help."""
    ids = {c: set(both.loc[both.condition == c, "sample_id"]) for c in (treated, control)}
    shared, expected = len(ids[treated] & ids[control]), min(len(ids[treated]), len(ids[control]))
    n, empty = metrics.get("n", 0), (metrics.get("n_empty_treated", 0), metrics.get("n_empty_control", 0))
    head = f"{treated} vs {control}: {n} scored prompt pair(s); a paired test needs at least 3"
    if shared < expected:
        return (f"{head}. The two sides share {shared} prompts where the design pairs {expected}: the circuit "
                "rows and phase 5's rows come from different runs (rerun `python -m emocheck.circuits.generation` "
                "for this profile)")
    return (f"{head}. The design pairs {shared} prompts and {empty[0]} treated / {empty[1]} control "
            "continuations are empty (no score): this profile's design is too small for the comparison "
            "(judge it at a profile with more generation prompts, such as ci or full)")


def summarise(both: pd.DataFrame, targets: dict | None = None) -> pd.DataFrame:
    """Per emotion with a target (`targets`: Study.targets; default the embedded study's) and method: mean signed target shift and NLL /
    rep3 shift against the baseline of the same run (paired by prompt), over the prompts the method ran on."""
    targets = make_study(EMBEDDED_EMOTIONS).targets() if targets is None else targets
    rows = []
    for e in targets:
        t = f"signed_{e}"
        for method, cond, base in (("circuit", f"circuit:{e}", "circuit_baseline"),
                                   ("random circuits", f"randcircuit:{e}", "circuit_baseline"),
                                   ("steering (phase 5)", e, "baseline"), ("prompting (phase 5)", f"prompt:{e}", "baseline")):
            sub = both[both.condition == cond].groupby("sample_id")[[t, "nll", "rep3"]].mean()
            ref = both[both.condition == base].set_index("sample_id")[[t, "nll", "rep3"]].reindex(sub.index)
            diff = sub - ref
            rows.append({"emotion": e, "method": method, "condition": cond, "n_prompts": int(diff[t].notna().sum()),
                         "target_shift": float(diff[t].mean()), "target_shift_sd": float(diff[t].std(ddof=1)),
                         "nll_shift": float(diff["nll"].mean()), "rep3_shift": float(diff["rep3"].mean()),
                         "target_mean": float(sub[t].mean())})
    return pd.DataFrame(rows)


def plot_comparison(summary: pd.DataFrame, path, title: str, targets: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(4 * max(1, len(targets)), 3.4))
    colours = {"circuit": "tab:red", "random circuits": "tab:orange", "steering (phase 5)": "tab:blue",
               "prompting (phase 5)": "tab:green"}
    for ax, e in zip(np.atleast_1d(axes), targets):
        sub = summary[summary.emotion == e]
        for _, r in sub.iterrows():
            se = r.target_shift_sd / np.sqrt(max(1, r.n_prompts))
            ax.errorbar(r.nll_shift, r.target_shift, yerr=se, fmt="o", c=colours[r.method], label=r.method, capsize=2)
        ax.axhline(0, c="grey", lw=0.5)
        ax.axvline(0, c="grey", lw=0.5)
        col, sign = targets[e]
        ax.set_title(f"{e}: {'+' if sign > 0 else '-'}{col}", fontsize=9)
        ax.set_xlabel("NLL shift vs baseline (nats/token)")
    np.atleast_1d(axes)[0].set_ylabel("signed target shift vs baseline (+/- 1 SE)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emocheck.circuits.generation")
    p.add_argument("model")
    p.add_argument("--profile", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    profile = get_profile(args.profile)
    both = comparison_table(args.model, profile)
    print(summarise(both, study_for(profile).targets()).to_string(index=False))
    print(f"baseline tokens identical to phase 5's on {baseline_agreement(both):.0%} of prompts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
