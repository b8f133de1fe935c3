"""One lever of the fast engine against the path without it, alternated in one process: seconds of
generation and of fluency scoring per variant (from emocheck.timing), their ratio, identical greedy
tokens and the largest NLL difference.

    python benchmarks/bench_engine_lever.py gemma3-270m --lever lm-head --prompts 16 --rounds 2
    python benchmarks/bench_engine_lever.py smollm2-135m --lever kv-reserve
    python benchmarks/bench_engine_lever.py gemma3-270m --lever bf16-screen

Levers: ``lm-head`` (the LM head in vocabulary blocks, emocheck.patching.lm_head, against the
model's own head), ``kv-reserve`` (the decode cache written in place, engine._reserve, against HF's
concatenating cache), ``vocab-block`` (the head's blocks of lm_head.VOCAB_BLOCK entries against the
earlier 8,192) and ``bf16-screen`` (greedy tokens screened in bfloat16, against float32 blocks only). Rows: benchmarks/engine_rows.py, one engine batch of up to 192 rows.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def lever_variants(engine, lever: str) -> tuple[dict, callable]:
    """({variant name: setter}, restore): the setter puts that variant in place."""
    from emocheck.patching import lm_head

    if lever in ("vocab-block", "bf16-screen"):
        name, off = ("VOCAB_BLOCK", 8192) if lever == "vocab-block" else ("SCREEN_MIN_VOCAB", 2 ** 62)
        on = getattr(lm_head, name)

        def put(value):
            return lambda: setattr(lm_head, name, value)
        return {"without": put(off), "with": put(on)}, put(on)
    if lever == "lm-head":
        plain_of = engine.VocabHead.of

        def use(of):
            return lambda: setattr(engine.VocabHead, "of", staticmethod(of))
        return ({"without": use(lambda model, config=None: None), "with": use(plain_of)},
                use(plain_of))
    reserve = engine._reserve

    def use(fn):
        return lambda: setattr(engine, "_reserve", fn)
    return {"without": use(lambda cache, extra: cache), "with": use(reserve)}, use(reserve)


def main(argv=None) -> int:
    from emocheck import timing
    from emocheck.patching import engine
    from engine_rows import engine_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--lever", choices=("lm-head", "kv-reserve", "vocab-block", "bf16-screen"), required=True)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--per-prompt", type=int, default=12, help="random-direction rows per prompt")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    loaded, batch, rows_dirs, spec = engine_rows(args.model, args.prompts, args.per_prompt)
    variants, restore = lever_variants(engine, args.lever)
    secs = {k: {"generation": [], "fluency": [], "total": []} for k in variants}
    outs = {}
    try:
        for _ in range(args.rounds):
            for name, put in variants.items():
                put()
                timing.reset()
                t = time.perf_counter()
                outs[name] = engine.generate_fast(loaded, batch, spec, rows_dirs)
                secs[name]["total"].append(time.perf_counter() - t)
                for phase in ("generation", "fluency"):
                    secs[name][phase].append(sum(r["self_seconds"] for r in timing.records() if r["phase"] == phase))
    finally:
        restore()
    a, b = outs["without"], outs["with"]
    same = sum(a.new_tokens[i, : a.lengths[i]].tolist() == b.new_tokens[i, : b.lengths[i]].tolist() for i in range(len(batch)))
    dnll = float(np.nanmax(np.abs(a.meta["continuation_nll"] - b.meta["continuation_nll"])))
    med = {k: {p: float(np.median(v)) for p, v in d.items()} for k, d in secs.items()}
    for p in ("generation", "fluency", "total"):
        print(f"{args.model} {args.lever} {p}: without {med['without'][p]:.1f} s, with {med['with'][p]:.1f} s, "
              f"{med['without'][p] / med['with'][p]:.2f}x")
    print(f"{args.model} {args.lever}: {len(batch)} rows, identical greedy tokens {same}/{len(batch)}, "
          f"max abs NLL difference {dnll:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
