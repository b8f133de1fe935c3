"""The evaluators' encoder batch size as a lever: cold scoring throughput (texts/s) per batch size,
alternated over rounds in one process, and whether a batch size changes any score.

    OMP_NUM_THREADS=1 python benchmarks/evaluator_batch.py --n 384 --sizes 16 32 64 128 256 --rounds 2

Texts are generated-style fragments of about 30 tokens (benchmarks/evaluator_throughput.py), all
distinct; every timed call scores the three MiniLM heads (sentiment, politeness, emotion: one encoding
shared) from an empty cache. The default batch size is 64 (MiniLMHeadEvaluator).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluator_throughput import make_texts  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=384)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    from emocheck.evaluators import clear_cache, get_evaluator

    evs = [get_evaluator(n) for n in ("sentiment", "politeness", "emotion")]
    evs[0].score(["warm up the encoder"])
    texts = make_texts(args.n, seed=3)
    times = {b: [] for b in args.sizes}
    scores = {}
    print(f"load average {os.getloadavg()}; {args.n} texts; sizes {args.sizes}", flush=True)
    for _ in range(args.rounds):
        for b in args.sizes:
            clear_cache()
            evs[0].encoder.clear_cache()
            for ev in evs:
                ev.batch_size = b
            t = time.perf_counter()
            out = np.concatenate([ev.score_array(texts) for ev in evs], axis=1)
            times[b].append(time.perf_counter() - t)
            scores[b] = out
    ref = scores[64] if 64 in scores else scores[args.sizes[0]]
    for b in args.sizes:
        med = float(np.median(times[b]))
        print(f"batch {b:4d}: {args.n / med:7.1f} texts/s (median of {args.rounds}); max |score - batch 64 score| "
              f"{float(np.max(np.abs(scores[b] - ref))):.2e}", flush=True)
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
