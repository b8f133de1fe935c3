"""Phase 4 end to end for one model pair, from cached activations to files and claim inputs.

    from emocheck.alignment.run import run_alignment
    res = run_alignment("gemma3-270m", "smollm2-135m", get_profile("ci"))
    res.overlaps                 # per emotion x contrast x k: observed, chance k/d, nulls, calibrated scores
    res.transfer                 # per emotion: mapped-direction AUC / d, source's own AUC, random-direction null

The FIRST model is the reference (the target space: GPT-2 for the seed's hub models, Gemma 3 for the
embedded pair); the second is mapped into it. Outputs (atomic, under a lock, recomputed when the
activations or the configuration change) in results/<profile>/alignment/<reference>_vs_<other>/<position>/:
layer_pairs.csv, overlaps.csv, transfer.csv, transfer_scores.csv, variants.csv, k_selection.csv,
nulls.safetensors, map.safetensors, summary.json, layer_pairs.png, k_curves.png; and the k selection
of every pair in results/<profile>/statistics/k_selection.csv.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emocheck.alignment.analysis import FIT_ON, AlignConfig, analyse_pair, single_blas_thread
from emocheck.alignment.figures import plot_k_curves, plot_layer_heatmap
from emocheck.alignment.kselect import bootstrap_k
from emocheck.alignment.layers import choose_pair, search_layer_pairs
from emocheck.alignment.maps import MAP_KINDS
from emocheck.alignment.paired import paired_activations, relative_depth
from emocheck.alignment.subspaces import CONTRASTS
from emocheck.errors import ConfigError
from emocheck.profiles import Profile, results_dir
from emocheck.storage import (atomic_save_tensors, atomic_write_dataframe, atomic_write_sealed_json, file_lock,
                              read_sealed_json, sha256_bytes, sha256_file, stable_hash)
from emocheck import timing

log = logging.getLogger(__name__)

ALIGNMENT_CODE_VERSION = "alignment-v5"
OUTLIER_DIMS = 5
TABLES = ("layer_pairs", "overlaps", "transfer", "transfer_scores", "variants", "k_selection")


@dataclass
class AlignmentResult:
    reference: str
    other: str
    layers: dict            # source_layer, target_layer, depths
    config: AlignConfig
    tables: dict[str, pd.DataFrame]
    nulls: dict[str, np.ndarray]
    summary: dict
    out_dir: Path

    @property
    def overlaps(self) -> pd.DataFrame:
        return self.tables["overlaps"]

    @property
    def transfer(self) -> pd.DataFrame:
        return self.tables["transfer"]

    def overlap_row(self, emotion: str, contrast: str, k: int) -> pd.Series:
        o = self.overlaps
        hit = o[(o.emotion == emotion) & (o.contrast == contrast) & (o.k == k)]
        if hit.empty:
            raise ConfigError(f"no overlap for {emotion}/{contrast}/k={k}")
        return hit.iloc[0]

    def null(self, emotion: str, contrast: str, name: str, k: int | None = None) -> np.ndarray:
        draws = self.nulls[f"{emotion}/{contrast}/{name}"]
        return draws[:, k - 1] if k is not None else draws


#: The claims judged per model pair against each overlap null (emotions x contrasts); the pairs of a
#: profile (the first model against each other) share one family, so its size is this times the pairs.
def family_size(profile: Profile) -> int:
    """Claims in one Q2 overlap family under the profile (every pair of the profile together): the
    study's emotions x contrasts per pair."""
    from emocheck.study import study_for

    return len(study_for(profile).emotions) * len(CONTRASTS) * max(1, len(profile.models) - 1)


def alignment_config(profile: Profile, alpha: float = 0.05) -> AlignConfig:
    """The profile's configuration, with every judged null drawn often enough for its family to be
    supportable (emocheck.stats.nulls.null_draws_for): K + 1 >= 2 m / alpha, m = family_size(profile);
    the defaults (1000 draws, 200 shuffled-pairing maps) where they are already larger."""
    from emocheck.stats.nulls import null_draws_for

    base = AlignConfig(seed=profile.seed)
    k = null_draws_for(family_size(profile), alpha)
    return replace(base, permutations=max(base.permutations, k), pairing_draws=max(base.pairing_draws, k),
                   group_draws=max(base.group_draws, k), random_draws=max(base.random_draws, k))


def judged_null_draws(profile: Profile) -> int:
    """The fewest draws of any judged overlap null under the profile (the claims declare it)."""
    cfg = alignment_config(profile)
    return min(cfg.pairing_draws, cfg.group_draws)


def pair_name(reference: str, other: str) -> str:
    return f"{reference}_vs_{other}"


_MEMO: dict[str, AlignmentResult] = {}


