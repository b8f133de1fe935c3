"""Fusing a block's projections as a lever: q/k/v (and gate/up) as one GEMM against one GEMM each, on
one embedded model's real weights, in one process, alternated over rounds; and whether the fused
product gives bitwise the same outputs.

    python benchmarks/bench_fused_projections.py smollm2-135m --rows 1 7 192
    python benchmarks/bench_fused_projections.py gemma3-270m

The inputs are the model's own normalised hidden states of layer `--layer` on phase 5's ci judged
prompts (repeated up to the row count), what the decode loop's projections see.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def groups(layer) -> dict[str, list[torch.nn.Linear]]:
    attn, mlp = layer.self_attn, layer.mlp
    return {"q/k/v": [attn.q_proj, attn.k_proj, attn.v_proj], "gate/up": [mlp.gate_proj, mlp.up_proj]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 7, 192])
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    from emocheck.models.registry import load_model
    from emocheck.patching import experiment as ex
    from emocheck.profiles import get_profile

    loaded = load_model(args.model)
    layer = loaded.layer_module(args.layer)
    judged, _ = ex.split_generation_prompts(get_profile("ci"))
    texts = judged.text.tolist() if hasattr(judged, "text") else list(judged)
    seen = {}
    hook = layer.input_layernorm.register_forward_hook(lambda m, a, out: seen.setdefault("x", out.detach()))
    with torch.no_grad():
        loaded.model(**loaded.tokenizer(texts[:8], return_tensors="pt", padding=True))
    hook.remove()
    states = seen["x"].reshape(-1, seen["x"].shape[-1])
    F = torch.nn.functional
    print(f"{args.model} layer {args.layer}, {torch.get_num_threads()} threads; seconds per call, median of "
          f"{args.rounds} rounds of {args.repeats}")
    for name, mods in groups(layer).items():
        weights = [m.weight.detach() for m in mods]
        sizes = [w.shape[0] for w in weights]
        fused_w = torch.cat(weights, 0)
        for rows in args.rows:
            x = states[torch.arange(rows) % len(states)].contiguous()
            with torch.no_grad():
                sep = [F.linear(x, w) for w in weights]
                fused = F.linear(x, fused_w).split(sizes, -1)
            same = all(torch.equal(a, b) for a, b in zip(sep, fused))
            times = {"separate": [], "fused": []}
            with torch.no_grad():
                for _ in range(args.rounds):
                    t = time.perf_counter()
                    for _ in range(args.repeats):
                        [F.linear(x, w) for w in weights]
                    times["separate"].append((time.perf_counter() - t) / args.repeats)
                    t = time.perf_counter()
                    for _ in range(args.repeats):
                        F.linear(x, fused_w).split(sizes, -1)
                    times["fused"].append((time.perf_counter() - t) / args.repeats)
            a, b = statistics.median(times["separate"]), statistics.median(times["fused"])
            print(f"  {name:8s} {'x'.join(map(str, sizes)):>14s} rows {rows:4d}: separate {a * 1e3:7.3f} ms, "
                  f"fused {b * 1e3:7.3f} ms, {a / b:.2f}x; bitwise identical {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
