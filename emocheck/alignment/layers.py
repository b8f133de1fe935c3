"""The layer pair: every (source layer, target layer) compared, chosen on TRAINING prompts only.

Models differ in depth (18 and 30 layers), so layers are described by relative depth (layer+1)/n. The
search fits, for every pair, the reducers and map on training rows and scores the pair by the mean
over emotions of the overlap at k_claim of the emotion-specific (vs_other) subspaces computed from
TRAINING rows. Under fit_on='neutral' no emotion prompt entered the map, but the score is still
optimistic for the chosen pair (it is the maximum of many); the chosen pair is therefore judged on
held-out prompts, and the table also carries each pair's held-out overlap calibrated against
`heat_permutations` label-permuted draws, so the optimism (held-out best vs held-out at the chosen
pair) can be read off.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from emocheck.progress import tqdm

from emocheck.alignment.analysis import AlignConfig, fit_mask, single_blas_thread
from emocheck.alignment.maps import fit_map
from emocheck.alignment.nulls import permuted_label_sets
from emocheck.alignment.overlap import chance_overlap, overlap_curves, subspace_overlap
from emocheck.alignment.paired import PairedActivations, depth_matched, relative_depth
from emocheck.alignment.reduce import fit_reducer
from emocheck.alignment.subspaces import contrast_subspace, difference_subspaces, reference_labels

SEARCH_CONTRAST = "vs_other"


def _layer_view(x, labels, train, emotions, cfg, perm_sets):
    red = fit_reducer(x[train], cfg.p, drop_outliers=cfg.drop_outliers)
    z = red.transform(x)
    held = ~train
    k = cfg.k_claim
    view = {"reducer": red, "z": z, "train_sub": {}, "held_sub": {}, "perm_sub": {}}
    for e in emotions:
        view["train_sub"][e] = contrast_subspace(z[train], labels[train], e, SEARCH_CONTRAST, emotions, k)
        view["held_sub"][e] = contrast_subspace(z[held], labels[held], e, SEARCH_CONTRAST, emotions, k)
        if perm_sets is not None:
            ref = reference_labels(e, SEARCH_CONTRAST, emotions)
            zh = z[held]
            rows_e = np.stack([np.flatnonzero(p == e) for p in perm_sets[e]])
            rows_r = np.stack([np.flatnonzero(np.isin(p, ref)) for p in perm_sets[e]])
            view["perm_sub"][e] = difference_subspaces(zh, rows_e, rows_r, k)
    return view


@single_blas_thread
def search_layer_pairs(paired: PairedActivations, cfg: AlignConfig, progress: bool = True) -> pd.DataFrame:
    labels, train, emotions = paired.labels, paired.train, paired.emotions
    held = ~train
    perm_sets = {e: permuted_label_sets(labels[held], e, SEARCH_CONTRAST, emotions, cfg.heat_permutations,
                                        cfg.seed + 11 + i) for i, e in enumerate(emotions)}
    src_layers, tgt_layers = paired.source.layers, paired.target.layers
    fit = fit_mask(labels, train, cfg.fit_on)
    bar = tqdm(total=len(src_layers) + len(tgt_layers) + len(src_layers) * len(tgt_layers),
               desc=f"alignment layers {paired.source.model}->{paired.target.model}", disable=not progress, leave=False)
    tgt_views = {}
    for lt in tgt_layers:
        tgt_views[lt] = _layer_view(paired.x("target", lt), labels, train, emotions, cfg, None)
        bar.update()
    rows = []
    chance = float(chance_overlap(cfg.k_claim, cfg.p))
    for ls in src_layers:
        sv = _layer_view(paired.x("source", ls), labels, train, emotions, cfg, perm_sets)
        bar.update()
        for lt in tgt_layers:
            tv = tgt_views[lt]
            m = fit_map(cfg.map_kind, sv["z"][fit], tv["z"][fit], seed=cfg.seed)
            train_o = np.mean([subspace_overlap(m.source(sv["train_sub"][e]), m.target(tv["train_sub"][e])) for e in emotions])
            held_o, held_score = [], []
            for e in emotions:
                target = m.target(tv["held_sub"][e])
                o = subspace_overlap(m.source(sv["held_sub"][e]), target)
                null = overlap_curves(sv["perm_sub"][e] @ m.source_matrix, target)[:, -1]
                held_o.append(o)
                held_score.append((o - null.mean()) / max(1 - null.mean(), 1e-12))
            rows.append({"source_layer": ls, "target_layer": lt,
                         "source_depth": relative_depth(ls, len(src_layers)),
                         "target_depth": relative_depth(lt, len(tgt_layers)),
                         "depth_matched": depth_matched(ls, len(src_layers), len(tgt_layers)) == lt,
                         "train_overlap": train_o, "held_out_overlap": float(np.mean(held_o)),
                         "held_out_score": float(np.mean(held_score)), "chance_k_over_d": chance,
                         "map_fit_error": m.info.get("fit_error", np.nan), "k": cfg.k_claim})
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def choose_pair(table: pd.DataFrame) -> tuple[int, int]:
    """The pair with the largest TRAINING overlap (ties: the first, i.e. the shallowest)."""
    best = table.loc[table["train_overlap"].idxmax()]
    return int(best["source_layer"]), int(best["target_layer"])
