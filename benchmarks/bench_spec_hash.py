"""The claims' code version (`emocheck.plugin.spec_hash.code_units`) over every collected claim of
`hypotheses/`, in one process: each claim walked from scratch (the per-object memo cleared before
it, which is what every claim cost before the memo) against the memo kept across claims, and whether
the two give the same units and sources for every claim.

    python benchmarks/bench_spec_hash.py
    python benchmarks/bench_spec_hash.py --rounds 2 -- hypotheses/test_q3_heads.py

The plugin computes this spec for every claim it judges (pre-registration and provenance), so its cost
is paid once per claim in every session.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Collect:
    def __init__(self):
        self.items = []

    def pytest_collection_finish(self, session):
        self.items = [i for i in session.items if getattr(i, "function", None) is not None]


def walk(items, root: Path, fresh: bool):
    from emocheck.plugin import spec_hash as sh

    out = []
    for item in items:
        if fresh:
            sh._OBJECT_MEMO.clear()
        out.append(sh.code_units([item.function, *sh.fixture_functions(item)], root))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("paths", nargs="*", default=["hypotheses/"])
    args = ap.parse_args(argv)
    import pytest

    from emocheck.plugin import spec_hash as sh

    collector = _Collect()
    rc = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *args.paths], plugins=[collector])
    if rc not in (0, 5) or not collector.items:
        print(f"collection failed (exit {rc}) or found no claims", file=sys.stderr)
        return 1
    root = ROOT.resolve()
    times = {"fresh": [], "memo": []}
    results = {}
    for _ in range(args.rounds):
        for mode in ("fresh", "memo"):
            sh._OBJECT_MEMO.clear()
            t = time.perf_counter()
            results[mode] = walk(collector.items, root, fresh=(mode == "fresh"))
            times[mode].append(time.perf_counter() - t)
    same = results["fresh"] == results["memo"]
    fresh, memo = min(times["fresh"]), min(times["memo"])
    print(f"{len(collector.items)} claims: walked from scratch {fresh:.2f} s, with the memo {memo:.2f} s "
          f"({fresh / memo:.1f}x); units and sources identical for every claim: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
