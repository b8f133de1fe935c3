"""Compare the claims of two runs: `python benchmarks/compare_sessions.py A/session.json B/session.json`.

Prints how many claims both runs hold, every claim whose verdict differs, the largest |d| difference
(and its claim), and the claims only one run has. This is how a speed lever is checked against the
whole study: before and after must give the same verdicts and, up to float rounding, the same d.
Exit status 1 when a verdict differs or a claim is missing from one side, so a script can gate on it.
The comparison lives in the library (emocheck.plugin.compare; `emocheck compare A B` prints a table).
"""
from __future__ import annotations

import argparse

from emocheck.plugin.compare import compare_claims, exit_status, load_claims  # noqa: F401 (load_claims re-exported)


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict:
    return compare_claims(a, b).as_dict()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args(argv)
    result = compare_claims(load_claims(args.a), load_claims(args.b))
    r = result.as_dict()
    print(f"{r['common']} claims in both, {len(r['flips'])} verdicts differ, largest |d| difference "
          f"{r['max_abs_d_diff']:.2e}" + (f" ({r['max_claim']})" if r["max_claim"] else ""))
    for k, va, vb in r["flips"]:
        print(f"  verdict {k}: {va} -> {vb}")
    for side in ("only_a", "only_b"):
        for k in r[side]:
            print(f"  {side.replace('_', ' in ')}: {k}")
    return exit_status(result)


if __name__ == "__main__":
    raise SystemExit(main())
