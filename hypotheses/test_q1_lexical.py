"""Q1 against the keyword confound: does a residual direction separate emotions better than words alone,
and does it still separate them without the emotion's words?

- beats words alone: the direction's held-out AUC against that of a word uni/bigram logistic regression
  trained on the same training prompts (regularisation by cross-validation inside the training split)
  and scored on the same held-out prompts. Judged as an observed statistic against a null distribution:
  observed = AUC(direction) - AUC(words), null = 2000 draws of the paired permutation null (each
  prompt's two rank-scores swapped with probability 1/2; Bandos, Rockette & Gur 2005), one-sided
  Monte Carlo p. DeLong's interval for the same difference is in the metrics.
- implicit prompts: the specificity and vs-neutral claims judged only on held-out prompts marked
  `explicitness = implicit` (for vs_other, against the other emotions' implicit prompts), where the
  emotion is not named. Needs an `explicitness` column with implicit rows.
- masked triggers: the held-out prompts re-extracted with their trigger span (the phrase that carries the
  emotion; for neutral prompts the matching content phrase) replaced by "___"; directions and layers
  from the unmasked training prompts. The lexical baseline sees the masked texts too. Needs triggers.
"""
import warnings

import pytest

from emocheck import claim
from emocheck.dataset import emotions_of, load_emotion_prompts
from emocheck.representations.q1 import beats_words_null, judge_direction, masked_held_out

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _DATA = load_emotion_prompts()
EMOTIONS = emotions_of(_DATA)
HAS_TRIGGERS = bool(_DATA["has_trigger"].all())
HAS_IMPLICIT = bool((_DATA["explicitness"] == "implicit").any())
POSITIONS = ["last", "trigger_last", "mean"] if HAS_TRIGGERS else ["last", "mean"]
KINDS = [("vs_neutral", "vs_neutral"), ("vs_other", "vs_other")]
SITE = "hook_resid_post"
NULL_DRAWS = 2000

_MASKED: dict = {}


def declared_only_if(applies: bool):
    """Declare the claim only when the dataset allows it: a declared claim that cannot run would count
    as p = 1 in its family's correction (and a skip inside a claim reads as a finding)."""
    return lambda test: test if applies else None


def _masked(reps, model_name):
    key = (model_name, id(reps))
    if key not in _MASKED:
        _MASKED[key] = masked_held_out(reps, model_name)
    return _MASKED[key]


def _record_beats_words(evidence, res):
    observed, null = beats_words_null(res, draws=NULL_DRAWS, seed=0)
    metrics = {**res.metrics(), "observed_auc_difference": observed}
    evidence.record_null(observed=observed, null=null, metrics=metrics)


@claim(
    "at the {position} token, the {kind} direction separates held-out {emotion} prompts from {contrast_name} better than words alone (AUC above a word n-gram classifier's)",
    family="q1_beats_words", paired=False, alternative="greater", min_d=0.0,
)
@pytest.mark.parametrize("kind, contrast_name", [("vs_neutral", "neutral prompts"), ("vs_other", "the other emotions")])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_direction_beats_words_alone(model_name, emotion, position, kind, contrast_name, representations, evidence):
    res = judge_direction(representations, emotion, direction_kind=kind, contrast=kind, position=position, site=SITE)
    _record_beats_words(evidence, res)


@declared_only_if(HAS_IMPLICIT)  # needs an explicitness column with implicit rows
@claim(
    "at the {position} token, the {kind} direction separates held-out IMPLICIT {emotion} prompts (the emotion not named) from {contrast_name}",
    family="q1_implicit", paired=False, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("kind, contrast_name", [("vs_neutral", "neutral prompts"), ("vs_other", "implicit prompts of the other emotions")])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_direction_on_implicit_prompts(model_name, emotion, position, kind, contrast_name, representations, evidence):
    res = judge_direction(representations, emotion, direction_kind=kind, contrast=kind, position=position,
                          site=SITE, subset="implicit")
    evidence.record(treated=res.treated, control=res.control, metrics=res.metrics())


@declared_only_if(HAS_IMPLICIT)  # needs an explicitness column with implicit rows
@claim(
    "at the last token, the vs_other direction separates IMPLICIT held-out {emotion} prompts from the other emotions' implicit prompts better than words alone",
    family="q1_beats_words_implicit", paired=False, alternative="greater", min_d=0.0,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_direction_beats_words_on_implicit_prompts(model_name, emotion, representations, evidence):
    res = judge_direction(representations, emotion, direction_kind="vs_other", contrast="vs_other", position="last",
                          site=SITE, subset="implicit")
    _record_beats_words(evidence, res)


@declared_only_if(HAS_TRIGGERS)  # needs trigger spans to mask
@claim(
    "with the trigger span masked, at the {position} token the {kind} direction separates held-out {emotion} prompts from {contrast_name}",
    family="q1_masked", paired=False, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("kind, contrast_name", [("vs_neutral", "neutral prompts"), ("vs_other", "the other emotions")])
@pytest.mark.parametrize("position", ["last", "mean"])
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_direction_with_triggers_masked(model_name, emotion, position, kind, contrast_name, representations, evidence):
    res = judge_direction(representations, emotion, direction_kind=kind, contrast=kind, position=position, site=SITE,
                          subset="masked", masked_acts=_masked(representations, model_name))
    evidence.record(treated=res.treated, control=res.control, metrics=res.metrics())
