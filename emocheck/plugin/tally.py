"""The verdict counts and the n-to-decide cell, shared by the text and HTML reports (kept apart from
both so neither imports the other)."""
from __future__ import annotations

import math

VERDICTS = ("supported", "refuted", "inconclusive")


def _count(value) -> str:
    if value is None:
        return "-"
    try:
        if isinstance(value, float) and math.isnan(value):
            return "-"
        return str(int(value))
    except (TypeError, ValueError):
        return "-"


def decision_n_cell(r: dict) -> str:
    """"57/43": the n that would decide an inconclusive claim at the observed effect / if the true d = 0."""
    if r.get("verdict") != "inconclusive":
        return "-"
    return "/".join(_count(r.get(k)) for k in ("n_decide_at_observed", "n_refute_if_d0"))


def verdict_counts(rows: list[dict]) -> dict[str, int]:
    """{"supported": n, "refuted": n, "inconclusive": n, <other statuses>: n}: every row counted once."""
    out = {v: 0 for v in VERDICTS}
    for r in rows:
        out[r.get("verdict") or "error"] = out.get(r.get("verdict") or "error", 0) + 1
    return out


def verdict_tally(rows: list[dict]) -> str:
    """"3 supported, 1 refuted, 5 inconclusive of 9 claims" (other outcomes, e.g. error, appended when present)."""
    counts = verdict_counts(rows)
    parts = [f"{counts[v]} {v}" for v in VERDICTS] + [f"{n} {k}" for k, n in counts.items() if k not in VERDICTS and n]
    return f"{', '.join(parts)} of {len(rows)} claims"
