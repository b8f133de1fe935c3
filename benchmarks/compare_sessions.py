"""Compare the claims of two runs: `python benchmarks/compare_sessions.py A/session.json B/session.json`.

Prints how many claims both runs hold, every claim whose verdict differs, the largest |d| difference
(and its claim), and the claims only one run has. This is how a speed lever is checked against the
whole study: before and after must give the same verdicts and, up to float rounding, the same d.
Exit status 1 when a verdict differs or a claim is missing from one side, so a script can gate on it."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def load_claims(path) -> dict[str, dict]:
    data = json.loads(Path(path).read_text())
    return {c["claim_id"]: c for c in data.get("claims", [])}


def _finite(d):
    return float(d) if d is not None and math.isfinite(float(d)) else None


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict:
    common = sorted(set(a) & set(b))
    flips = [(k, a[k].get("verdict"), b[k].get("verdict")) for k in common
             if a[k].get("verdict") != b[k].get("verdict")]
    worst, worst_id = 0.0, None
    for k in common:
        da, db = _finite(a[k].get("d")), _finite(b[k].get("d"))
        if da is None or db is None:
            if (da is None) != (db is None):     # a d on one side only (None or NaN on the other) differs
                worst, worst_id = math.inf, k
            continue
        if abs(da - db) > worst:
            worst, worst_id = abs(da - db), k
    return {"common": len(common), "flips": flips, "max_abs_d_diff": worst, "max_claim": worst_id,
            "only_a": sorted(set(a) - set(b)), "only_b": sorted(set(b) - set(a))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args(argv)
    r = compare(load_claims(args.a), load_claims(args.b))
    print(f"{r['common']} claims in both, {len(r['flips'])} verdicts differ, largest |d| difference "
          f"{r['max_abs_d_diff']:.2e}" + (f" ({r['max_claim']})" if r["max_claim"] else ""))
    for k, va, vb in r["flips"]:
        print(f"  verdict {k}: {va} -> {vb}")
    for side in ("only_a", "only_b"):
        for k in r[side]:
            print(f"  {side.replace('_', ' in ')}: {k}")
    return 1 if r["flips"] or r["only_a"] or r["only_b"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
