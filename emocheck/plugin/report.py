"""Turn per-claim results into corrected verdicts, tables, CSV/JSON files, report.md, report.html and
per-family forest plots (``emocheck.plugin.figures``, ``emocheck.plugin.html_report``).

Nothing here depends on pytest: ``emocheck.plugin.hooks`` collects one *claim result* (a dict of plain
builtins, built on the xdist worker) per claim test and calls :func:`finalize` and
:func:`write_statistics` on the controller. A claim result looks like::

    {"claim_id": "hypotheses/test_q1.py::test_sep[gemma3-270m-anger]",  # nodeid (no xdist suffix)
     "short_id": "test_q1::test_sep[gemma3-270m-anger]",
     "module": "hypotheses/test_q1.py", "family": "q1_separation", "family_size": 6,
     "statement": "...", "model": "gemma3-270m", "params": {...},
     "settings": {"paired": False, "alternative": "greater", "min_d": 0.5, "alpha": 0.05,
                  "ci_method": "analytic", "n_resamples": 2000, "seed": 123},
     "status": "ok" | "error" | "failed" | "skipped", "error": None | "message",
     "comparison": Comparison.to_dict() | None, "metrics": {...},
     "samples": {"treated": [...], "control": [...], "sample_ids": {"treated": [...], "control": [...]}}}
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

from emocheck.errors import ConfigError
from emocheck.plugin.questions import by_question
from emocheck.storage import (RUN_STARTED, atomic_write_dataframe, atomic_write_json, atomic_write_text,
                              file_lock, manifest_files, prune_by_manifest, stable_hash, write_manifest)
from emocheck.plugin.tally import VERDICTS, _count, decision_n_cell, verdict_counts, verdict_tally  # noqa: F401

log = logging.getLogger(__name__)

CORRECTIONS = ("bonferroni", "holm", "bh")
# The claim's three p-values, each corrected within its family: no effect, effect > min_d, effect < min_d.
P_KEYS = ("p_value", "p_min_effect", "p_refute")
EXCESS_KEYS = ("0.2", "0.3", "0.5")

VERDICT_TEXT = """\
How a verdict is reached. Each claim compares a treated sample with a control sample (paired by
sample or independent), K control directions, or K null draws. Cohen's d (d_z when paired) is
reported with a confidence interval (analytic noncentral-t inversion, or BCa bootstrap with
--emocheck-ci-method bootstrap); for one-sided claims the interval is the two-sided 1-2*alpha
interval, so its relevant end is the one-sided 1-alpha bound. Three p-values are computed in the
claimed direction: p, the test of no effect (Welch t, or paired t); p(d>min_d), the noncentral-t
test that the effect exceeds the claim's min_d; and p(d<min_d), the test that it is smaller than
min_d (non-superiority; for two-sided claims two one-sided tests that |d| < min_d). All three are
corrected within the claim's family, whose size is the number of claims the hypothesis files
DECLARE for this profile's models (not the number selected with -k); family members that did not
run count as p = 1. A claim is SUPPORTED if both corrected p and p(d>min_d) are below alpha (the
multiplicity-adjusted lower bound clears min_d), REFUTED if the corrected p(d<min_d) is below alpha
(the adjusted upper bound of the effect in the claimed direction lies below min_d: "smaller than
min_d" is shown with the same error control as "there"), and INCONCLUSIVE otherwise; an
inconclusive row gives the n that would decide it (80% power at alpha / m) if the true effect is
the observed one, and the n that would refute it if the true effect is 0. The table's "adj.
bounds" are those two bounds (lower / upper, in the claimed direction). Independent groups of
unequal size use Bonett's (2008) Welch-consistent interval and tests. A paired claim may record K
control directions per prompt (directions as a random effect: SE^2 = s^2_prompt/n + tau^2/K,
Satterthwaite df), and any claim may record one observed statistic against K null draws
(Monte-Carlo p = (1 + #{null >= x}) / (K + 1); d and min_d in null SDs; refuted when the
observation lies below the null shifted by min_d SDs). Planning power is that of the rule itself
at alpha / m (there is no post-hoc power). A supported claim passes its test, a refuted one fails
it, an inconclusive one is reported as INCONCLUSIVE (not a failure); --emocheck-fail-on
refuted|inconclusive|changed sets which verdicts fail the run, and --emocheck-baseline compares
the verdicts with an earlier run's session.json (see docs/statistics.md).
"""


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def safe_name(claim_id: str, max_len: int = 120) -> str:
    """File-system-safe, collision-free name for a claim id."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", claim_id.replace("::", "__").replace(".py", "")).strip("_.")
    return f"{stem[:max_len]}-{stable_hash(claim_id, 8)}"


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def fmt_p(p) -> str:
    p = _num(p)
    if math.isnan(p):
        return "-"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3f}"


