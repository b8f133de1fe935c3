"""One forest plot per claim family: d with its CI, labelled by statement, one panel per model.

Rows are the family's statements (shared by the model panels, so the same claim on two models sits
on one line); each row marks the claim's ``min_d`` (dashed) and the *null band*: the central 95% of
d expected with no effect at the claim's sample size (for a claim judged against a null
distribution, the band the row itself carries in ``null_band_low`` / ``null_band_high``). A point
outside the band is unlikely by chance; a point beyond min_d is large enough to count. The point's
marker and colour are the verdict: a green circle supported, a red cross refuted (shown smaller than
min_d), an orange diamond inconclusive. Readable
with a hundred claims: a family of 90 claims on 2 models is 45 rows, not 90.
"""
from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

from emocheck.storage import atomic_save_figure, stable_hash

# One colour and one marker per verdict, so the three stay apart in greyscale print too.
COLOURS = {"supported": "#1a9850", "refuted": "#d73027", "inconclusive": "#fdae61"}
MARKERS = {"supported": "o", "refuted": "X", "inconclusive": "D"}
OTHER = "#8c8c8c"
MIN_D = "#4575b4"

__all__ = ["family_forest_plots", "forest_plot", "null_band", "figure_name"]


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _tally(rows: list[dict]) -> str:
    counts = {v: sum(r.get("verdict") == v for r in rows) for v in ("supported", "refuted", "inconclusive")}
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def figure_name(family: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", family).strip("_") or "family"
    return f"forest_{stem[:60]}-{stable_hash(family, 6)}.png"


def null_band(row: dict, level: float = 0.95) -> tuple[float, float] | None:
    """Central ``level`` range of d under no effect at the row's n (None without n)."""
    lo, hi = _num(row.get("null_band_low")), _num(row.get("null_band_high"))
    if not (math.isnan(lo) or math.isnan(hi)):
        return lo, hi
    from scipy import stats as st

    q = 0.5 + level / 2
    if row.get("kind") in ("directions", "vs_null"):
        # d = t * (d / t) for these designs (vs_null: d = t, df = K - 1; directions: d / t = SE / sigma_1),
        # so the band of d with no effect is the t(df) band scaled by the same ratio.
        d, t, df = _num(row.get("d")), _num(row.get("t")), _num(row.get("df"))
        if any(math.isnan(v) for v in (d, t, df)) or t == 0 or df <= 0:
            return None
        half = st.t.ppf(q, df) * abs(d / t)
        return -float(half), float(half)

    n1, n2 = _num(row.get("n_treated")), _num(row.get("n_control"))
    if math.isnan(n1) or n1 < 2:
        return None
    if row.get("paired"):
        half = st.t.ppf(q, n1 - 1) / math.sqrt(n1)
    else:
        if math.isnan(n2) or n2 < 2:
            return None
        half = st.t.ppf(q, n1 + n2 - 2) * math.sqrt(1 / n1 + 1 / n2)
    return -float(half), float(half)


def _natural(text: str) -> list:
    """Sort key that puts "x2" before "x10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _plotted(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and not math.isnan(_num(r.get("d")))]


def _label(row: dict, duplicated: bool) -> str:
    text = " ".join(str(row.get("statement") or row.get("short_id") or row["claim_id"]).split())
    if duplicated:  # two claims with one statement on one model: tell them apart by their id's parameters
        sid = str(row.get("short_id", row["claim_id"]))
        text += f" ({sid[sid.find('::') + 2:] if '::' in sid else sid})"
    lines = textwrap.wrap(text, 80)
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1][:77] + "..."
    return "\n".join(lines)


def forest_plot(rows: list[dict], path: str | Path, title: str = "") -> bool:
    """Draw one family's claims; returns False when none has a d to draw."""
    plotted = _plotted(rows)
    if not plotted:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    models = sorted({r.get("model") or "-" for r in plotted})
    per_model_statement: dict[tuple[str, str], int] = {}
    for r in plotted:
        key = (r.get("model") or "-", str(r.get("statement")))
        per_model_statement[key] = per_model_statement.get(key, 0) + 1
    labels: list[str] = []
    where: dict[str, int] = {}
    for r in sorted(plotted, key=lambda r: _natural(r["claim_id"])):
        dup = per_model_statement[(r.get("model") or "-", str(r.get("statement")))] > 1
        label = _label(r, dup)
        if label not in labels:
            labels.append(label)
        where[r["claim_id"]] = labels.index(label)
    n_rows = len(labels)
    line_count = sum(max(1, lab.count("\n") + 1) for lab in labels)
    height = max(2.8, 0.16 * line_count + 0.16 * n_rows + 1.9)
    width = 6.0 + 3.6 * len(models)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(models), sharey=True, squeeze=False)[0]
    all_x = [v for r in plotted for v in (_num(r.get("d_ci_low")), _num(r.get("d_ci_high")), _num(r.get("d")))
             if math.isfinite(v)]   # an unbounded interval (too few null draws, a tie) is drawn to the edge
    for r in plotted:
        all_x += [sign * _num(r.get("min_d")) for sign in (-1, 1) if _num(r.get("min_d")) > 0]
        band = null_band(r)
        if band:
            all_x += list(band)
    lo_x, hi_x = min(all_x + [0.0]), max(all_x + [0.0])
    pad = 0.06 * (hi_x - lo_x or 1.0)
    for ax, model in zip(axes, models):
        mine = [r for r in plotted if (r.get("model") or "-") == model]
        for r in mine:
            y = n_rows - 1 - where[r["claim_id"]]
            band = null_band(r)
            if band:
                ax.fill_betweenx([y - 0.38, y + 0.38], band[0], band[1], color="#d9d9d9", lw=0, zorder=0)
            min_d = _num(r.get("min_d"))
            if min_d > 0:
                alt = r.get("alternative")
                marks = [-min_d, min_d] if alt == "two-sided" else [-min_d if alt == "less" else min_d]
                for m in marks:
                    ax.plot([m, m], [y - 0.4, y + 0.4], color=MIN_D, lw=1.3, ls="--", zorder=2)
            colour = COLOURS.get(r.get("verdict"), OTHER)
            ci = [min(max(_num(r.get(k)), lo_x - pad), hi_x + pad) for k in ("d_ci_low", "d_ci_high")]
            ax.plot(ci, [y, y], color=colour, lw=2.2, zorder=3)
            ax.plot([_num(r.get("d"))], [y], MARKERS.get(r.get("verdict"), "o"), color=colour, ms=6, zorder=4)
        ax.axvline(0, color="black", lw=0.8, zorder=2.5)
        ax.set_xlim(lo_x - pad, hi_x + pad)
        ax.set_ylim(-0.6, n_rows - 0.4)
        ax.set_title(f"{model} ({len(mine)} claims)", fontsize=10)
        ax.set_xlabel("d with CI (d_z if paired; null SDs vs a null distribution)", fontsize=9)
        ax.grid(axis="x", color="#eeeeee", lw=0.6)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_yticks(range(n_rows))
    axes[0].set_yticklabels(labels[::-1], fontsize=8)
    fig.suptitle(title or f"{len(plotted)} claims: {_tally(plotted)}", fontsize=11)
    fig.legend(handles=[
        *[Line2D([], [], color=COLOURS[v], marker=MARKERS[v], label=v) for v in ("supported", "refuted", "inconclusive")],
        Line2D([], [], color=MIN_D, ls="--", label="claim's min_d"),
        Patch(color="#d9d9d9", label="null band (95% of d with no effect at this n)"),
    ], loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1 - 0.4 / height))
    atomic_save_figure(fig, path)
    return True


def family_forest_plots(rows: list[dict], families: dict, out_dir: str | Path) -> dict[str, Path]:
    """One PNG per family with something to draw: {family: path}."""
    out = {}
    by_family: dict[str, list[dict]] = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r)
    for family, members in sorted(by_family.items()):
        fam = families.get(family, {})
        plotted = _plotted(members)
        corr = members[0].get("correction", "")
        title = (f"family {family}, {len(plotted)} plotted claims: {_tally(plotted)} "
                 f"({corr} over {fam.get('declared', len(members))} declared)")
        path = Path(out_dir) / figure_name(family)
        if forest_plot(members, path, title):
            out[family] = path
    return out
