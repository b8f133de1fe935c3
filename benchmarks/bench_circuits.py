"""Benchmark of attribution patching: every head and MLP at once vs exact patching of the same components.

    python benchmarks/bench_circuits.py --models gemma3-270m smollm2-135m --prompts 2 --rounds 2

Per prompt and round, alternated in one process: (1) attribution of every component (prefix pass +
one last-token forward and backward, emocheck.circuits.attribution), (2) exact patching of every
component, batched as rows of one last-token pass over the cached prefix (emocheck.circuits.exact),
(3) naive exact patching: one full forward pass of the whole prompt per component with a plain hook,
timed on `--naive` components and scaled to all of them (stated in the output). Ratios of medians
are reported (exact / attribution); the machine is shared, so read the ratios, not the seconds.
Writes results/<profile>/benchmarks/circuits_<model>.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emocheck.circuits.attribution import attribute  # noqa: E402
from emocheck.circuits.components import all_components, mean_activations, mlp_module  # noqa: E402
from emocheck.circuits.exact import exact_effects  # noqa: E402
from emocheck.dataset import load_emotion_prompts  # noqa: E402
from emocheck.heads.access import out_proj  # noqa: E402
from emocheck.models.registry import load_model  # noqa: E402
from emocheck.profiles import get_profile, results_dir  # noqa: E402
from emocheck.storage import atomic_write_json  # noqa: E402


def naive_exact(loaded, text, source, comp, u):
    """One full forward pass with the component replaced at the last position (plain hook)."""
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    hd = loaded.head_dim
    if comp.kind == "head":
        def pre(mod, args):
            x = args[0].clone()
            x[:, -1, comp.head * hd:(comp.head + 1) * hd] = source.z[comp.layer, comp.head]
            return (x, *args[1:])
        h = out_proj(loaded, comp.layer).register_forward_pre_hook(pre)
    else:
        def post(mod, args, output):
            o = output.clone()
            o[:, -1] = source.mlp[comp.layer]
            return o
        h = mlp_module(loaded, comp.layer).register_forward_hook(post)
    try:
        with torch.no_grad():
            out = loaded.model.base_model(input_ids=ids, output_hidden_states=True)
    finally:
        h.remove()
    return float(out.hidden_states[-1][0, -1].float() @ u)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--naive", type=int, default=12, help="components timed with naive full passes")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    profile = get_profile("ci")
    df = load_emotion_prompts()
    texts = df[df.emotion == "gratitude"].text.tolist()[: args.prompts]
    neutral = df[df.emotion == "neutral"].text.tolist()[:4]
    for name in args.models:
        loaded = load_model(name)
        comps = all_components(loaded)
        u = torch.nn.functional.normalize(torch.randn(loaded.d_model, generator=torch.Generator().manual_seed(0)), dim=0)
        source = mean_activations(loaded, neutral)
        step = max(1, len(comps) // args.naive)
        sample = comps[::step][: args.naive]
        times = {"attribution": [], "exact_batched": [], "exact_naive_scaled": []}
        for _ in range(args.rounds):
            for text in texts:
                t = time.perf_counter()
                attribute(loaded, text, source, direction=u)
                times["attribution"].append(time.perf_counter() - t)
                t = time.perf_counter()
                exact_effects(loaded, text, source, range(len(comps)), direction=u)
                times["exact_batched"].append(time.perf_counter() - t)
                t = time.perf_counter()
                for c in sample:
                    naive_exact(loaded, text, source, c, u)
                times["exact_naive_scaled"].append((time.perf_counter() - t) * len(comps) / len(sample))
        med = {k: statistics.median(v) for k, v in times.items()}
        res = {"model": name, "n_components": len(comps), "prompts": args.prompts, "rounds": args.rounds,
               "threads": args.threads, "naive_components_timed": len(sample), "median_s": med,
               "ratio_exact_batched_over_attribution": med["exact_batched"] / med["attribution"],
               "ratio_exact_naive_over_attribution": med["exact_naive_scaled"] / med["attribution"],
               "note": "shared 2-core machine; naive exact timed on a sample of components and scaled"}
        atomic_write_json(results_dir(profile, "benchmarks") / f"circuits_{name}.json", res)
        print(f"{name}: {len(comps)} components; per prompt median attribution {med['attribution']:.2f}s, "
              f"exact batched {med['exact_batched']:.2f}s (x{res['ratio_exact_batched_over_attribution']:.1f}), "
              f"exact naive {med['exact_naive_scaled']:.2f}s (x{res['ratio_exact_naive_over_attribution']:.1f}, "
              f"scaled from {len(sample)} components)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