def fmt_d_ci(comp: dict | None) -> str:
    if not comp:
        return "-"
    return f"{_num(comp['d']):.2f} [{_num(comp['d_ci_low']):.2f}, {_num(comp['d_ci_high']):.2f}]"


# ----------------------------------------------------------------------------------------------
# Corrections and verdicts
# ----------------------------------------------------------------------------------------------


def finalize(results: Iterable[dict], correction: str = "holm", *, decision_n: bool = True
             ) -> tuple[list[dict], dict[str, dict]]:
    """Correct p-values by declared family and decide every verdict (supported / refuted / inconclusive).

    Returns (rows, families): one flat row per claim (sorted by claim id; the columns of
    effect_sizes.csv) and, per family, {"declared": n, "run": n, "module": ...}. Claims are
    ordered by claim id inside a family before correcting, so the numbers do not depend on the
    order in which (xdist) workers finished. The three p-values of each claim (no effect, effect
    > min_d, effect < min_d) are corrected within the family by the same method.
    ``decision_n``: give inconclusive claims the n that would decide them (``stats.planning.decision_n``;
    about 30 ms a claim, so simulations of the verdict alone turn it off).
    """
    from emocheck.stats import Comparison, adjust_pvalues, verdict
    from emocheck.stats.planning import (DECISION_N_COLUMNS, decision_bound, decision_n as n_to_decide,
                                         not_supported_reason, plan, refute_bound)

    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    results = sorted(results, key=lambda r: r["claim_id"])
    families: dict[str, dict] = {}
    for r in results:
        fam = families.setdefault(r["family"], {"declared": 0, "run": 0, "modules": set(), "members": []})
        fam["declared"] = max(fam["declared"], int(r.get("family_size") or 0))
        fam["modules"].add(r.get("module", ""))
        fam["members"].append(r)
    adjusted: dict[str, dict[str, float]] = {}
    for name, fam in families.items():
        tested = [r for r in fam["members"] if r.get("status") == "ok" and r.get("comparison")]
        fam["run"] = len(tested)
        fam["declared"] = max(fam["declared"], len(fam["members"]))
        if not tested:
            continue
        for key in P_KEYS:
            p = [_num(r["comparison"].get(key)) for r in tested]
            for method in CORRECTIONS:
                for r, a in zip(tested, adjust_pvalues(p, method, n_tests=fam["declared"])):
                    adjusted.setdefault(r["claim_id"], {})[f"{key}_{method}"] = float(a)

    rows = []
    for r in results:
        fam = families[r["family"]]
        comp = r.get("comparison") or {}
        settings = r.get("settings") or {}
        row: dict[str, Any] = {
            "claim_id": r["claim_id"],
            "short_id": r.get("short_id", r["claim_id"]),
            "family": r["family"],
            "model": r.get("model", ""),
            "params": json.dumps(r.get("params") or {}, sort_keys=True),
            "statement": r.get("statement", ""),
            "status": r.get("status", "ok"),
            "error": r.get("error") or "",
            "paired": bool(settings.get("paired", comp.get("paired", False))),
            "alternative": settings.get("alternative", comp.get("alternative", "")),
            "min_d": _num(settings.get("min_d", comp.get("min_d"))),
            "alpha": _num(settings.get("alpha", comp.get("alpha"))),
            "ci_method": comp.get("ci_method", settings.get("ci_method", "")),
            "seed": settings.get("seed"),
            "kind": comp.get("kind", r.get("kind") or "samples"),
        }
        for key in ("n_treated", "n_control"):
            row[key] = comp.get(key)
        for key in ("mean_treated", "mean_control", "mean_difference", "d", "hedges_g", "d_ci_low",
                    "d_ci_high", "t", "df", "p_value", "p_min_effect", "p_refute"):
            row[key] = _num(comp.get(key)) if comp else float("nan")
        row["sign"] = ("+" if row["d"] > 0 else "-" if row["d"] < 0 else "0") if comp else ""
        if comp:
            alpha = row["alpha"]
            row["ci_level"] = 1 - alpha if row["alternative"] == "two-sided" else 1 - 2 * alpha
        else:
            row["ci_level"] = float("nan")
        row["family_declared"] = fam["declared"]
        row["family_run"] = fam["run"]
        row["correction"] = correction
        adj = adjusted.get(r["claim_id"])
        for key in DECISION_N_COLUMNS:
            row[key] = None
        if adj:
            row["p_adjusted"] = adj[f"p_value_{correction}"]
            row["p_min_effect_adjusted"] = adj[f"p_min_effect_{correction}"]
            row["p_refute_adjusted"] = adj[f"p_refute_{correction}"]
            c = Comparison.from_dict(comp)
            row["verdict_uncorrected"] = verdict(c, c.p_value, c.p_min_effect, c.p_refute)
            row["verdict"] = verdict(c, row["p_adjusted"], row["p_min_effect_adjusted"], row["p_refute_adjusted"])
            null = (r.get("samples") or {}).get("null") if comp.get("kind") == "vs_null" else None
            row["d_bound_adjusted"] = decision_bound(comp, row["p_min_effect_adjusted"], null)
            row["d_bound_refute_adjusted"] = refute_bound(comp, row["p_refute_adjusted"], null)
            row.update(plan(comp, fam["declared"]))
            if decision_n and row["verdict"] == "inconclusive":
                row.update(n_to_decide(comp, fam["declared"]))
            row["reason"] = not_supported_reason(row)
        else:
            row["p_adjusted"] = row["p_min_effect_adjusted"] = row["p_refute_adjusted"] = float("nan")
            row["verdict_uncorrected"] = row["verdict"] = row["status"] if row["status"] != "ok" else "error"
            row["d_bound_adjusted"] = row["d_bound_refute_adjusted"] = float("nan")
            row["reason"] = row["error"] or row["status"]
        for method in CORRECTIONS:
            for key in P_KEYS:
                column = f"p_{method}" if key == "p_value" else f"{key}_{method}"
                row[column] = adj[f"{key}_{method}"] if adj else float("nan")
        row["samples_file"] = f"samples/{safe_name(r['claim_id'])}.csv" if r.get("samples") else ""
        row["examples_file"] = examples_file(r) or ""
        for key, value in sorted((r.get("metrics") or {}).items()):
            row[f"metric_{key}"] = value
        rows.append(row)

    fam_out = {}
    for name, fam in sorted(families.items()):
        fam_out[name] = {"declared": fam["declared"], "run": fam["run"], "modules": sorted(fam["modules"])}
    return rows, fam_out


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------

