"""A profile's study, phase by phase, from warm model caches: time, tokens and ratio to the compute floor.

    .venv/bin/python benchmarks/bench_study.py --profile ci --models smollm2-135m gemma3-270m
    .venv/bin/python benchmarks/bench_study.py --profile full --fraction 0.1 --baseline

Per model, in one process:

* the GEMM rate of the model's shapes (float32, this machine, measured now) -> the compute floor
  (tokens that must be processed x FLOPs per token / GEMM rate, emocheck.compute);
* **extraction**: the profile's emotion prompts through `extract_activations` (every layer, both
  residual sites, as phases 2-3 do; with --fraction f only the first f of them, scaled up);
* **generation + fluency**: the phase-5 design of `emocheck.patching.experiment` (the tuning sweep's
  conditions on the tuning prompts, the claim conditions on the judged prompts; directions are the
  model's emotion vectors when the activation cache has them, else random directions of the same
  count) through `run_conditions` with the production engine; --fraction f runs the first f of the
  prompts and scales up linearly (generation is linear in prompts);
* **evaluators** (`score_all` on the generated texts), **statistics** and **figures** (the sweep
  table, the selection rule and its plot).

Per-phase times come from emocheck.timing. With --baseline the previous path (nnsight generate then a
second full forward for the NLL) runs on one batch of claim rows alternated with the fast engine:
the speed ratio and the fraction of rows whose greedy tokens are identical are printed.

Writes results/<profile>/benchmarks/study.json. Timings on a shared machine are noisy: compare the
ratios, which are measured in one process.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emocheck import timing  # noqa: E402
from emocheck.compute import ModelShape, Workload, gemm_rate, medium_model_plans  # noqa: E402
from emocheck.profiles import get_profile, results_dir  # noqa: E402
from emocheck.storage import atomic_write_json  # noqa: E402


def conditions_for(model_name, profile, loaded):
    """(sweep conditions, claim conditions, source of the directions)."""
    from emocheck.patching import experiment as ex

    st = ex.settings(profile)
    layers = ex.sweep_layers(loaded.n_layers, st["fractions"])
    try:
        from emocheck.representations.build import emotion_vectors

        vecs = emotion_vectors(model_name, profile)
        layers = [l for l in layers if l in vecs.layers]
        sweep = ex.sweep_conditions(vecs, layers, st["alphas"], "hook_resid_post", ex.random_seed_base(profile) + 999)
        claims = ex.claim_conditions(vecs, layers[len(layers) // 2], 1.0, "hook_resid_post",
                                     profile.random_directions, ex.random_seed_base(profile))
        return sweep, claims, "emotion vectors"
    except Exception as exc:             # no activation cache: same counts, random directions
        print(f"  (emotion vectors unavailable: {type(exc).__name__}; random directions of the same count)")
        return None, None, "random"


def random_conditions(n, d, layer, seed):
    from emocheck.patching.experiment import Condition, random_directions

    vs = random_directions(d, n, seed, 1.0)
    return [Condition("baseline", "baseline", None, layer, 0.0, torch.zeros(d, dtype=torch.float64))] + [
        Condition(f"random{k}", "random", None, layer, 1.0, vs[k] * 4.0, seed=seed + k) for k in range(n - 1)]


def baseline_comparison(loaded, prompts, conds, spec, rounds: int) -> dict:
    """Previous path (nnsight + second full forward for the NLL) vs the fast engine, alternated."""
    from emocheck.patching.fluency import continuation_nll
    from emocheck.patching.residual import generate_patched

    texts = [t for _ in conds for t in prompts]
    layer = conds[1].layer
    dirs = {layer: torch.stack([c.vector for c in conds for _ in prompts]).float()}
    spec = spec.replace(layers=(layer,), alpha=1.0)

    def old():
        r = generate_patched(loaded, texts, spec, dirs, engine="nnsight")
        return r, continuation_nll(loaded, r.input_ids, r.attention_mask, r.new_tokens, r.lengths)

    def new():
        r = generate_patched(loaded, texts, spec, dirs, engine="fast")
        return r, r.meta["continuation_nll"]

    times = {"previous": [], "fast": []}
    outs = {}
    for _ in range(rounds):
        for name, fn in (("previous", old), ("fast", new)):
            t = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t)
    a, b = outs["previous"][0], outs["fast"][0]
    same = [a.new_tokens[i, : a.lengths[i]].tolist() == b.new_tokens[i, : b.lengths[i]].tolist() for i in range(len(texts))]
    dnll = np.abs(outs["previous"][1] - outs["fast"][1])
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"rows": len(texts), "rounds": rounds, "seconds": med, "speedup": med["previous"] / med["fast"],
            "rows_identical": float(np.mean(same)), "max_abs_nll_diff": float(np.nanmax(dnll)),
            "previous_tokens_per_row": float(a.input_ids.shape[1] * 2 + a.lengths.float().mean())}


def bf16_agreement(name, loaded32, prompts, conds, spec, rounds: int) -> dict:
    """Opt-in bfloat16 (weights bf16, deltas added in float32) vs float32: tokens and speed."""
    from emocheck.models.registry import load_model
    from emocheck.patching.engine import generate_fast

    loaded16 = load_model(name, device="cpu", dtype="bfloat16")
    texts = [t for _ in conds for t in prompts]
    layer = conds[1].layer
    dirs = {layer: torch.stack([c.vector for c in conds for _ in prompts]).float()}
    spec = spec.replace(layers=(layer,), alpha=1.0)
    times = {"float32": [], "bfloat16": []}
    outs = {}
    for _ in range(rounds):
        for key, m in (("float32", loaded32), ("bfloat16", loaded16)):
            t = time.perf_counter()
            outs[key] = generate_fast(m, texts, spec, dirs)
            times[key].append(time.perf_counter() - t)
    a, b = outs["float32"], outs["bfloat16"]
    same = [a.new_tokens[i, : a.lengths[i]].tolist() == b.new_tokens[i, : b.lengths[i]].tolist() for i in range(len(texts))]
    first = [next((k for k, (x, y) in enumerate(zip(a.new_tokens[i].tolist(), b.new_tokens[i].tolist())) if x != y), None)
             for i in range(len(texts))]
    first = [f for f in first if f is not None]
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"rows": len(texts), "seconds": med, "speed_ratio_bf16_vs_fp32": med["float32"] / med["bfloat16"],
            "rows_identical": float(np.mean(same)),
            "median_first_difference": float(np.median(first)) if first else None,
            "nll_mean_abs_diff": float(np.nanmean(np.abs(a.meta["continuation_nll"] - b.meta["continuation_nll"])))}


def levers(name: str, profile, rounds: int, bf16: bool, n_prompts: int | None = None) -> dict:
    """Only the same-process comparisons: previous path vs fast engine (and bf16 vs fp32)."""
    from emocheck.models.registry import load_model
    from emocheck.patching import experiment as ex

    loaded = load_model(name)
    judged, _ = ex.split_generation_prompts(profile)
    _, claim_c, source = conditions_for(name, profile, loaded)
    if claim_c is None:
        claim_c = random_conditions(1 + 3 * (4 + profile.random_directions), loaded.d_model, loaded.n_layers // 2, 9)
    spec = ex.base_spec(profile, name)
    n = n_prompts or max(1, ex.settings(profile)["rows_per_batch"] // len(claim_c))
    prompts = judged["text"].tolist()[:n]
    out = {"model": name, "directions": source}
    print(f"{name}: previous path vs fast engine on {n} prompts x {len(claim_c)} conditions, {rounds} rounds", flush=True)
    out["baseline"] = baseline_comparison(loaded, prompts, claim_c, spec, rounds)
    print("  " + json.dumps(out["baseline"]), flush=True)
    if bf16:
        out["bf16"] = bf16_agreement(name, loaded, prompts, claim_c, spec, rounds)
        print("  bf16: " + json.dumps(out["bf16"]), flush=True)
    return out


def bench_model(name: str, profile, fraction: float, baseline: bool, rounds: int, tmp: Path) -> dict:
    from emocheck.dataset import load_generation_prompts
    from emocheck.models.registry import load_model
    from emocheck.patching import experiment as ex
    from emocheck.representations.build import prompts_for_profile
    from emocheck.representations.extraction import extract_activations

    t = time.perf_counter()
    loaded = load_model(name)
    load_s = time.perf_counter() - t
    shape = ModelShape.from_config(loaded.model.config)
    rate = gemm_rate(shape.d_model, shape.d_ff, rows=128)
    print(f"{name}: loaded in {load_s:.1f}s; float32 GEMM rate {rate / 1e9:.0f} GFLOP/s; "
          f"{shape.flops_per_token(True) / 1e9:.2f} GFLOP per token with logits, "
          f"{shape.flops_per_token(False) / 1e9:.2f} without", flush=True)
    timing.reset()
    out = {"model": name, "load_seconds": load_s, "gemm_flops": rate, "shape": shape.__dict__}

    # extraction (phases 2-3)
    emo = prompts_for_profile(profile)
    n_ex = max(1, int(math.ceil(len(emo) * fraction)))
    t = time.perf_counter()
    extract_activations(loaded, emo["text"].tolist()[:n_ex], emo["trigger"].tolist()[:n_ex],
                        positions=("trigger_last", "last", "mean"), batch_size=profile.batch_size, progress=False)
    ex_s = (time.perf_counter() - t) / fraction
    ex_tokens = sum(len(loaded.tokenizer(x)["input_ids"]) for x in emo["text"].tolist()[:n_ex]) / fraction
    out["extraction"] = {"seconds": ex_s, "tokens": ex_tokens,
                         "floor_seconds": ex_tokens * shape.flops_per_token(False) / rate}
    print(f"  extraction: {n_ex} prompts in {ex_s * fraction:.1f}s", flush=True)

    # phase 5: sweep + claims
    judged, tuning = ex.split_generation_prompts(profile)
    sweep_c, claim_c, source = conditions_for(name, profile, loaded)
    if sweep_c is None:
        n_sweep = 1 + len(ex.settings(profile)["fractions"]) * len(ex.settings(profile)["alphas"]) * 4
        sweep_c = random_conditions(n_sweep, loaded.d_model, loaded.n_layers // 2, 7)
        claim_c = random_conditions(1 + 3 * (4 + profile.random_directions), loaded.d_model, loaded.n_layers // 2, 9)
    spec = ex.base_spec(profile, name)
    rows_per_batch = ex.settings(profile)["rows_per_batch"]
    gen = {"rows": 0, "prompts": 0, "prefix": 0, "decode": 0, "scoring": 0}
    samples_all = []
    timing.reset()
    for label, prompts, conds in (("sweep", tuning, sweep_c), ("claims", judged, claim_c)):
        n = max(1, int(math.ceil(len(prompts) * fraction)))
        sub = prompts.iloc[:n]
        samples = ex.run_conditions(loaded, sub, conds, spec, tmp / name / label, rows_per_batch=rows_per_batch,
                                    evaluators=False, progress=False)
        samples_all.append(samples)
        print(f"  {label}: {len(samples)} rows generated and scored", flush=True)
        ptoks = [len(loaded.tokenizer(x)["input_ids"]) for x in sub["text"]]
        gen["prompts"] += n
        gen["rows"] += len(samples)
        gen["prefix"] += sum(p - 1 for p in ptoks)
        gen["decode"] += int(samples["n_tokens"].sum())
        gen["scoring"] += int(samples["n_tokens"].sum())
    summ = {r["phase"]: 0.0 for r in timing.records()}
    for r in timing.records():
        summ[r["phase"]] += r["seconds"]
    work = Workload(gen["prompts"], gen["rows"], gen["prefix"], gen["decode"], gen["scoring"])
    floor = work.floor_seconds(shape, rate)
    g_s, f_s = summ.get("generation", 0.0), summ.get("fluency", 0.0)
    out["phase5_measured"] = {"fraction": fraction, "directions": source, "rows": gen["rows"], "tokens": gen,
                              "generation_seconds": g_s, "fluency_seconds": f_s,
                              "floor_seconds": floor, "ratio_to_floor": (g_s + f_s) / floor}
    out["generation"] = {"seconds": g_s / fraction, "tokens": (gen["prefix"] + gen["decode"]) / fraction}
    out["fluency"] = {"seconds": f_s / fraction, "tokens": gen["scoring"] / fraction}

    # evaluators, statistics, figures
    import pandas as pd

    texts = pd.concat(samples_all)["text"].tolist()
    t = time.perf_counter()
    scores = ex.score_all(texts)
    out["evaluators"] = {"seconds": (time.perf_counter() - t) / fraction, "texts": len(texts) / fraction}
    print(f"  evaluators: {len(texts)} texts in {out['evaluators']['seconds'] * fraction:.1f}s", flush=True)
    sweep_samples = pd.concat([samples_all[0].reset_index(drop=True), scores.iloc[: len(samples_all[0])].reset_index(drop=True)], axis=1)
    t = time.perf_counter()
    table = ex.sweep_table(sweep_samples)
    ex.select_layer_alpha(table, loaded.n_layers)
    out["statistics"] = {"seconds": time.perf_counter() - t}
    t = time.perf_counter()
    ex.plot_sweep(table, tmp / name / "dose_response.png", name)
    out["figures"] = {"seconds": time.perf_counter() - t}

    if baseline:
        print(f"  baseline comparison ({rounds} rounds, alternated) ...", flush=True)
        n = max(1, rows_per_batch // len(claim_c))
        out["baseline"] = baseline_comparison(loaded, judged["text"].tolist()[:n], claim_c, spec, rounds)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--fraction", type=float, default=1.0, help="run this fraction of the prompts, scale up")
    ap.add_argument("--baseline", action="store_true", help="also time the previous path on one batch")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--levers-only", action="store_true",
                    help="only the same-process comparisons (previous path vs fast engine; --bf16)")
    ap.add_argument("--bf16", action="store_true", help="with --levers-only: opt-in bfloat16 vs float32")
    ap.add_argument("--prompts", type=int, default=None,
                    help="with --levers-only: prompts in the compared batch (default: one production batch)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile, args.models)
    if args.levers_only:
        res = {"profile": profile.name, "threads": torch.get_num_threads(),
               "models": {m: levers(m, profile, args.rounds, args.bf16, args.prompts) for m in profile.models}}
        tag = "_".join(profile.models)
        atomic_write_json(results_dir(profile, "benchmarks") / f"study_levers_{tag}.json", res)
        return 0
    timing.configure(None, None)
    results = {"profile": profile.name, "fraction": args.fraction, "threads": torch.get_num_threads(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in profile.models:
            results["models"][name] = bench_model(name, profile, args.fraction, args.baseline, args.rounds, Path(tmp))
    phases = ("extraction", "generation", "fluency", "evaluators", "statistics", "figures")
    total = 0.0
    print(f"\nprofile {profile.name} (fraction {args.fraction:g} of the prompts, scaled to the whole profile; "
          f"{results['threads']} threads)")
    for name, r in results["models"].items():
        line = []
        for ph in phases:
            s = r[ph]["seconds"]
            total += s
            tok = r[ph].get("tokens")
            line.append(f"{ph} {s:.1f}s" + (f" ({tok / 1e3:.1f}k tok)" if tok else ""))
        p5 = r["phase5_measured"]
        print(f"  {name}: " + ", ".join(line))
        print(f"    generation+fluency {p5['generation_seconds'] + p5['fluency_seconds']:.1f}s measured on "
              f"{p5['rows']} rows vs floor {p5['floor_seconds']:.1f}s: ratio to floor {p5['ratio_to_floor']:.2f}x "
              f"(GEMM {r['gemm_flops'] / 1e9:.0f} GFLOP/s)")
        ex_ = r["extraction"]
        print(f"    extraction ratio to floor {ex_['seconds'] / ex_['floor_seconds']:.2f}x")
        if "baseline" in r:
            b = r["baseline"]
            print(f"    previous path vs fast engine on {b['rows']} rows: {b['seconds']['previous']:.1f}s vs "
                  f"{b['seconds']['fast']:.1f}s = {b['speedup']:.2f}x faster; rows with identical greedy tokens "
                  f"{100 * b['rows_identical']:.1f}%; max |NLL diff| {b['max_abs_nll_diff']:.2e}")
    results["total_seconds"] = total
    print(f"  total (sum of phases, both models, one process): {total / 60:.1f} min")
    results["medium_model_plans"] = medium_model_plans(profile)
    atomic_write_json(results_dir(profile, "benchmarks") / "study.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
