"""What verifying the de-quantised model copy costs on a warm load, per embedded model.

A warm load (`load_model`, memo cleared, the copy already written and in the page cache) is timed with
the default verification (every file's size and whole-file xxh3_128) and without any (sizes only:
what a load cost before the default check hashed the files), alternating, in one process; the ratio
of each round's two back-to-back loads (median over rounds) is what the default check adds (goal:
under 10%); the minimum and median load times of each mode are shown too. The digests alone are timed too:
xxh3_128 (the default) against sha256 (EMOCHECK_VERIFY_MODELS=1).

    python benchmarks/bench_model_verify.py
    python benchmarks/bench_model_verify.py --rounds 5 --models smollm2-135m

The first run de-quantises each model into the model cache (34-77 s each; locked, shared).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sizes_only(cache_dir: Path, full=None, **_) -> bool:
    """The check without hashing: manifest present, every file there with its recorded size."""
    try:
        files = json.loads((cache_dir / "emocheck_manifest.json").read_text())["files"]
        return all((cache_dir / rel).stat().st_size == m["size"] for rel, m in files.items())
    except (OSError, ValueError, KeyError):
        return False


def copy_dir(name: str) -> Path:
    from emocheck.models import registry as reg

    spec = reg.resolve_spec(name)
    return reg._dequantised_dir(spec, reg._gguf_checksum(reg.locate_gguf(spec)))


def timed_load(name: str) -> float:
    from emocheck.models import registry as reg

    reg.unload_all()
    start = time.perf_counter()
    reg.load_model(name, device="cpu", dtype="float32")
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="gemma3-270m,smollm2-135m")
    args = ap.parse_args(argv)
    import os

    import torch

    from emocheck.models import registry as reg
    from emocheck.storage import fast_file_digest, sha256_file

    os.environ.pop("EMOCHECK_VERIFY_MODELS", None)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    default_check = reg._dequantised_copy_ok
    print(f"{'model':14s} {'files MB':>9s} {'xxh3 s':>7s} {'sha256 s':>8s} {'load, no check s':>17s} "
          f"{'load, default s':>16s} {'ratio':>6s}")
    worst = 0.0
    for name in args.models.split(","):
        timed_load(name)                       # writes the copy on a first run; warms the page cache
        folder = copy_dir(name)
        files = [p for p in folder.iterdir() if p.is_file()]
        mb = sum(p.stat().st_size for p in files) / 1e6
        t = time.perf_counter()
        for p in files:
            fast_file_digest(p)
        xxh = time.perf_counter() - t
        t = time.perf_counter()
        for p in files:
            sha256_file(p)
        sha = time.perf_counter() - t
        times = {"none": [], "default": []}
        for r in range(args.rounds):
            for mode in (("none", "default") if r % 2 == 0 else ("default", "none")):   # no order bias
                reg._dequantised_copy_ok = sizes_only if mode == "none" else default_check
                try:
                    times[mode].append(timed_load(name))
                finally:
                    reg._dequantised_copy_ok = default_check
        for stat in (min, statistics.median):
            none, default = stat(times["none"]), stat(times["default"])
            print(f"{name:14s} {mb:9.0f} {xxh:7.2f} {sha:8.2f} {none:17.2f} {default:16.2f} {default / none:6.3f}"
                  f"  ({stat.__name__} of {args.rounds})")
        # each round's two loads ran back to back: their ratio is the least disturbed by a machine whose
        # load drifts over minutes
        paired = statistics.median(d / n for n, d in zip(times["none"], times["default"]))
        worst = max(worst, paired)
        print(f"{name:14s} median of the {args.rounds} per-round ratios: {paired:.3f}")
    print(f"largest median per-round ratio {worst:.3f} (goal < 1.10); {args.rounds} alternating rounds, "
          f"cpu float32, torch threads {torch.get_num_threads()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