@timing.timed("alignment", model=lambda reference, other, *a, **k: pair_name(reference, other))
def run_alignment(reference: str, other: str, profile: Profile, cfg: AlignConfig | None = None, *,
                  progress: bool = True) -> AlignmentResult:
    cfg = cfg or alignment_config(profile)
    if reference == other:
        raise ConfigError(f"alignment needs two different models, got {reference!r} twice")
    paired = paired_activations(other, reference, profile, position=cfg.position, site=cfg.site, progress=progress)
    key = stable_hash({"source": paired.source.activations.meta["key"], "target": paired.target.activations.meta["key"],
                       "config": cfg.to_dict(), "code": ALIGNMENT_CODE_VERSION}, 24)
    if key in _MEMO:
        return _MEMO[key]
    out = results_dir(profile, "alignment", pair_name(reference, other), cfg.position)
    with file_lock(out / "summary.json"):
        result = _load(out, key, reference, other, cfg)
        if result is None:
            result = _compute(paired, reference, other, profile, cfg, key, out, progress)
        else:   # statistics/k_selection.csv describes this session: a cached run writes its rows too
            _merge_statistics(profile, reference, other, cfg.position, result.tables["k_selection"])
    _MEMO[key] = result
    return result


@single_blas_thread
def _compute(paired, reference, other, profile, cfg, key, out, progress) -> AlignmentResult:
    labels, train, emotions = paired.labels, paired.train, paired.emotions
    ids = paired.prompts["id"].to_numpy()
    layer_table = search_layer_pairs(paired, cfg, progress=progress)
    ls, lt = choose_pair(layer_table)
    xs, xt = paired.x("source", ls), paired.x("target", lt)
    main = analyse_pair(xs, xt, labels, train, emotions, cfg, ids=ids)
    pair_cols = {"source": other, "target": reference, "source_layer": ls, "target_layer": lt}
    overlaps = main.overlaps.assign(**pair_cols)
    transfer = main.transfer.assign(**pair_cols)
    scores = main.transfer_scores.assign(**pair_cols)

    # Variants at the chosen pair: map fitted on neutral / all training prompts, outlier dims kept /
    # removed, three maps. Fewer null draws (these are reported, not claimed).
    variant_rows = []
    light = dict(permutations=min(cfg.permutations, 200), pairing_draws=min(cfg.pairing_draws, 50),
                 random_draws=min(cfg.random_draws, 200), group_draws=min(cfg.group_draws, 200))
    for fit_on in FIT_ON:
        for drop in (0, OUTLIER_DIMS):
            for kind in MAP_KINDS:
                vcfg = replace(cfg, fit_on=fit_on, drop_outliers=drop, map_kind=kind, **light)
                # the label-permuted null is neither claimed nor checked on the variants: not drawn
                v = analyse_pair(xs, xt, labels, train, emotions, vcfg, ids=ids,
                                 null_names=("random", "shuffled_pairing", "random_groups"))
                o = v.overlaps[v.overlaps.k == cfg.k_claim]
                for _, r in o.iterrows():
                    variant_rows.append({"fit_on": fit_on, "outlier_dims_removed": drop, "map": kind,
                                         "emotion": r.emotion, "contrast": r.contrast, "k": cfg.k_claim,
                                         "observed": r.observed, "chance_k_over_d": r.chance_k_over_d,
                                         "shuffled_pairing_score": r.shuffled_pairing_score,
                                         "shuffled_pairing_p": r.shuffled_pairing_p,
                                         "random_groups_mean": r.random_groups_mean,
                                         "random_groups_score": r.random_groups_score,
                                         "random_groups_p": r.random_groups_p,
                                         "source_outlier_dims": " ".join(map(str, v.reducers[0].dropped)),
                                         "target_outlier_dims": " ".join(map(str, v.reducers[1].dropped))})
                for _, r in v.transfer.iterrows():
                    variant_rows.append({"fit_on": fit_on, "outlier_dims_removed": drop, "map": kind,
                                         "emotion": r.emotion, "contrast": "transfer_auc", "k": np.nan,
                                         "observed": r.mapped_auc, "chance_k_over_d": 0.5,
                                         "random_direction_auc_p": r.random_auc_p, "shuffled_pairing_score": np.nan,
                                         "shuffled_pairing_p": np.nan, "random_groups_mean": np.nan,
                                         "random_groups_score": np.nan, "random_groups_p": np.nan,
                                         "source_outlier_dims": "", "target_outlier_dims": ""})
    variants = pd.DataFrame(variant_rows).assign(**pair_cols)

    held = ~train
    zs, zt = main.z
    kframes = []
    for ci, contrast in enumerate(CONTRASTS):
        means = {e: main.nulls[f"{e}/{contrast}/label_permuted"].mean(0) for e in emotions}
        draws = {e: main.nulls[f"{e}/{contrast}/label_permuted"] for e in emotions}
        kframes.append(bootstrap_k(main.fitted, zs[held], zt[held], labels[held], emotions, contrast, cfg.k_max, means,
                                   draws, cfg.bootstrap, cfg.seed + 31 + ci))
    chance = overlaps.drop_duplicates("k").set_index("k")["chance_k_over_d"]
    kselect = pd.concat(kframes, ignore_index=True).assign(**pair_cols, profile=profile.name)
    kselect["chance_k_over_d"] = kselect["k"].map(chance)

    layer_table = layer_table.assign(source=other, target=reference)
    tables = {"layer_pairs": layer_table, "overlaps": overlaps, "transfer": transfer, "transfer_scores": scores,
              "variants": variants, "k_selection": kselect}
    for name, df in tables.items():
        atomic_write_dataframe(out / f"{name}.csv", df)
    _merge_statistics(profile, reference, other, cfg.position, kselect)
    atomic_save_tensors(out / "nulls.safetensors", {k: torch.as_tensor(v) for k, v in main.nulls.items()})
    rs, rt = main.reducers
    atomic_save_tensors(out / "map.safetensors", {
        "source_matrix": torch.as_tensor(main.fitted.source_matrix), "target_matrix": torch.as_tensor(main.fitted.target_matrix),
        "source_components": torch.as_tensor(rs.components), "source_mean": torch.as_tensor(rs.mean),
        "source_scale": torch.as_tensor(rs.scale), "source_keep": torch.as_tensor(rs.keep),
        "target_components": torch.as_tensor(rt.components), "target_mean": torch.as_tensor(rt.mean),
        "target_scale": torch.as_tensor(rt.scale), "target_keep": torch.as_tensor(rt.keep)})
    title = f"{other} -> {reference} ({cfg.position}, {cfg.site}, map {cfg.map_kind} on {cfg.fit_on} prompts, p={cfg.p})"
    layer_table.attrs.update(source=other, target=reference)
    plot_layer_heatmap(layer_table, (ls, lt), title, out / "layer_pairs.png")
    plot_k_curves(overlaps, kselect, title, out / "k_curves.png")
    layers = {"source_layer": ls, "target_layer": lt,
              "source_depth": relative_depth(ls, len(paired.source.layers)),
              "target_depth": relative_depth(lt, len(paired.target.layers)),
              "source_n_layers": len(paired.source.layers), "target_n_layers": len(paired.target.layers)}
    chosen = layer_table[(layer_table.source_layer == ls) & (layer_table.target_layer == lt)].iloc[0]
    best_held = layer_table.loc[layer_table["held_out_score"].idxmax()]
    summary = {"key": key, "reference": reference, "other": other, "source": other, "target": reference,
               "config": cfg.to_dict(), "layers": layers, "map_info": _plain(main.fitted.info),
               "reducer_explained_held_out": [rs.explained(xs[held]), rt.explained(xt[held])],
               "search": {"chosen_train_overlap": float(chosen.train_overlap),
                          "chosen_held_out_score": float(chosen.held_out_score),
                          "best_held_out_score": float(best_held.held_out_score),
                          "best_held_out_pair": [int(best_held.source_layer), int(best_held.target_layer)],
                          "n_pairs": int(len(layer_table))},
               "files": {}}
    for path in sorted(out.iterdir()):
        if path.suffix in (".csv", ".safetensors", ".png"):
            summary["files"][path.name] = sha256_file(path)
    # last: it vouches for the files above, and its seal for itself (the chosen layers, the key)
    summary = atomic_write_sealed_json(out / "summary.json", summary)
    return AlignmentResult(reference, other, layers, cfg, tables, dict(main.nulls), summary, out)


