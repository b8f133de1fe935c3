"""Phase 6 end to end for one model and profile: screening, then ablation/patching against random sets.

    python -m emocheck.heads screen gemma3-270m --profile ci
    python -m emocheck.heads ablate gemma3-270m --profile ci --emotion gratitude

Outputs:
    results/<profile>/head_scores/<model>/head_scores.csv      every (emotion, measure, layer, head)
    results/<profile>/head_scores/<model>/top_heads.csv        the 16 top heads per emotion (training rank)
    results/<profile>/head_scores/<model>/heatmap_<emotion>.png
    results/<profile>/head_scores/<model>/per_prompt.safetensors  per-prompt scores (cache, keyed)
    results/<profile>/patching/heads/<model>/...                (see emocheck.heads.growth)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emocheck.heads.screening import (MEASURES, SCREEN_CODE_VERSION, HeadScreen, per_prompt_scores, plot_heatmaps,
                                      score_heads)
from emocheck.profiles import Profile, results_dir
from emocheck.storage import (atomic_write_dataframe, file_lock, load_tensors_artifact, save_tensors_artifact,
                              stable_hash)
from emocheck import timing
from emocheck.study import EMBEDDED_EMOTIONS, study_for

log = logging.getLogger(__name__)

#: The embedded study's emotions (emocheck.study); a run screens the active study's.
EMOTIONS = EMBEDDED_EMOTIONS
TOP_N = 16
_MEMO: dict = {}


@dataclass
class ScreenSample:
    """The prompts a screen runs on (a seeded per-class sample of the profile's prompts) and the
    emotion vectors (built from ALL of the profile's training prompts)."""

    model: str
    prompts: pd.DataFrame
    vectors: object

    def rows(self, emotion=None, split_name=None) -> np.ndarray:
        from emocheck.representations.build import prompt_mask

        return prompt_mask(self.prompts, emotion, split_name)


def screen_cap(profile: Profile) -> int | None:
    """Prompts screened per class (emotions and neutral), a seeded sample that keeps each prompt's
    train/held-out label; None = all (the profile's `heads.screen_prompts`). The ci value is set by the
    shared 2-core machine this was built on (about 3 s per prompt-forward under load), not by statistics."""
    return profile.heads.screen_prompts


def screen_sample(reps, profile: Profile) -> ScreenSample:
    cap = screen_cap(profile)
    prompts = reps.prompts
    if cap is not None:
        rng = np.random.default_rng(profile.seed + 6011)
        keep = []
        for label in sorted(prompts["emotion"].unique()):
            idx = np.flatnonzero(prompts["emotion"].to_numpy() == label)
            keep.extend(sorted(rng.choice(idx, size=min(cap, len(idx)), replace=False).tolist()))
        prompts = prompts.iloc[sorted(keep)].reset_index(drop=True)
    return ScreenSample(reps.model, prompts, reps.vectors)


def scores_dir(profile: Profile, model_name: str):
    return results_dir(profile, "head_scores", model_name)


def cached_per_prompt_scores(model_name: str, profile: Profile, reps, progress: bool = True) -> dict:
    """Per-prompt head scores, computed once (one pass per batch) and stored as safetensors by the one
    storage rule (checksummed sidecar, verified on read; a missing, stale or damaged file is rebuilt)."""
    from emocheck.models.registry import load_model

    emotions = list(study_for(profile).emotions)
    key = stable_hash({"vectors": reps.vectors.meta.get("key"), "code": SCREEN_CODE_VERSION,
                       "emotions": emotions, "ids": reps.prompts["id"].tolist()}, 24)
    path = scores_dir(profile, model_name) / "per_prompt.safetensors"
    with file_lock(path):
        found = load_tensors_artifact(path, key=key, what="head screen cache")
        if found is not None:
            return found[0]
        loaded = load_model(model_name)
        scores = per_prompt_scores(loaded, reps, emotions, batch_size=profile.batch_size, progress=progress)
        scores = {k: v.contiguous() for k, v in scores.items()}
        save_tensors_artifact(path, scores, {"key": key, "model": model_name, "emotions": emotions,
                                             "measures": list(MEASURES)})
    return scores


@timing.timed("heads")
def screen(model_name: str, profile: Profile, progress: bool = True, write: bool = True):
    """Screen every head of the model: (HeadScreen, per-prompt scores, Representations). Writes the
    tables and heat maps; memoised per process, per-prompt scores cached on disk."""
    from emocheck.representations.build import build_representations

    memo = (model_name, profile.name)
    if memo in _MEMO:
        return _MEMO[memo]
    reps = screen_sample(build_representations(model_name, profile, progress=progress), profile)
    scores = cached_per_prompt_scores(model_name, profile, reps, progress=progress)
    emotions = list(study_for(profile).emotions)
    result = score_heads(scores, reps.prompts, emotions, model_name,
                         n_boot=min(profile.bootstrap_resamples, 2000), seed=profile.seed)
    if write:
        out = scores_dir(profile, model_name)
        atomic_write_dataframe(out / "head_scores.csv", result.table)
        tops = [result.ranked(e).head(TOP_N).assign(rank=range(1, TOP_N + 1)) for e in emotions]
        atomic_write_dataframe(out / "top_heads.csv", pd.concat(tops, ignore_index=True))
        for e in emotions:
            plot_heatmaps(result, e, out / f"heatmap_{e}.png")
    _MEMO[memo] = (result, scores, reps)
    return _MEMO[memo]
