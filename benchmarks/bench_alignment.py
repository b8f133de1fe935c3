"""Phase 4 benchmark: the cost of the whole alignment phase for a model pair once activations are cached.

In one process:
  - per stage (wall time, process CPU time): reading both models' cached activations, the layer-pair
    search (every source x target layer), the judged pair with its full nulls, the 12 reported
    variants, the prompt bootstrap of k selection; and the whole phase (run_alignment, nothing cached
    in results/<profile>/alignment)
  - the one-BLAS-thread choice: a judged-pair analysis with BLAS limited to one thread against the
    library default, alternated over rounds; the ratio is the figure

    python benchmarks/bench_alignment.py [--models gemma3-270m smollm2-135m] [--profile ci] [--rounds 2]
Prints times and ratios; asserts nothing (timings are not tests). On a shared machine wall time
exceeds CPU time; compare ratios measured in one process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs=2, default=["gemma3-270m", "smollm2-135m"])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    reference, other = args.models

    from threadpoolctl import threadpool_limits

    from emocheck.alignment import run as run_mod
    from emocheck.alignment.analysis import AlignConfig, analyse_pair
    from emocheck.alignment.layers import choose_pair, search_layer_pairs
    from emocheck.alignment.paired import paired_activations
    from emocheck.profiles import get_profile

    profile = get_profile(args.profile)
    cfg = AlignConfig(seed=profile.seed)
    paired, w, c = _timed(lambda: paired_activations(other, reference, profile, progress=False))
    print(f"read cached activations + vectors (both models): wall {w:.1f} s, cpu {c:.1f} s")
    table, w, c = _timed(lambda: search_layer_pairs(paired, cfg, progress=False))
    print(f"layer-pair search ({len(table)} pairs): wall {w:.1f} s, cpu {c:.1f} s")
    ls, lt = choose_pair(table)
    xs, xt = paired.x("source", ls), paired.x("target", lt)
    args_ = (xs, xt, paired.labels, paired.train, paired.emotions)
    _, w, c = _timed(lambda: analyse_pair(*args_, cfg))
    print(f"judged pair ({ls}, {lt}) with full nulls: wall {w:.1f} s, cpu {c:.1f} s")

    # analyse_pair itself limits BLAS to one thread; the undecorated function is the baseline
    raw = analyse_pair.__wrapped__
    light = AlignConfig(seed=profile.seed, permutations=200, pairing_draws=50, random_draws=200)
    one, many = [], []
    for _ in range(args.rounds):
        with threadpool_limits(limits=1, user_api="blas"):
            one.append(_timed(lambda: raw(*args_, light))[1])
        many.append(_timed(lambda: raw(*args_, light))[1])
    print(f"one pair, light nulls: 1 BLAS thread {statistics.median(one):.2f} s, library default "
          f"{statistics.median(many):.2f} s -> ratio default / one thread = {statistics.median(many) / statistics.median(one):.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EMOCHECK_RESULTS_DIR"] = tmp
        from pathlib import Path

        # the whole phase needs the cached activations: point the temporary results root at them
        src = Path.cwd() / "results" / profile.name / "activations"
        (Path(tmp) / profile.name).mkdir(parents=True)
        (Path(tmp) / profile.name / "activations").symlink_to(src.resolve())
        run_mod.clear_memo()
        res, w, c = _timed(lambda: run_mod.run_alignment(reference, other, profile, progress=False))
        print(f"whole phase (run_alignment, cold alignment outputs, vectors recomputed): wall {w:.1f} s, cpu {c:.1f} s")
        run_mod.clear_memo()
        _, w2, c2 = _timed(lambda: run_mod.run_alignment(reference, other, profile, progress=False))
        print(f"whole phase again (outputs on disk, verified by checksum): wall {w2:.1f} s, cpu {c2:.1f} s "
              f"-> {w / max(w2, 1e-9):.0f}x")
        print(f"chosen layers {res.layers}")


if __name__ == "__main__":
    main()
