"""Q1 judging as plain functions: a direction's held-out separation beside what words alone achieve.

    res = judge_direction(reps, "gratitude", direction_kind="vs_other", contrast="vs_other", position="last")
    res.treated, res.control          # held-out projections (the claim's samples)
    res.metrics()                     # layer, AUCs, lexical baseline AUC, DeLong comparison, ...

The layer is chosen on TRAINING prompts (cross-validated d, `separation.choose_layer`) at the given
position rule; the lexical baseline (`lexical.lexical_scores`) is trained on the same training prompts
for the same contrast and scored on the same held-out prompts, so the two AUCs are paired.

Subsets (judging only; directions and the baseline are always trained on all training prompts):
    all         every held-out prompt of the two groups
    implicit    treated = held-out prompts of the emotion marked `explicitness = implicit`; for
                vs_other the other emotions' implicit held-out prompts (so neither side has the
                emotion's keywords); for vs_neutral all held-out neutral prompts
    masked      every held-out prompt with its trigger span replaced by a placeholder (emotion and
                neutral alike), re-extracted; judged at the chosen layer and the same position rule
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emocheck import stats
from emocheck.errors import ConfigError
from emocheck.representations import lexical
from emocheck.representations.separation import choose_layer, contrast_groups, layer_profile, projections

SUBSETS = ("all", "implicit", "masked")


@dataclass
class Q1Result:
    emotion: str
    direction_kind: str
    contrast: str
    position: str
    site: str
    subset: str
    layer: int
    treated: np.ndarray
    control: np.ndarray
    treated_ids: list
    control_ids: list
    profile: pd.DataFrame
    lexical_treated: np.ndarray | None = None
    lexical_control: np.ndarray | None = None
    comparison: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        lo, hi = stats.auc_ci(self.treated, self.control, seed=0)
        out = {"layer": self.layer, "n_layers": int(self.profile["layer"].nunique()),
               "held_out_auc": stats.auc(self.treated, self.control),
               "held_out_auc_ci_low": lo, "held_out_auc_ci_high": hi,
               "train_cv_d_at_layer": float(self.profile.loc[self.profile.layer == self.layer, "train_cv_d"].iloc[0]),
               "direction": self.direction_kind, "position": self.position, "site": self.site,
               "subset": self.subset, "n_treated": len(self.treated), "n_control": len(self.control)}
        if self.comparison:
            c = self.comparison
            out.update({"lexical_auc": c["auc_b"], "auc_minus_lexical": c["delta"],
                        "auc_minus_lexical_ci_low": c["ci_low"], "auc_minus_lexical_ci_high": c["ci_high"],
                        "delong_p_greater": c["p_greater"],
                        "beats_words_alone": bool(c["ci_low"] > 0)})
        return out


def _judged_rows(reps, emotion: str, contrast: str, subset: str):
    treated, control = contrast_groups(reps, emotion, contrast, "held_out")
    if subset == "implicit":
        if "explicitness" not in reps.prompts or not (reps.prompts["explicitness"] == "implicit").any():
            raise ConfigError("the 'implicit' subset needs an explicitness column with 'implicit' rows")
        implicit = (reps.prompts["explicitness"] == "implicit").to_numpy()
        treated = treated & implicit
        if contrast == "vs_other":
            control = control & implicit
    elif subset not in ("all", "masked"):
        raise ConfigError(f"unknown subset {subset!r}; one of {', '.join(SUBSETS)}")
    return treated, control


_PROFILES: dict[tuple, pd.DataFrame] = {}


def cached_layer_profile(reps, emotion: str, *, direction_kind: str, contrast: str, site: str, position: str) -> pd.DataFrame:
    """separation.layer_profile, memoised per Representations object (several claims choose the same layer)."""
    key = (id(reps), reps.prompts.attrs.get("dataset_hash"), emotion, direction_kind, contrast, site, position)
    if key not in _PROFILES:
        _PROFILES[key] = layer_profile(reps, emotion, direction_kind=direction_kind, contrast=contrast, site=site,
                                       position=position)
    return _PROFILES[key].copy()


def judge_direction(reps, emotion: str, *, direction_kind: str, contrast: str, position: str = "last",
                    site: str = "hook_resid_post", subset: str = "all", lexical_baseline: bool = True,
                    masked_acts=None) -> Q1Result:
    """Held-out separation of the direction chosen on training prompts, with the lexical baseline on the
    same prompts. `masked_acts`: the ActivationSet of `masked_held_out` (subset 'masked')."""
    prof = cached_layer_profile(reps, emotion, direction_kind=direction_kind, contrast=contrast, site=site,
                                position=position)
    layer = choose_layer(prof)
    direction = reps.vectors.vector(emotion, layer, direction_kind, site, position)
    t_rows, c_rows = _judged_rows(reps, emotion, contrast, subset)
    texts = reps.prompts["text"].to_numpy()
    ids = reps.prompts["id"].to_numpy()
    if subset == "masked":
        if masked_acts is None:
            raise ConfigError("subset 'masked' needs the masked held-out activations (q1.masked_held_out)")
        pos_of = {i: k for k, i in enumerate(masked_acts.ids)}
        scores_m = projections(masked_acts.get(layer, site, position), direction)
        scores = np.full(len(ids), np.nan)
        held = reps.rows(split_name="held_out")
        scores[held] = scores_m[[pos_of[i] for i in ids[held]]]
        texts = np.array(texts, dtype=object)
        texts[held] = lexical.mask_triggers(texts[held], reps.prompts["trigger"].to_numpy()[held])
    else:
        scores = projections(reps.activations.get(layer, site, position), direction)
    res = Q1Result(emotion, direction_kind, contrast, position, site, subset, layer, scores[t_rows], scores[c_rows],
                   ids[t_rows].tolist(), ids[c_rows].tolist(), prof)
    if lexical_baseline:
        t_train, c_train = contrast_groups(reps, emotion, contrast, "train")
        train_texts = list(texts[t_train]) + list(texts[c_train])
        train_y = [1] * int(t_train.sum()) + [0] * int(c_train.sum())
        lex = lexical.lexical_scores(train_texts, train_y, list(texts[t_rows]) + list(texts[c_rows]),
                                     seed=reps.profile.seed)
        n_t = int(t_rows.sum())
        res.lexical_treated, res.lexical_control = lex[:n_t], lex[n_t:]
        y = np.r_[np.ones(n_t), np.zeros(len(lex) - n_t)]
        res.comparison = lexical.delong(np.r_[res.treated, res.control], lex, y)
    return res


def beats_words_null(res: Q1Result, draws: int = 2000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Observed AUC(direction) - AUC(words) and its paired permutation null (lexical.paired_auc_null)."""
    if res.lexical_treated is None:
        raise ConfigError("judge_direction(..., lexical_baseline=True) first")
    y = np.r_[np.ones(len(res.treated)), np.zeros(len(res.control))]
    return lexical.paired_auc_null(np.r_[res.treated, res.control], np.r_[res.lexical_treated, res.lexical_control],
                                   y, draws=draws, seed=seed)


def masked_held_out(reps, model_name: str, *, progress: bool = True):
    """Activations of the held-out prompts with their trigger spans masked (cached like any extraction;
    the masked texts make their own cache key). `model_name` as given to build_representations."""
    from emocheck.models.registry import load_model
    from emocheck.profiles import results_dir
    from emocheck.representations.cache import cached_activations
    from emocheck.representations.extraction import POSITION_RULES

    if "has_trigger" in reps.prompts and not reps.prompts["has_trigger"].all():
        raise ConfigError("this dataset has no trigger spans to mask")
    held = reps.prompts[reps.prompts["split"] == "held_out"]
    texts = lexical.mask_triggers(held["text"], held["trigger"])
    identity = reps.activations.meta["model_identity"]
    return cached_activations(
        lambda: load_model(model_name), identity, held["id"].tolist(), texts, [lexical.MASK] * len(texts),
        results_dir(reps.profile, "activations", identity["name"]),
        positions=POSITION_RULES, sites=("hook_resid_post",), n_layers=len(reps.layers),
        batch_size=reps.profile.batch_size, progress=progress,
    )
