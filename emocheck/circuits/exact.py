"""Exact activation patching of components at the last token: the check on attribution patching.

`exact_effects` patches each listed component ALONE to its source value (one row per component,
batched over the cached prefix) and returns the metric change; `validate` compares attribution with
it over a sample of components and prompts (Spearman and Pearson correlation, sign agreement, and
the components where the two disagree most, which is where attribution fails).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats as st

from emocheck.circuits.components import Activations, LastTokenRun, split_mask


def exact_effects(loaded, text: str, source: Activations, indices, *, metric: str = "projection",
                  direction=None, token_ids=None, run: LastTokenRun | None = None,
                  rows_per_pass: int = 128) -> np.ndarray:
    """Metric change when each component in `indices` (all_components order) alone takes its source value."""
    run = run or LastTokenRun(loaded, text)
    g = run.g
    n_comp = g.n_layers * (g.n_heads + 1)
    base = float(run.run(direction=direction, token_ids=token_ids)[metric][0])
    idx = list(indices)
    out = []
    for start in range(0, len(idx), rows_per_pass):
        chunk = idx[start:start + rows_per_pass]
        mask = torch.zeros(len(chunk), n_comp, dtype=torch.bool)
        mask[torch.arange(len(chunk)), torch.as_tensor(chunk)] = True
        out.append(patched_metric(run, mask, source, metric=metric, direction=direction, token_ids=token_ids) - base)
    return np.concatenate(out) if out else np.zeros(0)


def patched_metric(run: LastTokenRun, mask: torch.Tensor, source: Activations, *, metric="projection",
                   direction=None, token_ids=None) -> np.ndarray:
    """[R] metric with the components of mask[r] ([R, n_components] bool) replaced by their source values."""
    g = run.g
    head_mask, mlp_mask = split_mask(mask, g.n_layers, g.n_heads)
    res = run.run(mask.shape[0], head_mask=head_mask, head_vals=source.z.reshape(g.n_layers, g.n_heads, g.head_dim),
                  mlp_mask=mlp_mask, mlp_vals=source.mlp.reshape(g.n_layers, g.d_model),
                  direction=direction, token_ids=token_ids)
    return res[metric].detach().double().cpu().numpy()


def validate(table: pd.DataFrame, worst: int = 10) -> dict:
    """Agreement of `attribution` with `exact` in a table with those columns (one row per component x prompt),
    also per component kind, and the rows where they differ most."""
    def summary(df):
        if len(df) < 3:
            return {"n": len(df)}
        return {"n": int(len(df)), "spearman": float(st.spearmanr(df.attribution, df.exact).statistic),
                "pearson": float(st.pearsonr(df.attribution, df.exact).statistic),
                "sign_agreement": float(np.mean(np.sign(df.attribution) == np.sign(df.exact))),
                "mean_abs_error": float(np.mean(np.abs(df.attribution - df.exact)))}

    means = table.groupby("component")[["attribution", "exact"]].mean()
    out = {"all": summary(table), "per_component_mean": summary(means)}
    if "kind" in table:
        for kind, df in table.groupby("kind"):
            out[str(kind)] = summary(df)
    err = (table.attribution - table.exact).abs()
    out["worst"] = table.assign(abs_error=err).nlargest(worst, "abs_error").to_dict("records")
    return out
