"""Example continuations for a claim about generated text: treated and control on the same prompts,
picked by a fixed rule so that the report shows what the numbers are about without cherry-picking.

The rule (:data:`RULE`): sort the judged prompts by their per-prompt difference treated - control (as
judged; ties by prompt id) and take the prompts at the 10th, 50th and 90th percentile (nearest rank).
The middle one is typical, the outer two show the spread in both directions, whatever the verdict.
The selection depends only on the judged numbers, so it is the same on every run of the same data.

Works on the samples tables of phase 5 (``emocheck.patching.running``), the head generations
(``emocheck.heads.generation``) and the circuit modulation (``emocheck.circuits.generation``): one
row per (prompt ``sample_id``, ``condition``) with ``prompt``, ``text``, the evaluator scores and the
fluency columns ``nll`` (mean per generated token, under the unpatched model) and ``rep3``.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

PERCENTILES = (10, 50, 90)
#: longest continuation text kept (characters); a longer one is cut and marked with "..."
MAX_TEXT = 400
#: fluency columns shown beside each continuation's score
FLUENCY_COLUMNS = ("nll", "rep3")

RULE = ("prompts at the {pcts} percentile of the per-prompt difference treated - control in {column} "
        "(nearest rank among the {n} judged prompts, ties by prompt id); the same prompts on every run")


def _number(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _cut(text) -> str:
    text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def percentile_positions(n: int, percentiles: Sequence[float] = PERCENTILES) -> list[tuple[float, int]]:
    """(percentile, 0-based position in the sorted order) by nearest rank; a position two percentiles
    share is kept once (the lower percentile names it)."""
    out, seen = [], set()
    for p in percentiles:
        pos = int(math.floor(p / 100 * (n - 1) + 0.5)) if n > 0 else 0
        if n > 0 and pos not in seen:
            seen.add(pos)
            out.append((p, pos))
    return out


def _side(table: pd.DataFrame, condition: str, sample_id, column: str) -> dict:
    rows = table[(table["condition"] == condition) & (table["sample_id"] == sample_id)]
    several = len(rows) > 1
    if "draw" in rows and several:      # several random draws on one prompt: the lowest draw is shown
        rows = rows.sort_values("draw", kind="stable")
    if rows.empty:
        return {"condition": condition, "text": "", "score": None}
    row = rows.iloc[0]
    side = {"condition": condition, "text": _cut(row.get("text")), "score": _number(row.get(column))}
    prefix = row.get("prefix") if "prefix" in rows else ""
    if isinstance(prefix, str) and prefix:
        side["prefix"] = _cut(prefix)
    if "draw" in rows and several:
        side["draw"] = int(row["draw"])
    for col in FLUENCY_COLUMNS:
        if col in rows:
            side[col] = _number(row.get(col))
    return side


def example_continuations(table: pd.DataFrame, treated: str, control: str, column: str, sample_ids: Sequence,
                          differences: Sequence[float], *, percentiles: Sequence[float] = PERCENTILES,
                          note: str = "") -> dict:
    """The examples of one claim, for ``evidence.record(..., examples=...)``.

    ``sample_ids`` and ``differences`` are the judged prompts and their treated - control difference as
    the claim is judged (same order). Returns ``{"rule", "column", "treated", "control", "n_judged",
    "rows": [{"percentile", "rank", "sample_id", "prompt", "difference", "treated": {...},
    "control": {...}}]}`` with each side's condition, text, score in ``column``, ``nll`` and ``rep3``.
    """
    ids = [str(s) for s in sample_ids]
    diffs = [float(d) for d in differences]
    if len(ids) != len(diffs):
        raise ValueError(f"example_continuations: {len(ids)} sample ids but {len(diffs)} differences")
    order = sorted(range(len(ids)), key=lambda i: (diffs[i] if math.isfinite(diffs[i]) else math.inf, ids[i]))
    by_id = table.assign(sample_id=table["sample_id"].astype(str))
    prompt_of = (dict(zip(by_id["sample_id"], by_id["prompt"])) if "prompt" in by_id else {})
    rows = []
    for p, pos in percentile_positions(len(ids), percentiles):
        i = order[pos]
        sid = ids[i]
        rows.append({"percentile": p, "rank": pos + 1, "sample_id": sid,
                     "prompt": _cut(prompt_of.get(sid, "")),
                     "difference": _number(diffs[i]),
                     "treated": _side(by_id, treated, sid, column), "control": _side(by_id, control, sid, column)})
    pcts = ", ".join(f"{p:g}th" for p in percentiles)
    rule = RULE.format(pcts=pcts, column=column, n=len(ids)) + (f"; {note}" if note else "")
    return {"rule": rule, "column": column, "treated": treated, "control": control, "n_judged": len(ids),
            "rows": rows}
