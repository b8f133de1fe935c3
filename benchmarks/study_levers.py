"""Same-process comparisons of benchmarks/bench_study.py --levers-only: the previous phase-5 path
(nnsight generate, then a second full forward for the NLL) against the fast engine, and opt-in
bfloat16 against float32, alternated in one process (medians; only the ratios mean anything on a
shared machine)."""
from __future__ import annotations

import json
import time

import numpy as np
import torch


def restrict(conds, ids):
    """The conditions of a design restricted to the prompts `ids` (per-prompt draws outside them dropped)."""
    import dataclasses

    keep, out = set(ids), []
    for c in conds:
        if c.prompt_ids is None:
            out.append(c)
            continue
        sub = tuple(i for i in c.prompt_ids if i in keep)
        if sub:
            out.append(dataclasses.replace(c, prompt_ids=sub))
    return out


def design(name, profile, loaded, tuning, judged):
    """(sweep conditions, claim conditions) of the profile's real phase-5 design on these prompts: the
    experiment's own functions (the claim design at the middle sweep layer, alpha 1, a dose-matched
    alpha of 2 so that every secondary condition runs)."""
    from emocheck.patching import experiment as ex
    from emocheck.patching.conditions import sweep_conditions

    st = ex.settings(profile)
    reps = ex._reps(name, profile)
    spec = ex.base_spec(profile, name)
    layers = [l for l in ex.sweep_layers(loaded.n_layers, st["fractions"]) if l in reps.vectors.layers]
    sweep = sweep_conditions(reps.vectors, layers, st["alphas"], spec.site, ex.random_seed_base(profile) + 999,
                             tuning["id"])
    claims = ex._claim_conditions(name, profile, {"layer": layers[len(layers) // 2], "alpha": 1.0,
                                                  "dose_matched_alpha": 2.0}, judged)
    return sweep, claims


def random_conditions(n, d, layer, seed):
    from emocheck.patching.experiment import Condition, random_directions

    vs = random_directions(d, n, seed, 1.0)
    return [Condition("baseline", "baseline", None, layer, 0.0, torch.zeros(d, dtype=torch.float64))] + [
        Condition(f"random{k}", "random", None, layer, 1.0, vs[k] * 4.0, seed=seed + k) for k in range(n - 1)]


def baseline_comparison(loaded, prompts, conds, spec, rounds: int) -> dict:
    """Previous path (nnsight + second full forward for the NLL) vs the fast engine, alternated."""
    from emocheck.patching.fluency import continuation_nll
    from emocheck.patching.engine import generate_patched

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
    # One direction per row as in the claim design (its rows per judged prompt); random directions of
    # the emotion vectors' scale: the engines' speed and token identity do not depend on which.
    from emocheck.compute import phase5_conditions

    per_prompt = int(round(phase5_conditions(profile)["claims"]))
    claim_c, source = random_conditions(per_prompt, loaded.d_model, loaded.n_layers // 2, 9), "random"
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


