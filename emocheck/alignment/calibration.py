"""How often each Q2 overlap claim comes out supported on simulated model pairs (plain functions).

Each simulated data set goes the way the real pair does: `analyse_pair` (reducer on training rows,
ridge map on training neutral rows, subspaces of held-out rows, the nulls), then for each null the
family of emotion x contrast claims at k = k_claim is judged as the plugin judges it:
`stats.compare_to_null(observed, null draws at k, min_d, alpha)`, Holm over the family's members on
both p-values, `stats.verdict`.

    from emocheck.alignment.calibration import simulate_overlap_claims
    simulate_overlap_claims(["shuffled_pairing"], n_sets=20, spectrum="flat")

The data come from `synthetic.shared_content_pair`: two models that share prompt content only
(emotion_shift = 0: random emotion labels, no emotion structure anywhere) or a planted emotion.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from emocheck import stats
from emocheck.alignment.analysis import AlignConfig, analyse_pair
from emocheck.alignment.synthetic import shared_content_pair

# The design of the verdict review's simulation: 40-dim shared content, 210 prompts per group, PCA 64.
REVIEW_DESIGN = dict(n_per_group=210, latent=40, d_a=96, d_b=128, noise=0.5)
REVIEW_CONFIG = AlignConfig(p=64, k_max=2, k_claim=2, permutations=199, pairing_draws=199, random_draws=199,
                            group_draws=199)
# A small version of it (the same structure, about half a second per data set) for the default suite.
SMALL_DESIGN = dict(n_per_group=120, latent=16, d_a=32, d_b=40, noise=0.5)
SMALL_CONFIG = AlignConfig(p=24, k_max=2, k_claim=2, permutations=199, pairing_draws=199, random_draws=19,
                           group_draws=199)


def judge_family(observed: list[float], nulls: list[np.ndarray], *, min_d: float = 1.0, alpha: float = 0.05,
                 correction: str = "holm") -> np.ndarray:
    """Verdicts (True = supported) of one family of 'greater' null comparisons, corrected together."""
    comps = [stats.compare_to_null(o, z, alternative="greater", min_d=min_d, alpha=alpha)
             for o, z in zip(observed, nulls)]
    p = stats.adjust_pvalues([c.p_value for c in comps], correction)
    pm = stats.adjust_pvalues([c.p_min_effect for c in comps], correction)
    return np.array([stats.verdict(c, a, b) == "supported" for c, a, b in zip(comps, p, pm)])


def simulate_overlap_claims(null_names, *, n_sets: int, spectrum: str = "flat", design: dict | None = None,
                            cfg: AlignConfig | None = None, emotion_shift: float = 0.0, shared_emotion: bool = True,
                            min_d: float | dict = 1.0, alpha: float = 0.05, seed: int = 0) -> dict[str, dict]:
    """Per null name: the share of claims supported ('claims'), of data sets with at least one claim
    supported ('families'), and the counts behind them. min_d: one for all, or {null name: min_d}."""
    from threadpoolctl import threadpool_limits

    min_ds = min_d if isinstance(min_d, dict) else {name: min_d for name in null_names}
    design = {**SMALL_DESIGN, **(design or {})}
    cfg = cfg or SMALL_CONFIG
    k = cfg.k_claim
    rows = {name: [] for name in null_names}
    with threadpool_limits(limits=1, user_api="blas"):
        for s in range(n_sets):
            data = shared_content_pair(spectrum=spectrum, emotion_shift=emotion_shift, shared_emotion=shared_emotion,
                                       seed=seed + s, **design)
            a = analyse_pair(data.xa, data.xb, data.labels, data.train, data.emotions,
                             replace(cfg, seed=seed + s), with_transfer=False, null_names=tuple(null_names))
            o = a.overlaps[a.overlaps.k == k]
            for name in null_names:
                nulls = [a.nulls[f"{r.emotion}/{r.contrast}/{name}"][:, k - 1] for r in o.itertuples()]
                rows[name].append(judge_family(list(o.observed), nulls, min_d=min_ds[name], alpha=alpha))
    out = {}
    for name in null_names:
        v = np.array(rows[name])
        out[name] = {"claims": float(v.mean()), "families": float(v.any(axis=1).mean()),
                     "n_sets": n_sets, "family_size": int(v.shape[1]),
                     "supported_claims": int(v.sum()), "supported_families": int(v.any(axis=1).sum()),
                     "min_d": min_ds[name]}
    return out
