"""How far to trust each instrument on a given prompt set: AUC per contrast with DeLong intervals.

    table = instrument_validity(prompts)          # prompts: DataFrame with `text` and `emotion`
    table[["instrument", "column", "target", "contrast", "auc", "ci_low", "ci_high", "meets_aim"]]

For every instrument column that is meant to track an emotion of the prompt set (rows below), the AUC
of the target emotion's prompts against the neutral prompts, against each other emotion on its own,
and against all other emotions pooled ("specificity"). AUC = P(target scores higher than control)
+ 1/2 P(tie), oriented so that 1 is perfect for the instrument's claimed direction (a sentiment score
is expected to be LOWER for anger). The interval is DeLong's (DeLong, DeLong & Clarke-Pearson 1988:
variance from the structural components, normal interval clipped to [0, 1]; checked against a
stratified bootstrap in tests/test_evaluator_validity_table.py). `meets_aim`: the AUC reaches the
project's aim of 0.9 (research/evaluators.md); `ci_low_meets_aim`: even the interval's lower end does.

Rows (only the emotions the prompt set has):
* the emotion head's label of every emotion (apology -> remorse), e.g. `emotion.gratitude`, and the same
  label's margin over the strongest other emotion (`emotion-margin`);
* the NRC lexicon's label where it has one (anger, fear, joy, sadness, disgust, surprise, trust);
* polarity instruments (MiniLM sentiment, VADER, the lexicon's positive - negative): higher for
  gratitude, lower for anger and apology; politeness: higher for gratitude and apology (vs neutral and
  anger), lower for anger.

The table is written as results/<profile>/statistics/instrument_validity.csv by the evaluator-validity
claims (hypotheses/test_evaluator_validity.py) and shown in report.md / report.html.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..errors import ConfigError
from .lexicon import NRC_LABELS
from .minilm import GOEMOTIONS_LABELS
from emocheck.study import EMBEDDED

AIM = 0.9
#: dataset emotion -> GoEmotions label where they differ (the study's labels: apology reads as remorse)
EMOTION_LABEL = {e: d.label for e, d in EMBEDDED.items() if d.label and d.label != e}
NEUTRAL = "neutral"


@dataclass(frozen=True)
class Row:
    instrument: str
    column: str
    target: str
    direction: str = "greater"              # "greater": the target scores higher; "less": lower
    controls: tuple[str, ...] | None = None  # None: neutral, every other emotion, all others pooled


def validity_rows(emotions) -> list[Row]:
    """The instrument rows for a prompt set with these emotions (neutral included or not)."""
    emos = [e for e in emotions if e != NEUTRAL]
    rows: list[Row] = []
    for e in emos:
        lab = EMOTION_LABEL.get(e, e)
        if lab in GOEMOTIONS_LABELS:
            rows.append(Row("emotion", lab, e))
            rows.append(Row("emotion-margin", lab, e))
    for e in emos:
        if e in NRC_LABELS and e not in ("positive", "negative"):
            rows.append(Row("emotion-nrc", e, e))
    # polarity: gratitude above every other group; anger and apology below neutral and gratitude (not
    # below each other: both are negative, so that contrast says nothing about a valence instrument)
    neg_controls = tuple(c for c in (NEUTRAL, "gratitude") if c == NEUTRAL or c in emos)
    for inst in ("sentiment", "sentiment-vader", "emotion-nrc"):
        if "gratitude" in emos:
            rows.append(Row(inst, "score", "gratitude", "greater"))
        for e in ("anger", "apology"):
            if e in emos:
                rows.append(Row(inst, "score", e, "less", neg_controls))
    polite = [e for e in ("gratitude", "apology") if e in emos]
    for e in polite:
        rows.append(Row("politeness", "score", e, "greater", (NEUTRAL, "anger") if "anger" in emos else (NEUTRAL,)))
    if "anger" in emos:
        rows.append(Row("politeness", "score", "anger", "less"))
    return rows


def auc_delong(pos, neg, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(AUC, standard error, low, high): DeLong's variance, normal interval clipped to [0, 1]."""
    pos = np.asarray(pos, float)
    neg = np.asarray(neg, float)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ConfigError(f"an AUC interval needs at least 2 texts per group (got {m} and {n})")
    cmp = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = cmp.mean(1), cmp.mean(0)
    auc = float(v10.mean())
    se = float(np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n))
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    return auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se)


