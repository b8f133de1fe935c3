"""A profile's study, phase by phase: wall and CPU time, tokens processed and ratio to the compute floor.

Three ways to get the numbers (each prints the same table, emocheck.breakdown):

    # 1. read a real session's session.json (or its statistics folder) and combine it with the token counts
    python benchmarks/bench_study.py --session results/ci/statistics/session.json
    # 2. run the whole profile (pytest hypotheses/, every phase, both models) into a results root, then 1.
    python benchmarks/bench_study.py --profile ci --claims --results /tmp/study_ci [-- -n 2]
    # 3. run a fraction of a profile's extraction and phase 5 (the real design) and scale up linearly
    python benchmarks/bench_study.py --profile full --fraction 0.05 --models smollm2-135m

Mode 3, per model, in one process, from warm model caches: extraction of the first f of the profile's
emotion prompts (every layer, both residual sites, three positions, as phases 2-3 do); phase 5 with the
profile's own design on the first f of its tuning and judged prompts (the sweep's conditions; the
claim conditions of ``emocheck.patching.conditions.claim_conditions`` with the model's emotion vectors,
label-permuted nulls and subspaces, at the middle sweep layer, alpha 1, a dose-matched alpha of 2 so
every secondary condition runs), evaluators, the sweep table and selection (statistics) and its plot
(figures). Every number comes from ``emocheck.timing`` and is divided by f (generation is linear in
prompts); rows per prompt are the design's. Choose f so that f x the tuning prompts and f x the judged
prompts are whole numbers (full: f = 0.125 gives 1 and 25): both are rounded up and scaled by 1 / f.
Phases the fraction run does not cover (heads, circuits,
alignment, Q1 analysis, the plugin's statistics) are not estimated here: take them from mode 1 or 2.

The floor of a phase is its counted FLOPs / the float32 GEMM rate of the model's shapes measured in
this process (emocheck.compute); the machine's load average is printed beside the numbers, because
on a shared machine wall time says how long others made the work wait and CPU time what it cost.
``--levers-only`` prints only the same-process comparisons (benchmarks/study_levers.py). Writes
``<results>/<profile>/benchmarks/study.json``.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from emocheck import breakdown, timing  # noqa: E402
from emocheck.profiles import get_profile, results_dir  # noqa: E402
from emocheck.storage import atomic_write_json  # noqa: E402
from study_levers import baseline_comparison, design, levers, restrict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min), {os.cpu_count()} CPUs"


def bench_model(name: str, profile, fraction: float, baseline: bool, rounds: int, tmp: Path) -> dict:
    """Mode 3 for one model: the timing summary of the fraction run, scaled by 1 / fraction."""
    from emocheck.models.registry import load_model
    from emocheck.patching import experiment as ex
    from emocheck.representations.build import prompts_for_profile
    from emocheck.representations.extraction import extract_activations

    t = time.perf_counter()
    loaded = load_model(name)
    load_s = time.perf_counter() - t
    ex._reps(name, profile)                  # vectors from the activation cache (untimed set-up)
    timing.reset()
    emo = prompts_for_profile(profile)
    n_ex = max(1, int(math.ceil(len(emo) * fraction)))
    extract_activations(loaded, emo["text"].tolist()[:n_ex], emo["trigger"].tolist()[:n_ex],
                        positions=("trigger_last", "last", "mean"), batch_size=profile.batch_size, progress=False)
    judged_all, tuning_all = ex.split_generation_prompts(profile)
    for label, n in (("tuning", len(tuning_all)), ("judged", len(judged_all))):
        if abs(n * fraction - round(n * fraction)) > 1e-9:
            print(f"  (warning: {fraction:g} x {n} {label} prompts is not whole; rounded up, so that part is "
                  "over-estimated)")
    tuning = tuning_all.iloc[: max(1, int(math.ceil(len(tuning_all) * fraction)))]
    judged = judged_all.iloc[: max(1, int(math.ceil(len(judged_all) * fraction)))]
    sweep_c, claim_c = design(name, profile, loaded, tuning_all, judged_all)
    spec = ex.base_spec(profile, name)
    rpb = ex.settings(profile)["rows_per_batch"]
    rows = {}
    for label, prompts, conds in (("sweep", tuning, sweep_c), ("claims", judged, claim_c)):
        conds = restrict(conds, prompts["id"])
        with timing.phase("patching", model=name):       # evaluators inside belong to this model
            samples = ex.run_conditions(loaded, prompts, conds, spec, tmp / name / label, rows_per_batch=rpb,
                                        evaluators=True, progress=False)
        rows[label] = {"prompts": len(prompts), "rows": len(samples), "rows_per_prompt": len(samples) / len(prompts),
                       "whole_profile_rows": len(samples) / len(prompts) * len(judged_all if label == "claims" else tuning_all)}
        if label == "sweep":
            with timing.phase("statistics", model=name):
                table = ex.sweep_table(samples)
                ex.select_layer_alpha(table, loaded.n_layers)
            with timing.phase("figures", model=name):
                try:
                    ex.plot_sweep(table, tmp / name / "dose_response.png", name)
                except ValueError as exc:       # a fraction run's tiny sweep can leave a log axis empty
                    print(f"  (sweep plot skipped: {exc})")
        print(f"  {name} {label}: {rows[label]['rows']} rows on {len(prompts)} prompts "
              f"({rows[label]['rows_per_prompt']:.1f} per prompt)", flush=True)
    timing.flush()
    summ = scale(timing.summary(tmp / "timing-root", profile.name), 1.0 / fraction)
    out = {"model": name, "load_seconds": load_s, "fraction": fraction, "extraction_prompts": n_ex,
           "rows": rows, "summary": summ}
    if baseline:
        from study_levers import random_conditions

        per = int(round(rows["claims"]["rows_per_prompt"]))
        conds = random_conditions(per, loaded.d_model, loaded.n_layers // 2, 9)
        out["baseline"] = baseline_comparison(loaded, judged["text"].tolist()[: max(1, rpb // per)], conds, spec, rounds)
    return out


def scale(summ: dict, factor: float) -> dict:
    """A timing summary with every amount (seconds, tokens, FLOPs, calls kept) multiplied by factor."""
    def s(d):
        return {k: (v * factor if k in ("seconds", "inclusive_seconds", "cpu_seconds", "flops") else
                    int(round(v * factor)) if k == "tokens" else v) for k, v in d.items() if k != "models"}
    phases = {n: {**s(p), "models": {m: s(v) for m, v in p["models"].items()}} for n, p in summ["phases"].items()}
    return {**summ, "phases": phases, "total_seconds": summ["total_seconds"] * factor,
            "total_cpu_seconds": summ.get("total_cpu_seconds", 0.0) * factor}


def merge(summaries: list[dict]) -> dict:
    phases: dict = {}
    for summ in summaries:
        for n, p in summ["phases"].items():
            phases.setdefault(n, {"models": {}})["models"].update(p["models"])
    for p in phases.values():
        for k in ("seconds", "inclusive_seconds", "cpu_seconds", "tokens", "flops", "calls"):
            p[k] = sum(m.get(k, 0) for m in p["models"].values())
    return {"phases": phases, "processes": 1, "total_seconds": sum(p["seconds"] for p in phases.values()),
            "total_cpu_seconds": sum(p["cpu_seconds"] for p in phases.values())}


def report(summ: dict, title: str, wall: float | None = None) -> dict:
    """Print the breakdown of a summary (table, generation ratios, totals); return it as data."""
    shapes = breakdown.model_shapes(breakdown.models_of(summ))
    rates = breakdown.measure_rates(list(shapes), shapes=shapes)
    rows = breakdown.phase_rows(summ, rates, shapes)
    print(f"\n{title}\n{load()}")
    print(breakdown.format_rows(rows))
    if any(r["flops_estimated"] for r in rows):
        print("  (floors of token-only generation records: tokens x FLOPs per token with logits)")
    gens = [g for g in (breakdown.generation_ratio(summ, rates, m, shapes) for m in breakdown.models_of(summ)) if g]
    for g in gens:
        print(f"  {g['model']}: generation + fluency {g['seconds']:.1f}s vs floor {g['floor_seconds']:.1f}s = "
              f"{g['ratio_to_floor']:.2f}x the floor (float32 GEMM {g['gemm_gflops']:.0f} GFLOP/s, measured now)")
    cpu = summ.get("total_cpu_seconds")
    print(f"  total in phases: {summ['total_seconds'] / 60:.1f} min wall" + (f", {cpu / 60:.1f} min CPU" if cpu else "")
          + (f"; session wall {wall / 60:.1f} min" if wall else ""))
    return {"rows": rows, "generation": gens, "rates": rates, "load": os.getloadavg(), "wall_seconds": wall}


def run_claims(profile_name: str, results: Path, extra: list[str]) -> float:
    """Mode 2: the whole profile as `make claims` runs it (a subprocess); returns its wall time."""
    cmd = [sys.executable, "-m", "pytest", "hypotheses/", "--emocheck-profile", profile_name,
           "--emocheck-results", str(results), "-p", "no:cacheprovider", "-q", *extra]
    print(" ".join(cmd), f"\n({load()})", flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))   # claims that fail are findings
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--session", default=None, help="mode 1: a session.json, its statistics folder, or a results root")
    ap.add_argument("--claims", action="store_true", help="mode 2: run pytest hypotheses/ for the profile, then read it")
    ap.add_argument("--results", default=None, help="results root for --claims and study.json (default ./results)")
    ap.add_argument("--fraction", type=float, default=1.0, help="mode 3: run this fraction of the prompts, scale up")
    ap.add_argument("--baseline", action="store_true", help="mode 3: also time the previous path on one batch")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--levers-only", action="store_true",
                    help="only the same-process comparisons (previous path vs fast engine; --bf16)")
    ap.add_argument("--bf16", action="store_true", help="with --levers-only: opt-in bfloat16 vs float32")
    ap.add_argument("--prompts", type=int, default=None,
                    help="with --levers-only: prompts in the compared batch (default: one production batch)")
    args, extra = ap.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.session:
        summ = breakdown.load_summary(args.session, args.profile)
        wall = (summ.get("session_wall_s") or {}).get("run")
        out = report(summ, f"session {args.session} ({summ.get('processes')} process(es))", wall)
        # written under our own results root, never beside the session read (it may be someone else's)
        root = Path(args.results or ROOT / "results").resolve()
        atomic_write_json(root / args.profile / "benchmarks" / "study_breakdown.json", out)
        return 0
    if args.results:                        # the library's results_dir() follows it (modes 2 and 3)
        os.environ["EMOCHECK_RESULTS_DIR"] = str(Path(args.results).resolve())
    profile = get_profile(args.profile, args.models)
    if args.claims:
        root = Path(args.results or ROOT / "results").resolve()
        wall = run_claims(profile.name, root, extra + (["--emocheck-models", ",".join(args.models)] if args.models else []))
        out = report(breakdown.load_summary(root / profile.name / "statistics"), f"profile {profile.name}: whole run", wall)
        atomic_write_json(root / profile.name / "benchmarks" / "study.json", out)
        return 0
    if args.levers_only:
        res = {"profile": profile.name, "threads": torch.get_num_threads(),
               "models": {m: levers(m, profile, args.rounds, args.bf16, args.prompts) for m in profile.models}}
        atomic_write_json(results_dir(profile, "benchmarks") / f"study_levers_{'_'.join(profile.models)}.json", res)
        return 0
    print(f"profile {profile.name}, fraction {args.fraction:g}, {torch.get_num_threads()} threads; {load()}", flush=True)
    per_model = {}
    with tempfile.TemporaryDirectory() as tmp:
        timing.configure(Path(tmp) / "timing-root", profile.name)
        for name in profile.models:
            per_model[name] = bench_model(name, profile, args.fraction, args.baseline, args.rounds, Path(tmp))
        timing.configure(None, None)
    out = report(merge([r["summary"] for r in per_model.values()]),
                 f"profile {profile.name}: extraction + phase 5, estimated from a {args.fraction:g} fraction "
                 "(scaled to the whole profile)")
    for name, r in per_model.items():
        print(f"  {name}: " + "; ".join(f"{k} {v['whole_profile_rows']:.0f} rows ({v['rows_per_prompt']:.1f} per prompt)"
                                        for k, v in r["rows"].items()))
        if "baseline" in r:
            b = r["baseline"]
            print(f"  {name}: previous path vs fast engine on {b['rows']} rows: {b['speedup']:.2f}x; identical greedy "
                  f"tokens {100 * b['rows_identical']:.1f}%; max |NLL diff| {b['max_abs_nll_diff']:.2e}")
    out["models"] = per_model
    atomic_write_json(results_dir(profile, "benchmarks") / f"study_{profile.name}_f{args.fraction:g}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
