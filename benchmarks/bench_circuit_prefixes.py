"""Circuit prefixes: LastTokenRun.many (right-padded batches) against one prefix pass per prompt, in
one process on a real model, and how far the two give different set metrics.

    python benchmarks/bench_circuit_prefixes.py smollm2-135m --prompts 63 --rounds 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import numpy as np
    import torch

    from emocheck.circuits.components import LastTokenRun, all_components, mean_activations
    from emocheck.circuits.exact import patched_metric
    from emocheck.models.registry import load_model
    from emocheck.profiles import get_profile
    from emocheck.representations.build import build_representations

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--prompts", type=int, default=63)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    loaded = load_model(args.model)
    reps = build_representations(args.model, get_profile("ci"), progress=False)
    texts = reps.prompts.text[reps.prompts.split == "held_out"].tolist()[:args.prompts]
    times = {"one pass per prompt": [], "batched": []}
    for _ in range(args.rounds):
        t = time.perf_counter()
        solo = [LastTokenRun(loaded, x) for x in texts]
        times["one pass per prompt"].append(time.perf_counter() - t)
        t = time.perf_counter()
        many = LastTokenRun.many(loaded, texts)
        times["batched"].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    source = mean_activations(loaded, texts[:16])
    n_comp = len(all_components(loaded))
    mask = torch.rand(32, n_comp, generator=torch.Generator().manual_seed(0)) < 0.5
    u = torch.randn(loaded.d_model, generator=torch.Generator().manual_seed(1))
    diff = max(float(abs(patched_metric(a, mask, source, direction=u) - patched_metric(b, mask, source, direction=u)).max())
               for a, b in zip(many[:8], solo[:8]))
    print(f"{args.model}: {len(texts)} prefixes, one pass per prompt {med['one pass per prompt']:.2f} s, "
          f"batched {med['batched']:.2f} s, {med['one pass per prompt'] / med['batched']:.2f}x; "
          f"largest difference of 32 patched projections on 8 prompts {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
