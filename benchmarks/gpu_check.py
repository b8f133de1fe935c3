"""CUDA path end to end (run by benchmarks/gpu_check.sh; under 5 minutes on one GPU).

For each embedded model: patched greedy generation (fast engine, one direction per row, baseline rows
with a zero vector) on CPU float32 (the reference), CUDA float32 and CUDA bfloat16 (weights bf16,
deltas added in float32); prints the fraction of rows whose tokens equal the CPU float32 tokens, the
median first position where they differ, the NLL agreement, and the throughput (generated + scored
tokens/s) at the CUDA batch size chosen from free memory. Writes $OUT/gpu_check.json (or ./gpu_check.json).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emocheck.dataset import load_generation_prompts  # noqa: E402
from emocheck.models.registry import load_model, unload_all  # noqa: E402
from emocheck.patching.engine import default_max_rows, generate_fast  # noqa: E402
from emocheck.patching.residual import PatchSpec  # noqa: E402


def directions(loaded, layer, texts, n_cond, seed=0):
    """Zero (baseline) + random directions at 0.5x the median residual norm of the prompts' last token."""
    from emocheck.patching.residual import tokenize_prompts

    ids, mask = tokenize_prompts(loaded, texts[:8])
    with torch.no_grad():
        hs = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer + 1]
    norm = float(hs[:, -1].float().norm(dim=-1).median())
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n_cond, loaded.d_model, generator=g)
    v = v / v.norm(dim=-1, keepdim=True) * 0.5 * norm
    v[0] = 0
    return v


def agreement(ref, other):
    same, first = [], []
    for i in range(ref.new_tokens.shape[0]):
        a = ref.new_tokens[i, : ref.lengths[i]].tolist()
        b = other.new_tokens[i, : other.lengths[i]].tolist()
        same.append(a == b)
        if a != b:
            first.append(next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))))
    dn = np.abs(ref.meta["continuation_nll"] - other.meta["continuation_nll"])
    return {"rows_identical": float(np.mean(same)), "median_first_difference": float(np.median(first)) if first else None,
            "max_abs_nll_diff_where_identical": float(np.nanmax(dn[np.array(same)])) if any(same) else None}


def main() -> int:
    out = {"cuda": torch.cuda.is_available(), "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if not out["cuda"]:
        print("no CUDA device: nothing to check")
        return 1
    prompts = load_generation_prompts()["text"].tolist()
    n_prompts, n_cond = 16, 8
    texts = [t for _ in range(n_cond) for t in prompts[:n_prompts]]
    for name in ("smollm2-135m", "gemma3-270m"):
        res = {}
        cpu = load_model(name, device="cpu", dtype="float32")
        layer = cpu.n_layers // 2
        v = directions(cpu, layer, prompts, n_cond).repeat_interleave(n_prompts, 0)
        spec = PatchSpec(layers=(layer,), alpha=1.0, window=(0, 5), max_new_tokens=30)
        t = time.perf_counter()
        ref = generate_fast(cpu, texts, spec, v, max_rows=64)
        res["cpu_float32_seconds"] = time.perf_counter() - t
        for dtype in ("float32", "bfloat16"):
            gpu = load_model(name, device="cuda", dtype=dtype)
            generate_fast(gpu, texts[:4], spec, v[:4])                 # warm-up
            torch.cuda.synchronize()
            t = time.perf_counter()
            got = generate_fast(gpu, texts, spec, v)
            torch.cuda.synchronize()
            res[f"cuda_{dtype}"] = {**agreement(ref, got), "seconds": time.perf_counter() - t}
            # throughput at large batch: the prompts repeated up to the memory-derived row count
            rows = default_max_rows(gpu, 30)
            big = (texts * (rows // len(texts) + 1))[:rows]
            vb = v.repeat(rows // len(texts) + 1, 1)[:rows]
            torch.cuda.synchronize()
            t = time.perf_counter()
            r = generate_fast(gpu, big, spec.replace(stop_at_eos=False), vb, max_rows=rows)
            torch.cuda.synchronize()
            s = time.perf_counter() - t
            tok = r.meta["tokens"]
            res[f"cuda_{dtype}"]["throughput"] = {"rows": rows, "seconds": s,
                                                 "tokens_per_s": (tok["decode"] + tok["scoring"]) / s}
            print(name, dtype, json.dumps(res[f"cuda_{dtype}"]), flush=True)
        out[name] = res
        unload_all()
    dest = Path(os.environ.get("OUT") or ".") / "gpu_check.json"
    dest.write_text(json.dumps(out, indent=2))
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
