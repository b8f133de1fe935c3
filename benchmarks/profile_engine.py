"""Where one engine batch spends its CPU time, by aten op (torch.profiler):
`python benchmarks/profile_engine.py smollm2-135m --prompts 16 --per-prompt 12` (one 192-row batch of
the engine benchmarks' rows, patched greedy generation with fluency scoring, after a warm-up batch).
Answers whether a gap to the compute floor is GEMM efficiency (aten::mm) or the ops around it."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    from emocheck.patching.engine import generate_fast
    from engine_rows import engine_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--per-prompt", type=int, default=12)
    ap.add_argument("--rows", type=int, default=25, help="ops to list")
    args = ap.parse_args(argv)
    loaded, batch, dirs, spec = engine_rows(args.model, args.prompts, args.per_prompt)
    warm = min(len(batch), 24)
    generate_fast(loaded, batch[:warm], spec, {k: v[:warm] for k, v in dirs.items()}, max_rows=len(batch))
    t = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        generate_fast(loaded, batch, spec, dirs, max_rows=len(batch))
    print(f"{args.model}: {len(batch)} rows in {time.perf_counter() - t:.1f} s (profiled)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