def _contrasts(row: Row, emos: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    others = [e for e in emos if e not in (NEUTRAL, row.target)]
    if row.controls is not None:
        return [(f"vs {c}", (c,)) for c in row.controls if c in emos]
    out = [(f"vs {NEUTRAL}", (NEUTRAL,))] if NEUTRAL in emos else []
    out += [(f"vs {o}", (o,)) for o in others]
    if len(others) > 1:
        out.append(("vs other emotions", tuple(others)))
    return out


def instrument_validity(prompts: pd.DataFrame, evaluators: dict | None = None, instruments=None,
                        confidence: float = 0.95) -> pd.DataFrame:
    """The validity table of `prompts` (columns `text`, `emotion`); `evaluators`: name -> Evaluator
    (default get_evaluator); `instruments`: restrict to these instrument names."""
    from .registry import get_evaluator

    for col in ("text", "emotion"):
        if col not in prompts:
            raise ConfigError(f"instrument_validity needs a `{col}` column (got {list(prompts.columns)})")
    emos = sorted(prompts["emotion"].unique())
    rows = [r for r in validity_rows(emos) if instruments is None or r.instrument in instruments]
    texts = prompts["text"].astype(str).tolist()
    group = prompts["emotion"].to_numpy()
    scored: dict[str, pd.DataFrame] = {}
    out = []
    for r in rows:
        if r.instrument not in scored:
            ev = (evaluators or {}).get(r.instrument) or get_evaluator(r.instrument)
            scored[r.instrument] = ev.score(texts)
        df = scored[r.instrument]
        s = df[r.column].to_numpy(dtype=float) * (1.0 if r.direction == "greater" else -1.0)
        for name, controls in _contrasts(r, emos):
            t, c = s[group == r.target], s[np.isin(group, controls)]
            auc, se, lo, hi = auc_delong(t, c, confidence)
            out.append({"instrument": r.instrument, "model_id": df.attrs.get("model_id", ""), "column": r.column,
                        "target": r.target, "direction": r.direction, "contrast": name,
                        "kind": "vs_neutral" if controls == (NEUTRAL,) else "specificity",
                        "n_target": int(len(t)), "n_control": int(len(c)), "auc": auc, "se": se,
                        "ci_low": lo, "ci_high": hi, "ci_method": f"DeLong {confidence:.0%}",
                        "meets_aim": bool(auc >= AIM), "ci_low_meets_aim": bool(lo >= AIM)})
    return pd.DataFrame(out)


def validity_markdown(table: pd.DataFrame) -> list[str]:
    """The report.md section (one line per instrument column and target; contrasts as columns)."""
    if table is None or table.empty:
        return []
    lines = ["## Instrument validity", "",
             f"AUC of each instrument on this session's prompts (1 = perfect, 0.5 = chance), DeLong 95% interval; "
             f"aim {AIM}. `instrument_validity.csv` has every number and the instruments' model ids.", "",
             "| instrument | score | target | direction | contrast | n | AUC [95% CI] | meets aim |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.instrument} | {r.column} | {r.target} | {'higher' if r.direction == 'greater' else 'lower'} | "
                     f"{r.contrast} | {r.n_target} vs {r.n_control} | {r.auc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
                     f"{'yes' if r.meets_aim else '**no**'} |")
    return lines + [""]


# ------------------------------------------------------------------ the session's validity file
VALIDITY_FILE = "instrument_validity.csv"


def write_validity(statistics_dir, table: pd.DataFrame, meta: dict | None = None):
    """Write the table as <statistics>/instrument_validity.csv by the storage rule (checksummed)."""
    from pathlib import Path

    from ..storage import write_table_artifact

    path = Path(statistics_dir) / VALIDITY_FILE
    write_table_artifact(path, table, dict(meta or {}))
    return path


def read_session_validity(statistics_dir, started: float) -> pd.DataFrame | None:
    """The validity table if this session wrote one (last written at or after `started`), else None;
    an earlier session's table is not shown (the report describes this session only)."""
    from pathlib import Path

    from ..storage import read_table_artifact

    path = Path(statistics_dir) / VALIDITY_FILE
    if not path.is_file() or path.stat().st_mtime < started:
        return None
    return read_table_artifact(path, what="instrument validity table")


def validity_html(table: pd.DataFrame | None) -> str:
    """The report.html section: one row per instrument column, target and contrast."""
    import html

    if table is None or table.empty:
        return ""
    e = lambda x: html.escape(str(x), quote=True)  # noqa: E731
    rows = "".join(
        f"<tr><td>{e(r.instrument)}</td><td>{e(r.column)}</td><td>{e(r.target)}</td>"
        f"<td>{'higher' if r.direction == 'greater' else 'lower'}</td><td>{e(r.contrast)}</td>"
        f"<td>{r.n_target} vs {r.n_control}</td><td data-sort='{r.auc:.4f}'>{r.auc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]</td>"
        f"<td class='{'v-supported' if r.meets_aim else 'v-not-supported'}'>{'yes' if r.meets_aim else 'no'}</td></tr>"
        for r in table.itertuples(index=False))
    return ("<h2 id='instrument-validity'>Instrument validity</h2>"
            f"<p>AUC of each instrument on this session's prompts (1 = perfect, 0.5 = chance), DeLong 95% interval; "
            f"aim {AIM}. Every number and the instruments' model ids: <code>{VALIDITY_FILE}</code>.</p>"
            "<table class='kv' id='validity'><tr><th>instrument</th><th>score</th><th>target</th><th>direction</th>"
            f"<th>contrast</th><th>n</th><th>AUC [95% CI]</th><th>meets aim</th></tr>{rows}</table>")