TABLE_HEADERS = [
    "claim", "model", "statement", "n (t/c)", "d [raw CI]", "adj. bounds", "p raw", "p corr",
    "p(d>min_d) corr", "p(d<min_d) corr", "d80 at a/m", "n for d=min_d+.2/.3/.5", "n to decide (obs/d=0)",
    "verdict", "registration",
]


def _bound(r: dict) -> str:
    """"lower / upper": the adjusted bounds that decide support (must clear min_d) and refutation (must lie
    below min_d), both measured in the claimed direction (|d| for the upper bound of a two-sided claim)."""
    lo, hi = _num(r.get("d_bound_adjusted")), _num(r.get("d_bound_refute_adjusted"))
    if math.isnan(lo) and math.isnan(hi):
        return "-"
    if r.get("alternative") == "less":
        lo = -lo           # decision_bound is signed; show it in the claimed direction like the upper one
    elif r.get("alternative") == "two-sided":
        lo = abs(lo)
    return " / ".join("-" if math.isnan(b) else f"{b:.2f}" for b in (lo, hi))


def _verdict_cell(r: dict) -> str:
    v = r["verdict"]
    if v == "supported" and r["alternative"] == "two-sided":
        v += " (treated > control)" if r["d"] > 0 else " (treated < control)"
    if v != "supported" and r.get("reason"):
        v += f": {r['reason']}"
    return v


