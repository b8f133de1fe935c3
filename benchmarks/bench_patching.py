"""Benchmark of residual patching during generation.

    .venv/bin/python benchmarks/bench_patching.py --models smollm2-135m gemma3-270m --rounds 3

1. Throughput: generated tokens/s of a patched nnsight generation (window 0-4, one vector per row)
   vs plain Hugging Face `generate` on the same prompts in the same process, variants alternated
   (A B A B ...), ratio of medians (goal >= 0.95). Both run exactly --new-tokens tokens
   (stop_at_eos=False) so the token counts are equal.
2. Batched conditions: several conditions as rows of one generation vs one generation per condition:
   identical tokens (checked) and the speed-up.
3. Memory: peak RSS growth of `run_conditions` as the number of prompts grows (parts are streamed to
   disk, so it should stay flat).
4. Wall time of the ci / full patching experiments per model, read from the experiment's own
   timing (results/<profile>/patching/residual/<model>/{sweep,claims}/samples.json) when it has run,
   and the full profile estimated from the measured per-row time when it has not (said so in the
   output).

Writes results/<profile>/benchmarks/patching_<model>.json and prints a summary.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emocheck.dataset import load_generation_prompts  # noqa: E402
from emocheck.models.registry import load_model  # noqa: E402
from emocheck.patching.engine import generate_patched  # noqa: E402
from emocheck.patching.residual import PatchSpec, generate_plain  # noqa: E402
from emocheck.patching.reference import generate_patched_hooks  # noqa: E402
from emocheck.patching.experiment import (Condition, random_directions, run_conditions,  # noqa: E402
                                          settings)
from emocheck.profiles import get_profile, results_dir  # noqa: E402
from emocheck.storage import atomic_write_json  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(loaded, prompts, new_tokens: int, rounds: int) -> dict:
    spec = PatchSpec(layers=(loaded.n_layers // 2,), alpha=1.0, window=(0, 5), max_new_tokens=new_tokens,
                     stop_at_eos=False)
    vec = random_directions(loaded.d_model, len(prompts), seed=0, norm=1.0).float()
    generate_plain(loaded, prompts[:2], spec)                 # warm-up both paths
    generate_patched(loaded, prompts[:2], spec, vec[:2])
    runners = {"hf": lambda: generate_plain(loaded, prompts, spec),
               "nnsight_patched": lambda: generate_patched(loaded, prompts, spec, vec),
               "hooks_patched": lambda: generate_patched_hooks(loaded, prompts, spec, vec)}
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t = time.perf_counter()
            res = run()
            times[name].append(time.perf_counter() - t)
            assert res.steps_run == new_tokens
    tokens = len(prompts) * new_tokens
    tps = {k: tokens / statistics.median(v) for k, v in times.items()}
    return {"prompts": len(prompts), "new_tokens": new_tokens, "rounds": rounds, "seconds": times,
            "tokens_per_s": tps, "ratio_patched_over_hf": tps["nnsight_patched"] / tps["hf"],
            "ratio_hooks_over_hf": tps["hooks_patched"] / tps["hf"],
            "per_round_ratio": [h / n for h, n in zip(times["hf"], times["nnsight_patched"])]}


def batched_conditions(loaded, prompts, new_tokens: int) -> dict:
    spec = PatchSpec(layers=(loaded.n_layers // 2,), alpha=1.0, window=(0, 5), max_new_tokens=new_tokens)
    dirs = random_directions(loaded.d_model, 3, seed=1, norm=1.0).float() * 8.0
    conds = [torch.zeros(loaded.d_model), dirs[0], -dirs[0], dirs[1]]
    t = time.perf_counter()
    alone = [generate_patched(loaded, prompts, spec, c) for c in conds]
    t_sep = time.perf_counter() - t
    rows = torch.stack([c for c in conds for _ in prompts])
    t = time.perf_counter()
    together = generate_patched(loaded, prompts * len(conds), spec, rows)
    t_bat = time.perf_counter() - t
    identical = all(
        together.texts[k * len(prompts):(k + 1) * len(prompts)] == a.texts for k, a in enumerate(alone))
    return {"conditions": len(conds), "prompts": len(prompts), "separate_s": t_sep, "batched_s": t_bat,
            "speedup": t_sep / t_bat, "identical_texts": identical}


def memory(loaded, prompts_df, new_tokens: int, sizes=(4, 12)) -> dict:
    spec = PatchSpec(layers=(loaded.n_layers // 2,), window=(0, 5), max_new_tokens=new_tokens)
    d = loaded.d_model
    conds = [Condition("baseline", "baseline", None, spec.layers[0], 0.0, torch.zeros(d, dtype=torch.float64)),
             Condition("r", "random", None, spec.layers[0], 1.0, random_directions(d, 1, 3, 8.0)[0])]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            before = _rss_mb()
            run_conditions(loaded, prompts_df.iloc[:n], conds, spec, Path(tmp) / str(n), rows_per_batch=8,
                           evaluators=False, progress=False)
            out[n] = {"peak_rss_mb_before": before, "peak_rss_mb_after": _rss_mb()}
    return out


def experiment_wall_times(model: str, rows_per_s: float | None) -> dict:
    out = {}
    for prof in ("ci", "full"):
        profile = get_profile(prof)
        st = settings(profile)
        n_sweep_conds = 1 + len(st["fractions"]) * len(st["alphas"]) * 4
        n_claim_conds = 1 + 3 * (4 + profile.random_directions)   # e, neg, specific, signflip + randoms
        rows = st["tuning_prompts"] * n_sweep_conds + profile.generation_prompts * n_claim_conds
        measured = {}
        for part in ("sweep", "claims"):
            meta = results_dir(profile, "patching", "residual", model, part) / "samples.json"
            if meta.exists():
                measured[part] = json.loads(meta.read_text()).get("generation_seconds")
        entry = {"rows": rows, "measured_generation_s": measured}
        if len(measured) == 2:
            entry["wall_s"] = sum(measured.values())
            entry["how"] = "measured (generation + fluency; evaluator scoring excluded)"
        elif rows_per_s:
            entry["wall_s_estimate"] = rows / rows_per_s
            entry["how"] = f"estimated from {rows_per_s:.2f} rows/s measured in this run (batched, {profile.new_tokens} tokens)"
        out[prof] = entry
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", default="ci", help="where to write the benchmark JSON")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    prompts_df = load_generation_prompts()
    prompts = prompts_df["text"].tolist()[: args.prompts]
    for model in args.models:
        loaded = load_model(model)
        report = {"model": model, "torch_threads": torch.get_num_threads()}
        report["throughput"] = throughput(loaded, prompts, args.new_tokens, args.rounds)
        report["batched_conditions"] = batched_conditions(loaded, prompts[:8], args.new_tokens)
        b = report["batched_conditions"]
        rows_per_s = b["conditions"] * b["prompts"] / b["batched_s"]
        report["experiment_wall_times"] = experiment_wall_times(model, rows_per_s)
        if not args.skip_memory:
            report["memory"] = memory(loaded, prompts_df, args.new_tokens)
        path = results_dir(args.profile, "benchmarks") / f"patching_{model}.json"
        atomic_write_json(path, report)
        tp = report["throughput"]
        print(f"{model}: patched/HF tokens/s ratio {tp['ratio_patched_over_hf']:.3f} "
              f"({tp['tokens_per_s']['nnsight_patched']:.1f} vs {tp['tokens_per_s']['hf']:.1f} tok/s, "
              f"hooks/HF {tp['ratio_hooks_over_hf']:.3f}, per-round {[round(x, 3) for x in tp['per_round_ratio']]}; "
              f"{args.prompts} prompts x {args.new_tokens} tokens, {args.rounds} alternated rounds); "
              f"batched conditions x{b['speedup']:.2f}, identical={b['identical_texts']}")
        for prof, e in report["experiment_wall_times"].items():
            print(f"  {prof}: {e}")
        if "memory" in report:
            print(f"  memory: {report['memory']}")
        print(f"  -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
