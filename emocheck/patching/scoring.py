"""Per-prompt evidence for phase-5 claims: raw paired differences, fluency, and sensitivity columns.

**Verdicts are judged on the raw paired differences** (treated - control, per prompt). The earlier
design regressed the score difference D on the fluency difference F and judged D - b1 F with n - 1
df; that ignores the uncertainty of b1 (type-I error 0.13-0.35 at nominal 0.05 when mean(F)/sd(F) is
1-4, see tests/test_patching_scoring.py), extrapolates to F = 0 where there are no data, and removes
part of a true effect because NLL under the unpatched model is post-treatment. Fluency is instead a
claim of its own (:func:`noninferiority`), and a correctly specified ANCOVA (statsmodels OLS, the
intercept's SE with n - 2 df, reported only when F = 0 lies inside the observed fluency range) stands
beside each claim as a sensitivity metric, never as the verdict.

Controls drawn fresh per prompt (random:e, permuted:e, randsub:e) give one control value per prompt,
so the paired differences are independent and carry the direction-to-direction variance: the paired
t-test on them is the exact test that the treated direction beats the AVERAGE control direction
(population-mean null). It is not a test that the treated direction lies outside the controls'
distribution (the exchangeable null: the treated vector as one more draw), which needs the
direction-to-direction variance tau^2 apart from the prompt noise: the crossed model of
emocheck.stats.directions (record(control=[n, K]), each direction on two or more prompts). With one
draw per prompt tau^2 is not identifiable, so phase 5's claims state "the average random direction";
under the exchangeable null this rule supports 7-35% of ordinary draws (tests/test_patching_scoring.py).

Topic heterogeneity: the judged prompts come from ~20 topics (2-3 each); each claim also reports a
cluster-robust (by topic) p-value of the mean difference with G - 1 df.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps


def paired_d(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2 or x.std(ddof=1) == 0:
        return float("nan")
    return float(x.mean() / x.std(ddof=1))


def _wide(samples: pd.DataFrame, conditions: list[str], column: str) -> pd.DataFrame:
    sub = samples[samples["condition"].isin(conditions)]
    return sub.pivot_table(index="sample_id", columns="condition", values=column, aggfunc="first",
                           dropna=False).reindex(columns=conditions)


def ancova_at_equal_fluency(diff, fdiff) -> dict:
    """OLS diff = b0 + b1 * fdiff (statsmodels); b0 is the difference at equal fluency.

    Reported only when fdiff = 0 lies inside the observed range (no extrapolation); SE from the OLS
    fit (n - 2 df). A sensitivity column, never the verdict.
    """
    import statsmodels.api as sm

    diff, fdiff = np.asarray(diff, float), np.asarray(fdiff, float)
    out = {"ancova_slope": math.nan, "ancova_mean_at_equal_fluency": math.nan, "ancova_se": math.nan,
           "ancova_p_two_sided": math.nan, "ancova_in_range": False}
    if diff.size < 4 or np.std(fdiff) < 1e-12:
        return out
    fit = sm.OLS(diff, sm.add_constant(fdiff)).fit()
    out["ancova_slope"] = float(fit.params[1])
    if fdiff.min() <= 0 <= fdiff.max():
        out.update(ancova_mean_at_equal_fluency=float(fit.params[0]), ancova_se=float(fit.bse[0]),
                   ancova_p_two_sided=float(fit.pvalues[0]), ancova_in_range=True)
    return out


def topic_cluster(diff, topics) -> dict:
    """Mean difference with a topic-cluster-robust SE (statsmodels, G - 1 df); two-sided p."""
    import statsmodels.api as sm

    diff = np.asarray(diff, float)
    topics = pd.Series(list(topics)).astype(str)
    g = topics.nunique()
    out = {"n_topics": int(g), "topic_cluster_p_two_sided": math.nan, "topic_sd_of_means": math.nan}
    if g < 3 or diff.size < 4:
        return out
    codes = pd.factorize(topics)[0]
    fit = sm.OLS(diff, np.ones((diff.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": codes},
                                                     use_t=True)
    t = float(fit.params[0] / fit.bse[0]) if fit.bse[0] > 0 else math.nan
    out["topic_cluster_p_two_sided"] = float(2 * sps.t.sf(abs(t), g - 1)) if np.isfinite(t) else math.nan
    out["topic_sd_of_means"] = float(pd.Series(diff).groupby(codes).mean().std(ddof=1))
    return out


def paired_scores(samples: pd.DataFrame, treated: str, control: str, column: str) -> dict:
    """Per-prompt treated and control values of `column`, paired by prompt, with metrics.

    Prompts where either side has no score (empty continuation -> NaN) are dropped and counted.
    Returns {'treated', 'control', 'sample_ids', 'metrics'}.
    """
    conds = [treated, control]
    s = _wide(samples, conds, column).astype(float)
    f = _wide(samples, conds, "nll").astype(float).reindex(s.index)
    r = _wide(samples, conds, "rep3").astype(float).reindex(s.index)
    dist = _wide(samples, conds, "distinct2").astype(float).reindex(s.index)
    rows_of = samples.groupby("condition")["sample_id"].agg(set)
    has_both = rows_of.get(treated, set()) & rows_of.get(control, set())
    present = [i for i in s.index if i in has_both]
    s, f, r, dist = (x.reindex(present) for x in (s, f, r, dist))
    empty_t, empty_c = int(s[treated].isna().sum()), int(s[control].isna().sum())
    ok = np.isfinite(s.to_numpy()).all(1) & np.isfinite(f.to_numpy()).all(1)
    ids = list(s.index[ok])
    t, c = s.loc[ids, treated].to_numpy(float), s.loc[ids, control].to_numpy(float)
    ft, fc = f.loc[ids, treated].to_numpy(float), f.loc[ids, control].to_numpy(float)
    diff, fdiff = t - c, ft - fc
    metrics = {
        "n": len(ids), "n_paired_prompts": int(len(present)), "n_empty_treated": empty_t, "n_empty_control": empty_c,
        "n_dropped": int(len(present) - len(ids)),
        "raw_mean_diff": float(np.mean(diff)) if len(ids) else math.nan, "raw_d": paired_d(diff),
        # sign shares of the per-prompt differences: descriptive, NOT a permutation p (each control
        # draw meets the treated direction on one prompt only, so prompt noise decides the sign; the
        # share stays near 0.5 whether or not the treated direction is special)
        "share_treated_above_control": float(np.mean(diff > 0)) if len(ids) else math.nan,
        "share_treated_below_control": float(np.mean(diff < 0)) if len(ids) else math.nan,
        "fluency_nll_diff": float(np.mean(fdiff)) if len(ids) else math.nan,
        "fluency_ppl_ratio": float(np.exp(np.mean(fdiff))) if len(ids) else math.nan,
        "rep3_diff": float(np.nanmean(r.loc[ids, treated].to_numpy(float) - r.loc[ids, control].to_numpy(float)))
        if len(ids) else math.nan,
        "distinct2_diff": float(np.nanmean(dist.loc[ids, treated].to_numpy(float) - dist.loc[ids, control].to_numpy(float)))
        if len(ids) else math.nan,
    }
    metrics.update(ancova_at_equal_fluency(diff, fdiff))
    if "topic" in samples:
        topic_of = samples.drop_duplicates("sample_id").set_index("sample_id")["topic"]
        metrics.update(topic_cluster(diff, topic_of.reindex(ids).to_numpy()))
    return {"treated": t, "control": c, "sample_ids": ids, "metrics": metrics}


def noninferiority(samples: pd.DataFrame, treated: str, control: str, column: str, margin: float) -> dict:
    """Fluency non-inferiority: H1 mean(treated - control) < margin, on `column` (nll or rep3).

    Returns treated values shifted down by `margin` so that a paired claim with alternative="less"
    and min_d=0 tests exactly that hypothesis on the raw paired differences.
    """
    conds = [treated, control]
    w = _wide(samples, conds, column).astype(float).dropna()
    t, c = w[treated].to_numpy(float), w[control].to_numpy(float)
    diff = t - c
    metrics = {"n": int(len(w)), "margin": float(margin), "mean_diff": float(np.mean(diff)) if len(w) else math.nan,
               "d_of_diff_minus_margin": paired_d(diff - margin), "column": column}
    return {"treated": t - margin, "control": c, "sample_ids": list(w.index), "metrics": metrics}