def _shorten_middle(text: str, width: int) -> str:
    """Keep the start and the end (the parameters, e.g. model and emotion, are what tells rows apart)."""
    if len(text) <= width:
        return text
    tail = text[text.find("["):] if "[" in text else ""
    tail = tail[-(width - 12):]
    return text[: width - len(tail) - 1] + "…" + tail


def _shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table_rows(rows: list[dict], statement_width: int = 60) -> list[list[str]]:
    out = []
    for r in rows:
        if r["status"] == "ok" and not math.isnan(_num(r["d"])):
            n = f"{r['n_treated']}/{r['n_control']}"
            d_ci = f"{r['d']:.2f} [{r['d_ci_low']:.2f}, {r['d_ci_high']:.2f}]"
            need = "/".join(str(r.get(f"n_required_excess_{k}") or "-") for k in EXCESS_KEYS)
            if r.get("null_draws_needed"):
                need = f"K>={r['null_draws_needed']}"
            d80 = _num(r.get("detectable_d_80"))
            out.append([
                _shorten_middle(r["short_id"], 50), r["model"] or "-", _shorten(r["statement"], statement_width),
                n, d_ci, _bound(r), fmt_p(r["p_value"]), fmt_p(r["p_adjusted"]),
                fmt_p(r["p_min_effect_adjusted"]), fmt_p(r.get("p_refute_adjusted")),
                "-" if math.isnan(d80) else f"{d80:.2f}", need, decision_n_cell(r),
                _verdict_cell(r), r.get("registration", "-"),
            ])
        else:
            reason = _shorten(r["error"] or r["status"], 60)
            out.append([
                _shorten_middle(r["short_id"], 50), r["model"] or "-", _shorten(r["statement"], statement_width),
                "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", f"{r['verdict']}: {reason}", r.get("registration", "-"),
            ])
    return out


def format_table(rows: list[dict], tablefmt: str = "simple", statement_width: int = 60) -> str:
    from tabulate import tabulate

    return tabulate(table_rows(rows, statement_width), headers=TABLE_HEADERS, tablefmt=tablefmt,
                    disable_numparse=True)


def format_families(families: dict[str, dict], tablefmt: str = "simple") -> str:
    from tabulate import tabulate

    data = [[name, f["declared"], f["run"], ", ".join(f["modules"])] for name, f in families.items()]
    return tabulate(data, headers=["family", "declared", "run", "module"], tablefmt=tablefmt,
                    disable_numparse=True)


def changed_by_correction(rows: list[dict]) -> list[dict]:
    """Claims whose verdict before correction (what their test reported on the worker) differs from the
    final one: supported or refuted before, inconclusive after (correction only raises p-values)."""
    return [r for r in rows if r.get("status") == "ok" and r.get("verdict_uncorrected") != r.get("verdict")]


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

POWER_COLUMNS = [
    "claim_id", "short_id", "family", "model", "kind", "paired", "alternative", "alpha", "min_d",
    "family_declared", "planning_level", "n_unit", "n_treated", "n_control", "d", "detectable_d_80",
    "n_required_excess_0.2", "n_required_excess_0.3", "n_required_excess_0.5", "null_draws_needed",
    "verdict", "n_decide_at_observed", "n_refute_if_d0",
]
N_COLUMNS = ("n_required_excess_0.2", "n_required_excess_0.3", "n_required_excess_0.5", "null_draws_needed",
             "n_decide_at_observed", "n_refute_if_d0")


def power_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        if r["status"] != "ok" or math.isnan(_num(r["d"])):
            continue
        p = {k: r.get(k) for k in POWER_COLUMNS if k != "n_unit"}
        p["n_unit"] = {"directions": "prompts (x control directions)", "vs_null": "null draws"}.get(
            r.get("kind"), "pairs" if r["paired"] else "per group")
        out.append({k: p[k] for k in POWER_COLUMNS})
    return out


