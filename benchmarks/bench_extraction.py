"""Extraction benchmark: emocheck's nnsight extraction against a plain Hugging Face forward pass.

For each embedded model, in one process, alternating the variants (this machine is noisy):
  - throughput (prompts/s) of `extract_activations` (resid_pre + resid_post, every layer, three position
    rules) against `model(..., output_hidden_states=True)` on the same batches; the ratio is the figure
  - peak resident memory of the process
  - warm activation cache (read + checksum) against cold (extract + write), as a speed-up
  - model load time cold (parse the GGUF and write the de-quantised copy) and warm (read the copy)

    python benchmarks/bench_extraction.py [--models gemma3-270m smollm2-135m] [--prompts 128] [--rounds 3]
                                          [--skip-cold-load] [--threads N]
Prints ratios; asserts nothing (timings are not tests).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bench_model(name: str, n_prompts: int, rounds: int, batch_size: int) -> dict:
    from emocheck.representations import cache as activation_cache
    from emocheck.representations.cache import cached_activations
    from emocheck.dataset import load_emotion_prompts, subsample
    from emocheck.representations.extraction import POSITION_RULES, extract_activations, tokenize
    from emocheck.models.registry import load_model, unload_all

    unload_all()
    # Importing transformers' model classes is a per-process cost, not a model load: timed apart.
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(name)
    warm_load = time.perf_counter() - t0
    df = subsample(load_emotion_prompts(), n_prompts // 4, seed=0)
    texts, triggers = df["text"].tolist(), df["trigger"].tolist()

    def run_emocheck():
        extract_activations(model, texts, triggers, positions=POSITION_RULES, batch_size=batch_size, progress=False)

    def run_hf():
        for s in range(0, len(texts), batch_size):
            b = tokenize(model, texts[s:s + batch_size])
            with torch.no_grad():
                model.model(input_ids=b.input_ids.to(model.device), attention_mask=b.attention_mask.to(model.device),
                            output_hidden_states=True)

    run_emocheck(), run_hf()   # warm-up (allocator, nnsight tracing caches)
    times = {"emocheck": [], "hf": []}
    for r in range(rounds):
        order = [("emocheck", run_emocheck), ("hf", run_hf)]
        for label, fn in (order if r % 2 == 0 else order[::-1]):
            t = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t)
    ratio = statistics.median(h / e for h, e in zip(times["hf"], times["emocheck"]))

    with tempfile.TemporaryDirectory() as tmp:
        activation_cache.clear_memo()
        t = time.perf_counter()
        cached_activations(model, model.identity, df["id"].tolist(), texts, triggers, Path(tmp), progress=False,
                           batch_size=batch_size)
        cold = time.perf_counter() - t
        warm_times = []
        for _ in range(3):
            activation_cache.clear_memo()
            t = time.perf_counter()
            cached_activations(lambda: None, model.identity, df["id"].tolist(), texts, triggers, Path(tmp),
                               n_layers=model.n_layers, progress=False)
            warm_times.append(time.perf_counter() - t)
    warm = statistics.median(warm_times)
    return {
        "model": name, "prompts": len(texts), "layers": model.n_layers,
        "emocheck_prompts_per_s": len(texts) / statistics.median(times["emocheck"]),
        "hf_prompts_per_s": len(texts) / statistics.median(times["hf"]),
        "speedup_vs_hf": ratio, "cache_cold_s": cold, "cache_warm_s": warm, "cache_speedup": cold / warm,
        "warm_model_load_s": warm_load, "transformers_import_s": import_s, "peak_rss_gb": peak_rss_gb(),
    }


def cold_load_seconds(name: str) -> float:
    """Parse the GGUF into a fresh model cache, in a subprocess (nothing memoised)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import time; from emocheck.models import load_model; t=time.perf_counter(); "
                f"load_model({name!r}); print(time.perf_counter()-t)")
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "EMOCHECK_MODEL_CACHE": tmp},
                             capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--skip-cold-load", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice). On a machine with other load, 1 avoids "
                         "threads spinning against other processes, which distorts every timing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from tabulate import tabulate

    rows = []
    for name in args.models:
        row = bench_model(name, args.prompts, args.rounds, args.batch_size)
        if not args.skip_cold_load:
            row["cold_model_load_s"] = cold_load_seconds(name)
        rows.append(row)
        print(f"{name}: done", flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    print(tabulate(rows, headers="keys", floatfmt=".2f"))


if __name__ == "__main__":
    main()
