"""Throughput of the embedded evaluators (texts/s), cold (encoding) and warm (cache hits).

    python benchmarks/evaluator_throughput.py [--n 512] [--threads 1 2]

Texts are generated-style fragments of about 30 tokens, all distinct, so the cold numbers measure
real encoding. The torch thread count is set only inside the evaluator call and restored.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("thank you so much for the help with the move and i really appreciate it but the train was late "
         "again and i am angry about the ticket price sorry for the delay the report is attached please "
         "send it over when you can the weather is cloudy today and we went home after dinner").split()


def make_texts(n: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(18, 30)))) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    import torch

    from emocheck.evaluators import clear_cache, get_evaluator

    names = ["sentiment", "politeness", "emotion", "sentiment-vader"]
    evs = {n: get_evaluator(n) for n in names}
    evs["emotion"].score(["warm up the encoder"])
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, process torch threads = {torch.get_num_threads()}")
    for th in args.threads:
        os.environ["EMOCHECK_EVALUATOR_THREADS"] = str(th)
        texts = make_texts(args.n, seed=th)
        clear_cache()
        evs["emotion"].encoder.clear_cache()
        t = time.perf_counter()
        evs["emotion"].score(texts)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        for n in ("sentiment", "politeness"):
            evs[n].score(texts)
        shared = time.perf_counter() - t
        t = time.perf_counter()
        evs["emotion"].score(texts)
        warm = time.perf_counter() - t
        print(f"threads={th}: MiniLM cold (encode + head) {args.n / cold:8.1f} texts/s | "
              f"2 more heads on the same texts (embeddings shared) {2 * args.n / shared:9.1f} texts/s | "
              f"warm cache {args.n / warm:10.1f} texts/s")
    enc = evs["emotion"].encoder
    same = make_texts(args.n, seed=98)
    ref = enc.encode(same, threads=args.threads[0], use_cache=False)
    for th in args.threads[1:]:
        emb = enc.encode(same, threads=th, use_cache=False)
        print(f"embeddings with {th} threads vs {args.threads[0]}: bitwise identical {np.array_equal(ref, emb)}, "
              f"max |diff| {np.abs(ref - emb).max():.2e}")
    texts = make_texts(args.n, seed=99)
    t = time.perf_counter()
    evs["sentiment-vader"].score(texts, use_cache=False)
    print(f"VADER: {args.n / (time.perf_counter() - t):8.1f} texts/s")
    print(f"after the calls, torch threads = {torch.get_num_threads()} (restored)")


if __name__ == "__main__":
    main()
