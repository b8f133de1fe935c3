"""Compare the claims of two runs: `python benchmarks/compare_sessions.py A/session.json B/session.json`.

Prints how many claims both runs hold, every claim whose verdict differs (the changes that fail against
the baseline A first), the largest |d| difference (and its claim), and the claims only one run has. This
is how a speed lever is checked against the whole study: before and after must give the same verdicts
and, up to float rounding, the same d. Exit status 1 when a verdict differs or a claim is missing from
one side, so a script can gate on it. The comparison itself is ``emocheck.plugin.compare.compare_sessions``."""
from __future__ import annotations

import argparse

from emocheck.plugin.compare import compare_sessions


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args(argv)
    r = compare_sessions(args.a, args.b)
    print(r.summary())
    for k, va, vb in r.flips:
        print(f"  verdict {k}: {va} -> {vb}")
    for side in ("only_a", "only_b"):
        for k in getattr(r, side):
            print(f"  {side.replace('_', ' in ')}: {k}")
    return 1 if r.changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
