"""Two models on two cores: one process with 2 threads running the models one after the other, against
two processes with 1 thread each running one model at a time in parallel (what ``pytest -n 2 --dist
loadgroup`` does with one model per worker), and whether the thread count changes a single greedy token.

    OMP_NUM_THREADS=2 python benchmarks/bench_workers.py --rows 48 --rounds 2

Workload per model: one production-like batch of patched greedy generation (the fast engine, `--rows`
rows: `--prompts` judged prompts x random directions of the emotion vectors' scale, 30 new tokens, NLL
scoring). The variants are alternated (A B A B) so load from other jobs falls on both; wall time of
each variant and, for the parallel one, of each process. Token identity: the tokens and NLLs of a
1-thread run against a 2-thread run of the same batch (bitwise for tokens, max |diff| for NLL).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("gemma3-270m", "smollm2-135m")


def workload(model: str, rows: int, prompts: int, threads: int, out: str | None) -> dict:
    """Run the batch in this process with `threads` threads; returns seconds, tokens and NLLs."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    from emocheck.models.registry import load_model
    from emocheck.patching import experiment as ex
    from emocheck.patching.engine import generate_fast
    from emocheck.profiles import get_profile

    profile = get_profile("ci")
    loaded = load_model(model)
    judged, _ = ex.split_generation_prompts(profile)
    texts = judged["text"].tolist()[:prompts]
    gen = torch.Generator().manual_seed(7)
    per = max(1, rows // len(texts))
    dirs = torch.randn(per, loaded.d_model, generator=gen)
    dirs = dirs / dirs.norm(dim=1, keepdim=True) * 4.0
    layer = loaded.n_layers // 2
    batch = [t for t in texts for _ in range(per)]
    rows_dirs = {layer: torch.cat([dirs] * len(texts))}
    spec = ex.base_spec(profile, model).replace(layers=(layer,), alpha=1.0)
    t = time.perf_counter()
    res = generate_fast(loaded, batch, spec, rows_dirs)
    secs = time.perf_counter() - t
    result = {"model": model, "threads": threads, "rows": len(batch), "seconds": secs,
              "tokens": [res.new_tokens[i, : res.lengths[i]].tolist() for i in range(len(batch))],
              "nll": [float(x) for x in res.meta["continuation_nll"]]}
    if out:
        Path(out).write_text(json.dumps(result))
    return result


def child(model, rows, prompts, threads, out) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, __file__, "--child", model, "--rows", str(rows), "--prompts", str(prompts),
                             "--threads", str(threads), "--out", out], env=env)


def variant(name, rows, prompts, tmp: Path) -> dict:
    """Wall time and the children's CPU time (user + system): under load from other jobs two processes
    get a larger share of the cores than one, so the CPU time of the same work is the fairer comparison."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    if name == "sequential":              # one process, 2 threads, the models one after the other
        procs = [child(",".join(MODELS), rows, prompts, 2, str(tmp / "seq.json"))]
    else:                                 # one process per model, 1 thread each, in parallel
        procs = [child(m, rows, prompts, 1, str(tmp / f"par-{m}.json")) for m in MODELS]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{name}: a child failed")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"variant": name, "wall": wall, "cpu": cpu}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--results", default=str(ROOT / "results" / "ci" / "benchmarks"))
    ap.add_argument("--identity-only", action="store_true",
                    help="only the token identity of 1 vs 2 threads, in this process (no timing A/B)")
    args = ap.parse_args(argv)
    if args.identity_only:
        found = {}
        for m in MODELS:
            one = workload(m, args.rows, args.prompts, 1, None)
            two = workload(m, args.rows, args.prompts, 2, None)
            same = sum(x == y for x, y in zip(one["tokens"], two["tokens"]))
            nll = max(abs(x - y) for x, y in zip(one["nll"], two["nll"]))
            found[m] = {"rows": one["rows"], "rows_identical": same, "max_abs_nll_diff": nll}
            print(f"{m}: 1 vs 2 threads: {same}/{one['rows']} rows with identical greedy tokens, "
                  f"max |NLL diff| {nll:.2e}", flush=True)
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / "bench_workers_identity.json").write_text(json.dumps(found, indent=1))
        return 0
    if args.child:
        outs = [workload(m, args.rows, args.prompts, args.threads, None) for m in args.child.split(",")]
        Path(args.out).write_text(json.dumps(outs))
        return 0
    import tempfile

    print(f"load average {os.getloadavg()}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.rounds):
            for name in ("sequential", "parallel"):
                runs.append(variant(name, args.rows, args.prompts, tmp))
                print(f"round {r}: {runs[-1]['variant']} {runs[-1]['wall']:.1f}s wall, {runs[-1]['cpu']:.1f}s CPU "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        seq = {o["model"]: o for o in json.loads((tmp / "seq.json").read_text())}
        par = {m: json.loads((tmp / f"par-{m}.json").read_text())[0] for m in MODELS}
    identity = {}
    for m in MODELS:
        a, b = seq[m], par[m]
        same = sum(x == y for x, y in zip(a["tokens"], b["tokens"]))
        identity[m] = {"rows": len(a["tokens"]), "rows_identical": same,
                       "max_abs_nll_diff": max(abs(x - y) for x, y in zip(a["nll"], b["nll"])),
                       "seconds_2_threads_sequential": a["seconds"], "seconds_1_thread_parallel": b["seconds"]}
        print(f"{m}: 2 threads vs 1 thread: {same}/{len(a['tokens'])} rows with identical greedy tokens, "
              f"max |NLL diff| {identity[m]['max_abs_nll_diff']:.2e}; generation {a['seconds']:.1f}s (2 threads, alone) "
              f"vs {b['seconds']:.1f}s (1 thread, beside the other model)")
    med = {}
    for key in ("wall", "cpu"):
        for n in ("sequential", "parallel"):
            v = sorted(r[key] for r in runs if r["variant"] == n)
            med[f"{n}_{key}"] = v[len(v) // 2]
    print(f"median of {args.rounds}: sequential (2 threads) {med['sequential_wall']:.1f}s wall / "
          f"{med['sequential_cpu']:.1f}s CPU; parallel (1 + 1 threads) {med['parallel_wall']:.1f}s wall / "
          f"{med['parallel_cpu']:.1f}s CPU: wall ratio {med['sequential_wall'] / med['parallel_wall']:.2f}x, "
          f"CPU ratio {med['sequential_cpu'] / med['parallel_cpu']:.2f}x; load {os.getloadavg()}")
    Path(args.results).mkdir(parents=True, exist_ok=True)
    (Path(args.results) / "bench_workers.json").write_text(json.dumps({"runs": runs, "median": med,
                                                                       "identity": identity}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