def examples_file(result: dict) -> str | None:
    """``examples/<claim>.json`` (relative to the statistics folder) when the claim recorded examples."""
    return f"examples/{safe_name(result['claim_id'])}.json" if (result.get("examples") or {}).get("rows") else None


def _samples_frame(result: dict):
    import pandas as pd

    s = result["samples"]
    kind = result.get("kind") or "samples"
    if kind == "vs_null":
        # One row for the observation, one per null draw.
        null = list(s["null"])
        return pd.DataFrame({"sample_id": ["observed"] + [f"null{i}" for i in range(len(null))],
                             "role": ["observed"] + ["null_draw"] * len(null),
                             "value": [s["observed"]] + null})
    tr, co = s["treated"], s["control"]
    ids = s.get("sample_ids") or {}
    paired = bool((result.get("settings") or {}).get("paired"))
    if kind == "directions":
        # One row per prompt: the treated score, then one column per control direction (empty = not run).
        sid = ids.get("treated") or [str(i) for i in range(len(tr))]
        nan = float("nan")
        frame = {"sample_id": sid, "treated": tr}
        for j in range(len(co[0]) if co else 0):
            frame[f"control_{j}"] = [nan if row[j] is None else row[j] for row in co]
        return pd.DataFrame(frame)
    if paired:
        sid = ids.get("treated") or [str(i) for i in range(len(tr))]
        return pd.DataFrame({"sample_id": sid, "treated": tr, "control": co,
                             "difference": [a - b for a, b in zip(tr, co)]})
    # Independent samples: one row per sample, its value in the column of its group.
    t_ids = ids.get("treated") or [f"t{i}" for i in range(len(tr))]
    c_ids = ids.get("control") or [f"c{i}" for i in range(len(co))]
    nan = float("nan")
    return pd.DataFrame({
        "sample_id": list(t_ids) + list(c_ids),
        "treated": list(tr) + [nan] * len(co),
        "control": [nan] * len(tr) + list(co),
    })


def session_settings_lines(settings: dict) -> list[str]:
    return [f"- **{k}**: {v}" for k, v in settings.items()]


def registration_markdown(rows: list[dict], families: dict, registration: dict | None) -> list[str]:
    """The "Pre-registration" section of report.md (empty when the session has no registration info)."""
    if registration is None:
        return []
    lines = ["## Pre-registration", ""]
    lock = registration.get("lock")
    if lock is None:
        lines += [f"No lock for this profile in `{registration.get('lock_path')}`: every claim is **exploratory**.", ""]
    else:
        lines += [f"Lock `{lock.get('path')}` written {lock.get('registered_utc')}"
                  + (f", **forced** although {lock.get('n_results_seen')} result files existed" if lock.get("forced") else "")
                  + ".", ""]
    for r in rows:
        if r.get("registration") not in (None, "-", "pre-registered", "exploratory"):
            lines.append(f"- `{r['claim_id']}`: {r.get('registration_changes', '-')}")
    for name, fam in sorted(families.items()):
        if fam.get("membership_changed"):
            lines.append(f"- family `{name}`: membership changed since the lock (added {fam.get('added') or '-'}, "
                         f"removed {fam.get('removed') or '-'}), so its correction changed")
    return lines + [""]


def _md_text(text, width: int = 160) -> str:
    """One line of continuation text for a Markdown table cell or list item."""
    text = " ".join(str(text or "").split()).replace("|", "\\|")
    return _shorten(text, width) if text else "(empty)"