def _plain(info: dict) -> dict:
    return json.loads(json.dumps(info, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _merge_statistics(profile, reference, other, position, kselect):
    """Replace this pair's (and position's) rows in statistics/k_selection.csv, keeping other pairs'."""
    path = results_dir(profile, "statistics") / "k_selection.csv"
    frames = [kselect.assign(position=position)]
    with file_lock(path):
        if path.is_file():
            try:
                old = pd.read_csv(path)
                # a row without a position (an older layout) counts as this position's
                pos = old["position"].fillna(position) if "position" in old else position
                mine = (old["source"] == other) & (old["target"] == reference) & (pos == position)
                frames.insert(0, old[~mine])
            except Exception as exc:  # unreadable or another layout: rewrite with this pair only, and say so
                log.warning("rewriting unreadable %s (%s)", path, exc)
        atomic_write_dataframe(path, pd.concat(frames, ignore_index=True))


def _load(out: Path, key: str, reference: str, other: str, cfg: AlignConfig) -> AlignmentResult | None:
    """A complete earlier run for exactly this key, verified by checksums; None to recompute. The
    summary is sealed (an edited layer or key is not trusted) and each file is parsed from the very
    bytes its checksum vouched for."""
    import io

    from safetensors.torch import load as load_tensors

    summary = read_sealed_json(out / "summary.json", what="alignment summary")
    if summary is None or summary.get("key") != key:
        return None
    try:
        data = {}
        for name, digest in summary["files"].items():
            data[name] = (out / name).read_bytes()
            if sha256_bytes(data[name]) != digest:
                log.warning("alignment output %s does not match its checksum; recomputing", name)
                return None
        tables = {name: pd.read_csv(io.BytesIO(data[f"{name}.csv"])) for name in TABLES}
        nulls = {k: v.double().numpy() for k, v in load_tensors(data["nulls.safetensors"]).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return AlignmentResult(reference, other, summary["layers"], cfg, tables, nulls, summary, out)


def clear_memo() -> None:
    _MEMO.clear()
