"""The engine's decode cache with reserved room (writes in place) against HF's concatenating cache,
alternated in one process: generation seconds per variant, their ratio, identical greedy tokens and
the largest NLL difference.

    python benchmarks/bench_kv_reserve.py smollm2-135m --prompts 16 --rounds 2

Rows are the phase-5 ci judged prompts x random directions of the emotion vectors' scale, one engine
batch of up to 192 rows (the same rows as benchmarks/bench_lm_head.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from emocheck import timing
    from emocheck.models.registry import load_model
    from emocheck.patching import engine
    from emocheck.patching import experiment as ex
    from emocheck.profiles import get_profile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--per-prompt", type=int, default=12, help="random-direction rows per prompt")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    profile = get_profile("ci")
    loaded = load_model(args.model)
    judged, _ = ex.split_generation_prompts(profile)
    texts = judged["text"].tolist()[: args.prompts]
    gen = torch.Generator().manual_seed(7)
    dirs = torch.randn(args.per_prompt, loaded.d_model, generator=gen)
    dirs = dirs / dirs.norm(dim=1, keepdim=True) * 4.0
    layer = loaded.n_layers // 2
    batch = [t for t in texts for _ in range(args.per_prompt)]
    rows_dirs = {layer: torch.cat([dirs] * len(texts))}
    spec = ex.base_spec(profile, args.model).replace(layers=(layer,), alpha=1.0)
    reserve = engine._reserve
    variants = {"concatenating": lambda cache, extra: cache, "reserved": reserve}
    secs = {k: {"generation": [], "fluency": [], "total": []} for k in variants}
    outs = {}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            engine._reserve = fn
            timing.reset()
            t = time.perf_counter()
            outs[name] = engine.generate_fast(loaded, batch, spec, rows_dirs)
            secs[name]["total"].append(time.perf_counter() - t)
            for phase in ("generation", "fluency"):
                secs[name][phase].append(sum(r["self_seconds"] for r in timing.records() if r["phase"] == phase))
    engine._reserve = reserve
    a, b = outs["concatenating"], outs["reserved"]
    same = sum(a.new_tokens[i, : a.lengths[i]].tolist() == b.new_tokens[i, : b.lengths[i]].tolist() for i in range(len(batch)))
    dnll = float(np.nanmax(np.abs(a.meta["continuation_nll"] - b.meta["continuation_nll"])))
    med = {k: {p: float(np.median(v)) for p, v in d.items()} for k, d in secs.items()}
    for p in ("generation", "total"):
        print(f"{args.model} {p}: concatenating {med['concatenating'][p]:.1f} s, reserved {med['reserved'][p]:.1f} s, "
              f"{med['concatenating'][p] / med['reserved'][p]:.2f}x")
    print(f"{args.model}: {len(batch)} rows, identical greedy tokens {same}/{len(batch)}, max abs NLL difference {dnll:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
