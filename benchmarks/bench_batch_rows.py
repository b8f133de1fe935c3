"""Rows per engine batch: the same patched greedy generation (fast engine, NLL scoring included) split
into batches of different sizes, in one process, with the ratio to the first size and whether every
row's greedy tokens are identical to the first run.

    python benchmarks/bench_batch_rows.py gemma3-270m --sizes 32 96 192 --prompts 16

A CPU decode step reads every weight whatever the batch (Gemma's 262k x 640 unembedding alone is 670 MB),
so per-row cost falls with the batch until the step is compute-bound; this is what chose the phase-5
`rows_per_batch` and the circuit generation chunk.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    from emocheck.patching.engine import generate_fast
    from engine_rows import engine_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 96, 192])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--per-prompt", type=int, default=12, help="random-direction rows per prompt")
    args = ap.parse_args(argv)

    loaded, batch, rows_dirs, spec = engine_rows(args.model, args.prompts, args.per_prompt)
    ref_tokens, ref_seconds = None, None
    for size in args.sizes:
        t = time.perf_counter()
        res = generate_fast(loaded, batch, spec, rows_dirs, max_rows=size)
        secs = time.perf_counter() - t
        tokens = [res.new_tokens[i, : res.lengths[i]].tolist() for i in range(len(batch))]
        same = len(batch) if ref_tokens is None else sum(a == b for a, b in zip(ref_tokens, tokens))
        ref_tokens, ref_seconds = ref_tokens or tokens, ref_seconds or secs
        print(f"{args.model}: {len(batch)} rows in batches of {size}: {secs:.1f} s ({secs / len(batch):.3f} s/row), "
              f"{ref_seconds / secs:.2f}x the first size, identical greedy tokens {same}/{len(batch)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
