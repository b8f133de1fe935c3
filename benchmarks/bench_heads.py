"""Benchmark of head screening: reading every head of every layer (z, write, pattern at the last
token, eager attention) vs the same number of plain forward passes of the model body.

    .venv/bin/python benchmarks/bench_heads.py --models smollm2-135m gemma3-270m --prompts 32 --rounds 3

Same prompts, same batch size, same process; variants alternated (plain, screen, plain, screen, ...)
and the ratio of medians reported. The goal (issue 10) is screening in the cost of a few forward
passes per prompt, not one per head: a ratio near 1 means one pass reads all heads. Also reports the
ratio a per-head design would cost (n_layers * n_heads passes) for comparison. Timings on a shared
machine are noisy; the ratio is what to read. Writes results/<profile>/benchmarks/heads_<model>.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emocheck.dataset import load_emotion_prompts  # noqa: E402
from emocheck.heads.access import head_geometry  # noqa: E402
from emocheck.heads.screening import per_prompt_scores, tokenize_with_spans  # noqa: E402
from emocheck.models.registry import load_model  # noqa: E402
from emocheck.profiles import get_profile, results_dir  # noqa: E402
from emocheck.storage import atomic_write_json  # noqa: E402


class _Vectors:
    """Random unit directions standing in for emotion vectors (the cost does not depend on them)."""

    def __init__(self, d: int):
        self.v = torch.nn.functional.normalize(torch.randn(d, generator=torch.Generator().manual_seed(0)), dim=0)

    def vector(self, *a, **k):
        return self.v


class _Reps:
    def __init__(self, prompts, d):
        self.prompts = prompts
        self.vectors = _Vectors(d)


def plain_passes(loaded, prompts, batch_size: int) -> None:
    texts, triggers = prompts["text"].tolist(), prompts["trigger"].tolist()
    for start in range(0, len(texts), batch_size):
        ids, mask, _, _ = tokenize_with_spans(loaded, texts[start:start + batch_size], triggers[start:start + batch_size])
        with torch.no_grad():   # the model body (no unembedding), as screening stops after the last layer
            loaded.model.base_model(input_ids=ids, attention_mask=mask)


def bench(name: str, n_prompts: int, rounds: int, batch_size: int) -> dict:
    loaded = load_model(name)
    df = load_emotion_prompts()
    prompts = df.groupby("emotion").head(max(1, n_prompts // df.emotion.nunique())).reset_index(drop=True)
    reps = _Reps(prompts, loaded.d_model)
    g = head_geometry(loaded)
    plain_passes(loaded, prompts.head(batch_size), batch_size)                # warm-up
    times = {"plain": [], "screen": []}
    for _ in range(rounds):
        t = time.perf_counter()
        plain_passes(loaded, prompts, batch_size)
        times["plain"].append(time.perf_counter() - t)
        t = time.perf_counter()
        per_prompt_scores(loaded, reps, ["e"], batch_size=batch_size, progress=False)
        times["screen"].append(time.perf_counter() - t)
    ratio = statistics.median(times["screen"]) / statistics.median(times["plain"])
    out = {"model": name, "prompts": len(prompts), "rounds": rounds, "batch_size": batch_size,
           "heads": g.n_total, "plain_s": times["plain"], "screen_s": times["screen"],
           "ratio_screen_vs_one_forward": ratio, "ratio_one_pass_per_head_design": float(g.n_total),
           "note": "shared machine; plain = forward of the model body (no unembedding), like screening"}
    atomic_write_json(results_dir(get_profile("ci"), "benchmarks") / f"heads_{name}.json", out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    for name in args.models:
        r = bench(name, args.prompts, args.rounds, args.batch_size)
        print(f"{name}: {r['heads']} heads, {r['prompts']} prompts: screening every head = "
              f"{r['ratio_screen_vs_one_forward']:.2f} x one plain forward pass per prompt "
              f"(a pass per head would be {r['heads']} x); medians plain {statistics.median(r['plain_s']):.2f}s "
              f"screen {statistics.median(r['screen_s']):.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
