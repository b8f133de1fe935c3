"""Q1 transfer: a direction and its layer learned on one dataset, judged on another.

Dataset A is the project's data/emotion_prompts.csv, dataset B the active one (--emocheck-dataset); the
claims run in both directions (A -> B and B -> A) for the emotions the two share. The direction is the
source dataset's (built from its TRAINING prompts), at the layer chosen on its training prompts
(cross-validated d); it is judged on EVERY prompt of the target dataset (none of them was used to
build or choose it). Without --emocheck-dataset there is no B and these claims are not declared (a
declared claim that cannot run would still count in its family).
"""
import warnings

import pytest

from emocheck import claim, stats
from emocheck.dataset import data_dir, emotions_of, is_project_dataset, load_emotion_prompts
from emocheck.errors import ConfigError
from emocheck.representations.q1 import cached_layer_profile
from emocheck.representations.separation import choose_layer, contrast_groups, projections

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _ACTIVE = load_emotion_prompts()
    _PROJECT = load_emotion_prompts(data_dir() / "emotion_prompts.csv")
SHARED = sorted(set(emotions_of(_ACTIVE)) & set(emotions_of(_PROJECT)))
#: Dataset B exists only when the active dataset is not the project's own.
HAS_B = not is_project_dataset(_ACTIVE.attrs.get("path")) and bool(SHARED)


def if_second_dataset(test):
    return test if HAS_B else None
SITE = "hook_resid_post"


def _transfer(evidence, source, target, emotion, kind, position, route):
    if emotion not in source.emotions or emotion not in target.emotions:
        raise ConfigError(f"{emotion} is not in both datasets (A: {source.emotions}, B: {target.emotions})")
    prof = cached_layer_profile(source, emotion, direction_kind=kind, contrast=kind, site=SITE, position=position)
    layer = choose_layer(prof)
    direction = source.vectors.vector(emotion, layer, kind, SITE, position)
    scores = projections(target.activations.get(layer, SITE, position), direction)
    t, c = contrast_groups(target, emotion, kind, None)
    if kind == "vs_other":  # only the emotions the source knows (its direction was built against them)
        c = target.rows([e for e in source.emotions if e != emotion and e in target.emotions])
    target_own = cached_layer_profile(target, emotion, direction_kind=kind, contrast=kind, site=SITE, position=position)
    own_layer = choose_layer(target_own)
    evidence.record(treated=scores[t], control=scores[c], metrics={
        "route": route, "layer": layer, "direction": kind, "position": position,
        "auc": stats.auc(scores[t], scores[c]),
        "target_own_layer": own_layer,
        "target_own_held_out_auc": float(target_own.loc[target_own.layer == own_layer, "held_out_auc"].iloc[0]),
        "n_treated": int(t.sum()), "n_control": int(c.sum())})


@if_second_dataset
@claim(
    "the {emotion} {kind} direction learned at the {position} token of the project's prompts (A) separates the other dataset's (B) {emotion} prompts from its {contrast_name}",
    family="q1_transfer", paired=False, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("kind, contrast_name", [("vs_neutral", "neutral prompts"), ("vs_other", "other emotions")])
@pytest.mark.parametrize("position", ["last", "mean"])
@pytest.mark.parametrize("emotion", SHARED)
def test_transfer_a_to_b(model_name, emotion, kind, contrast_name, position, representations, project_representations, evidence):
    _transfer(evidence, project_representations, representations, emotion, kind, position, "A->B")


@if_second_dataset
@claim(
    "the {emotion} {kind} direction learned at the {position} token of the other dataset (B) separates the project's (A) {emotion} prompts from its {contrast_name}",
    family="q1_transfer", paired=False, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("kind, contrast_name", [("vs_neutral", "neutral prompts"), ("vs_other", "other emotions")])
@pytest.mark.parametrize("position", ["last", "mean"])
@pytest.mark.parametrize("emotion", SHARED)
def test_transfer_b_to_a(model_name, emotion, kind, contrast_name, position, representations, project_representations, evidence):
    _transfer(evidence, representations, project_representations, emotion, kind, position, "B->A")
