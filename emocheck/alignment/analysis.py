"""Judge one layer pair: reduce, fit the map on training rows, compare held-out subspaces, calibrate.

Plain arrays in, tables out, so the planted-ground-truth tests run exactly the code the models do:

    reducers   fitted on ALL training rows of each model (label-free: standardise, optional outlier
               removal, PCA to p)
    map        fitted on the training rows named by `fit_on`: 'neutral' (the seed: neutral prompts
               only, so no emotion prompt ever enters the map) or 'all' (every training prompt)
    subspaces  from HELD-OUT rows of both models (the map never saw them), k = 1..k_max
    overlap    source(U_A) against target(U_B) in the map's common space; 'before' only when both
               models share one raw space (equal widths), with no map at all
    nulls      random subspaces (analytic k/c + simulated), label-permuted source subspaces through
               the same map, maps fitted on shuffled pairings; each gives a calibrated score and p
    transfer   the source's emotion-specific direction (training rows) mapped into the target,
               scored on the target's held-out rows against the other emotions (AUC, d), beside the
               source's own held-out AUC and a null of mapped random directions
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from emocheck import stats
from emocheck.alignment.maps import LinearMap, fit_map
from emocheck.alignment.nulls import (calibrate, label_permuted_null, random_group_null, random_subspace_null,
                                      shuffled_pairing_null)
from emocheck.alignment.overlap import chance_overlap, overlap_curve
from emocheck.alignment.reduce import Reducer, fit_reducer
from emocheck.alignment.subspaces import CONTRASTS, contrast_subspace
from emocheck.alignment.transfer import groups, mean_direction, project, random_direction_aucs, transfer_scores
from emocheck.errors import ConfigError

FIT_ON = ("neutral", "all")
NULL_NAMES = ("random", "label_permuted", "shuffled_pairing", "random_groups")


def single_blas_thread(fn):
    """Run fn with one BLAS thread. Phase 4 is thousands of small SVDs/QRs; a multi-threaded BLAS
    spends longer synchronising than computing on them, and on a shared machine its spinning
    threads made a 441 x 64 SVD about 100x slower (1.56 s against 0.016 s, measured in one process)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class AlignConfig:
    p: int = 64                  # reduced width of both models (fixed, reported)
    k_max: int = 10
    k_claim: int = 2             # the k the claims are judged at (the seed's expectation)
    map_kind: str = "ridge"
    fit_on: str = "neutral"
    drop_outliers: int = 0
    permutations: int = 1000     # label-permuted null draws for the judged pair
    group_draws: int = 1000      # random prompt groups (both models) for the judged pair
    pairing_draws: int = 200     # shuffled-pairing maps
    random_draws: int = 1000     # random subspaces / random mapped directions
    heat_permutations: int = 50  # label-permuted draws per layer pair in the heat map
    bootstrap: int = 500         # prompt bootstrap for k selection
    seed: int = 0
    position: str = "last"
    site: str = "hook_resid_post"

    def __post_init__(self):
        if self.fit_on not in FIT_ON:
            raise ConfigError(f"fit_on must be one of {FIT_ON}, got {self.fit_on!r}")
        if not 1 <= self.k_claim <= self.k_max:
            raise ConfigError(f"k_claim={self.k_claim} must be in 1..k_max={self.k_max}")

    def to_dict(self) -> dict:
        return asdict(self)


def fit_mask(labels: np.ndarray, train: np.ndarray, fit_on: str) -> np.ndarray:
    return train & (np.asarray(labels) == "neutral") if fit_on == "neutral" else train.copy()


@dataclass
class PairAnalysis:
    overlaps: pd.DataFrame          # one row per emotion x contrast x k
    transfer: pd.DataFrame          # one row per emotion
    transfer_scores: pd.DataFrame   # per held-out target prompt and emotion: mapped-direction score
    nulls: dict[str, np.ndarray]    # '<emotion>/<contrast>/<null>' -> draws
    reducers: tuple[Reducer, Reducer]
    fitted: LinearMap
    z: tuple[np.ndarray, np.ndarray] = field(repr=False, default=None)