def examples_markdown(rows: list[dict], results: list[dict]) -> list[str]:
    """One example per claim that recorded examples (the median-difference prompt, else the middle row
    shown), with a link to all of them; empty when no claim recorded any."""
    by_id = {r["claim_id"]: r for r in results}
    lines = []
    for row in rows:
        ex = (by_id.get(row["claim_id"]) or {}).get("examples") or {}
        shown = ex.get("rows") or []
        if not shown:
            continue
        one = next((e for e in shown if e.get("percentile") == 50), shown[len(shown) // 2])
        col = ex.get("column", "score")
        t, c = one.get("treated") or {}, one.get("control") or {}

        def side(s):
            pre = f"[{_md_text(s.get('prefix'), 60)}] " if s.get("prefix") else ""
            nll = "" if col == "nll" else f", NLL {_fmt_num(s.get('nll'))}"
            return f"`{s.get('condition')}` ({col} {_fmt_num(s.get('score'))}{nll}): {pre}{_md_text(s.get('text'))}"

        lines += [f"- **{row['short_id']}** ({row['verdict']}, d = {_fmt_num(row.get('d'))}); prompt "
                  f"{one.get('sample_id')}, rank {one.get('rank')} of {ex.get('n_judged')} by treated - control: "
                  f"\"{_md_text(one.get('prompt'), 100)}\"",
                  f"  - treated {side(t)}", f"  - control {side(c)}",
                  f"  - all {len(shown)} examples: [{row['examples_file']}]({row['examples_file']})"]
    if not lines:
        return []
    return (["## Example continuations", "",
             "For each claim about generated text: the continuation at the median prompt (the prompt whose "
             "treated - control difference is the median among the judged prompts), treated and control on that "
             "prompt. report.html shows the 10th, 50th and 90th percentile prompts side by side; the rule is "
             "fixed, so these are not picked by hand.", "", "<details><summary>one example per claim</summary>",
             ""] + lines + ["", "</details>", ""])


def _fmt_num(x) -> str:
    v = _num(x)
    return "-" if math.isnan(v) else f"{v:.3g}"


def render_markdown(rows: list[dict], families: dict, settings: dict, registration: dict | None = None,
                    validity=None, baseline=None, results: list[dict] | None = None) -> str:
    """report.md. ``baseline``: the :class:`emocheck.plugin.compare.SessionComparison` against
    ``--emocheck-baseline``; its changes come first, right after the title. ``results``: the claims'
    records, for their example continuations."""
    lines = ["# emocheck statistics report", ""]
    if baseline is not None:
        lines += baseline.markdown(f"Verdict changes against the baseline {settings.get('baseline', '')}".rstrip())
    lines += [f"**{verdict_tally(rows)}** "
              f"({settings.get('correction')} correction within declared families, alpha = {settings.get('alpha')}; "
              f"the run fails on: {settings.get('fail_on', 'refuted')}).", ""]
    lines += ["## Session", ""] + session_settings_lines(settings) + [""]
    lines += ["## Claims", "", "Grouped by the research question each claim family answers.", ""]
    for question, fams in by_question(sorted({r["family"] for r in rows})):
        members = [r for r in rows if r["family"] in fams]
        lines += [f"### {question.key}: {question.title}", "", f"{question.plain} **{verdict_tally(members)}.**", "",
                  format_table(members, tablefmt="github", statement_width=200), ""]
    lines += examples_markdown(rows, results or [])
    late = changed_by_correction(rows)
    if late:
        lines += ["### Verdicts changed by the correction", ""]
        lines += [f"- `{r['claim_id']}`: {r['verdict_uncorrected']} before correction, **{r['verdict']}** after "
                  f"{r['correction']} correction (family {r['family']}, {r['family_declared']} declared): "
                  f"p = {fmt_p(r['p_value'])} -> {fmt_p(r['p_adjusted'])}, p(d>min_d) = {fmt_p(r['p_min_effect'])} -> "
                  f"{fmt_p(r['p_min_effect_adjusted'])}, p(d<min_d) = {fmt_p(r['p_refute'])} -> "
                  f"{fmt_p(r['p_refute_adjusted'])}; {r.get('reason', '')}" for r in late]
        lines += [""]
    lines += registration_markdown(rows, families, registration)
    if validity is not None:   # how far to trust the instruments' scores (evaluators/validity.py)
        from emocheck.evaluators.validity import validity_markdown

        lines += validity_markdown(validity)
    lines += ["## Families", ""]
    for question, names in by_question(families):
        lines += [f"**{question.key}: {question.title}**", "",
                  format_families({n: families[n] for n in names}, tablefmt="github"), ""]
    lines += ["## How the verdict is reached", "", VERDICT_TEXT, ""]
    lines += ["## Files", "",
              "- `effect_sizes.csv`: one row per claim, every number, all three corrections, `metric_*` columns",
              "- `power_analysis.csv` / `power_analysis.json`: planning power of the rule that decides (min-effect "
              "test at alpha / m): detectable d at 80% power, n needed when d exceeds min_d by 0.2/0.3/0.5, and "
              "for inconclusive claims the n that would decide them",
              "- `samples/<claim>.csv`: the per-sample values behind each claim",
              "- `examples/<claim>.json`: a claim's example continuations (treated and control on the same "
              "prompts, chosen by the rule stated in the file), for claims about generated text",
              "- `forest_<family>-<hash>.png`: one forest plot per family (d with its CI per claim, a panel "
              "per model, dashed min_d, grey null band)",
              "- `report.html`: this report with sorting, filtering and per-claim details (self-contained)",
              "- `instrument_validity.csv`: each instrument's AUC per contrast on this session's prompts "
              "(when the evaluator-validity claims ran)",
              "- `session.json`: provenance (git, packages, model and data hashes, command, seeds, timing) and "
              "every input needed to recompute each verdict", ""]
    return "\n".join(lines)


def write_statistics(results: list[dict], rows: list[dict], families: dict, settings: dict,
                     out_dir: str | Path, session_started: float | None = None,
                     registration: dict | None = None, baseline=None, notes: list[str] | None = None) -> dict[str, Path]:
    """Write every statistics file of the session into ``out_dir`` (atomically); returns the paths.

    The files describe exactly this session: they are rewritten, not merged with earlier runs
    (claims not run this session do not appear), files an earlier session wrote (listed in the
    previous ``manifest.json`` and not rewritten now) are removed, and ``manifest.json`` records the
    sha256 of each file written here (``emocheck.storage.verify_manifest`` / ``read_verified`` check
    them). Files emocheck did not write are never touched (one line in ``notes`` names them); a
    statistics folder that is a symbolic link is refused before anything is written.
    """
    import pandas as pd

    out = Path(out_dir)
    refuse_linked_statistics(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    with file_lock(out.parent / ".statistics"):
        df = pd.DataFrame(rows)
        for col in ("n_treated", "n_control", "seed", "family_declared", "family_run", *N_COLUMNS):
            if col in df:
                df[col] = pd.to_numeric(df[col], errors="coerce")
                df[col] = df[col].astype("Int64")
        paths["effect_sizes"] = out / "effect_sizes.csv"
        atomic_write_dataframe(paths["effect_sizes"], df)

        prow = power_rows(rows)
        paths["power_csv"] = out / "power_analysis.csv"
        pdf = pd.DataFrame(prow, columns=POWER_COLUMNS)
        for col in ("n_treated", "n_control", "family_declared", *N_COLUMNS):
            pdf[col] = pd.to_numeric(pdf[col], errors="coerce").astype("Int64")
        atomic_write_dataframe(paths["power_csv"], pdf)
        paths["power_json"] = out / "power_analysis.json"
        atomic_write_json(paths["power_json"], {
            "settings": settings,
            "note": "planning power of the rule that decides: the min-effect test (H0: d <= min_d) at the "
                    "conservative family level alpha / m (m = declared family size; Bonferroni and Holm's first "
                    "step). detectable_d_80: smallest true d with 80% power at this n; n_required_excess_e: n "
                    "(pairs when paired, per group otherwise) for 80% power when the true d = min_d + e; "
                    "null_draws_needed: K below which a Monte-Carlo p (>= 1/(K+1)) cannot reach alpha / m. "
                    "For inconclusive claims, n_decide_at_observed: n with 80% power at alpha / m to decide the "
                    "claim if the true d is the observed one (support when it exceeds min_d in the claimed "
                    "direction, refutation when it falls short); n_refute_if_d0: n with 80% power to refute it if "
                    "the true d is 0. No post-hoc power (power at the observed d is a transform of p); the "
                    "n to decide is a plan for the next study, not evidence.",
            "claims": prow,
        })

        sample_dir = out / "samples"
        for r in results:
            if r.get("samples"):
                atomic_write_dataframe(sample_dir / f"{safe_name(r['claim_id'])}.csv", _samples_frame(r))
        paths["samples"] = sample_dir

        # The instruments' validity table, when this session's evaluator-validity claims wrote one.
        from emocheck.evaluators.validity import VALIDITY_FILE, read_session_validity
        from emocheck.storage import sidecar_path

        validity = read_session_validity(out, RUN_STARTED if session_started is None else session_started)
        if validity is not None:
            paths["instrument_validity"] = out / VALIDITY_FILE
            paths["instrument_validity_meta"] = sidecar_path(out / VALIDITY_FILE)
        paths["report"] = out / "report.md"
        for r in results:
            if examples_file(r):
                atomic_write_json(out / examples_file(r), r["examples"])
        atomic_write_text(paths["report"], render_markdown(rows, families, settings, registration, validity,
                                                           baseline, results=results))
        from emocheck.plugin.figures import family_forest_plots
        from emocheck.plugin.html_report import write_html

        figures = family_forest_plots(rows, families, out)
        paths.update({f"forest_plot:{family}": path for family, path in figures.items()})
        paths["html"] = write_html(out / "report.html", rows, families, settings, results=results,
                                   registration=registration, figures=figures, validity=validity)
        paths["settings"] = out / "session.json"
        atomic_write_json(paths["settings"], {"settings": settings, "families": families})
        _seal(out, paths, results, settings, session_started, notes)
    return paths


# Files a phase writes into statistics/ during a session (phase 4's k selection of every model pair);
# listed in the manifest when this session wrote them.
PHASE_OUTPUTS = ("k_selection.csv",)


def refuse_linked_statistics(out: str | Path) -> None:
    """A statistics folder that is a symbolic link points at someone else's folder: emocheck rewrites
    and prunes its own files there, so it refuses rather than touch the target."""
    out = Path(out)
    if out.is_symlink():
        raise ConfigError(
            f"the statistics folder {out} is a symbolic link (to {os.readlink(out)}); emocheck writes and prunes "
            f"its files there and will not do so in another folder: replace the link with a folder of its own "
            f"(remove the link, then mkdir {out}) or choose another results folder with --emocheck-results DIR")


def _seal(out: Path, paths: dict, results: list[dict], settings: dict, session_started: float | None,
          notes: list[str] | None = None) -> None:
    started = RUN_STARTED if session_started is None else session_started
    written = [p for k, p in paths.items() if k not in ("samples", "manifest")]
    written += [out / "samples" / f"{safe_name(r['claim_id'])}.csv" for r in results if r.get("samples")]
    for name in PHASE_OUTPUTS:
        p = out / name
        if p.is_file() and not p.is_symlink() and p.stat().st_mtime >= started and p not in written:
            written.append(p)
    previous = manifest_files(out)      # what emocheck wrote here before: the only files it may remove
    written += [out / examples_file(r) for r in results if examples_file(r)]
    paths["manifest"] = write_manifest(out, written, {"settings": settings})
    keep = {Path(p).relative_to(out).as_posix() for p in [*written, paths["manifest"]]}
    _, foreign = prune_by_manifest(out, previous, keep, started)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        line = (f"{out} holds {len(foreign)} file(s) emocheck did not write, left untouched: {shown} "
                "(statistics/ is rewritten by every session; keep your own files elsewhere)")
        log.warning(line)
        if notes is not None and line not in notes:
            notes.append(line)


def seal_statistics(out_dir: str | Path, paths: dict, results: list[dict], settings: dict,
                    session_started: float | None = None, notes: list[str] | None = None) -> None:
    """Re-record the manifest (and prune) after a file of ``paths`` was rewritten outside
    :func:`write_statistics` (the plugin's provenance ``session.json``)."""
    out = Path(out_dir)
    refuse_linked_statistics(out)
    with file_lock(out.parent / ".statistics"):
        _seal(out, paths, results, settings, session_started, notes)


def append_github_summary(markdown: str, summary_path: str | Path) -> None:
    """Append the report to $GITHUB_STEP_SUMMARY (appending is what GitHub expects)."""
    path = Path(summary_path)
    with file_lock(path):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip() + "\n")