@single_blas_thread
def analyse_pair(xs: np.ndarray, xt: np.ndarray, labels: np.ndarray, train: np.ndarray, emotions: list[str],
                 cfg: AlignConfig, *, ids=None, reducers: tuple[Reducer, Reducer] | None = None,
                 contrasts=CONTRASTS, with_nulls: bool = True, null_names=NULL_NAMES,
                 with_transfer: bool = True) -> PairAnalysis:
    unknown = sorted(set(null_names) - set(NULL_NAMES))
    if unknown:
        raise ConfigError(f"unknown null(s) {unknown}; one of {', '.join(NULL_NAMES)}")
    labels, train = np.asarray(labels), np.asarray(train, dtype=bool)
    if reducers is None:
        reducers = (fit_reducer(xs[train], cfg.p, drop_outliers=cfg.drop_outliers),
                    fit_reducer(xt[train], cfg.p, drop_outliers=cfg.drop_outliers))
    zs, zt = reducers[0].transform(xs), reducers[1].transform(xt)
    fit = fit_mask(labels, train, cfg.fit_on)
    fitted = fit_map(cfg.map_kind, zs[fit], zt[fit], seed=cfg.seed)
    held = ~train
    hl = labels[held]
    ks = np.arange(1, cfg.k_max + 1)
    chance = chance_overlap(ks, fitted.width)
    rows, nulls = [], {}
    for ei, emotion in enumerate(emotions):
        for ci, contrast in enumerate(contrasts):
            seed = cfg.seed + 1000 * ei + 100 * ci
            ua = contrast_subspace(zs[held], hl, emotion, contrast, emotions, cfg.k_max)
            ub = contrast_subspace(zt[held], hl, emotion, contrast, emotions, cfg.k_max)
            observed = overlap_curve(fitted.source(ua), fitted.target(ub), cfg.k_max)
            before = np.full(cfg.k_max, np.nan)
            if xs.shape[1] == xt.shape[1]:
                before = overlap_curve(contrast_subspace(xs[held], hl, emotion, contrast, emotions, cfg.k_max),
                                       contrast_subspace(xt[held], hl, emotion, contrast, emotions, cfg.k_max))
            rec = {"emotion": np.repeat(emotion, cfg.k_max), "contrast": contrast, "k": ks, "observed": observed,
                   "before": before, "chance_k_over_d": chance, "common_width": fitted.width}
            if with_nulls:
                from emocheck.alignment.overlap import orthonormal_rows

                target_basis = orthonormal_rows(fitted.target(ub))
                make = {
                    "random": lambda: random_subspace_null(target_basis, cfg.random_draws, seed + 1),
                    "label_permuted": lambda: label_permuted_null(fitted, zs[held], zt[held], hl, emotion, contrast,
                                                                  emotions, cfg.k_max, cfg.permutations, seed + 2),
                    "shuffled_pairing": lambda: shuffled_pairing_null(fitted, zs[fit], zt[fit], ua, ub,
                                                                      cfg.pairing_draws, seed + 3),
                    "random_groups": lambda: random_group_null(fitted, zs[held], zt[held], hl, emotion, contrast,
                                                               emotions, cfg.k_max, cfg.group_draws, seed + 4),
                }
                for name in NULL_NAMES:
                    if name not in null_names:
                        continue
                    d = make[name]()
                    nulls[f"{emotion}/{contrast}/{name}"] = d
                    cal = calibrate(observed, d)
                    rec.update({f"{name}_mean": cal["null_mean"], f"{name}_sd": cal["null_sd"],
                                f"{name}_low": cal["null_low"], f"{name}_high": cal["null_high"],
                                f"{name}_score": cal["score"], f"{name}_p": cal["p_value"]})
            rows.append(pd.DataFrame(rec))
    overlaps = pd.concat(rows, ignore_index=True)
    if with_transfer:
        transfer, scores = _transfer(fitted, zs, zt, labels, train, emotions, cfg, ids, with_nulls, nulls)
    else:
        transfer, scores = pd.DataFrame(), pd.DataFrame()
    return PairAnalysis(overlaps, transfer, scores, nulls, reducers, fitted, (zs, zt))


def _transfer(fitted, zs, zt, labels, train, emotions, cfg, ids, with_nulls, nulls):
    held = ~train
    hl = labels[held]
    ids = np.asarray(ids)[held] if ids is not None else np.flatnonzero(held).astype(str)
    rows, score_rows = [], []
    for ei, emotion in enumerate(emotions):
        t, c = groups(hl, emotion, "vs_other", emotions)
        d_src = mean_direction(zs[train], labels[train], emotion, "vs_other", emotions)
        d_tgt = mean_direction(zt[train], labels[train], emotion, "vs_other", emotions)
        mapped = transfer_scores(fitted, d_src, zt[held])
        own = project(zs[held], d_src)
        native = project(zt[held], d_tgt)
        rec = {"emotion": emotion, "mapped_auc": stats.auc(mapped[t], mapped[c]),
               "mapped_d": stats.cohens_d(mapped[t], mapped[c]),
               "source_own_auc": stats.auc(own[t], own[c]), "target_native_auc": stats.auc(native[t], native[c]),
               "n_treated": int(t.sum()), "n_control": int(c.sum())}
        if with_nulls:
            null = random_direction_aucs(fitted, zt[held], t, c, cfg.random_draws, cfg.seed + 7 + ei)
            nulls[f"{emotion}/transfer/random_direction_auc"] = null
            cal = calibrate(rec["mapped_auc"], null[:, None])
            rec.update(random_auc_mean=float(cal["null_mean"][0]), random_auc_high=float(cal["null_high"][0]),
                       random_auc_p=float(cal["p_value"][0]))
        rows.append(rec)
        keep = t | c
        score_rows.append(pd.DataFrame({"emotion": emotion, "prompt_id": ids[keep], "label": hl[keep],
                                        "treated": t[keep], "mapped_score": mapped[keep]}))
    return pd.DataFrame(rows), pd.concat(score_rows, ignore_index=True)
