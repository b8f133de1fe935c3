"""Q3, phase 5: does adding an emotion vector to the residual stream while generating change style?

Setup (emocheck/patching/experiment.py has the full design, fixed before any judged result): the
CAA-style emotion vector v_e = mean(resid | e) - mean(resid | neutral) (last prompt token, training
prompts) is added at one layer's resid_post, alpha x v_e, for generated tokens 0-4 (fixed schedule),
greedy, profile.new_tokens tokens, on neutral prompts. Layer and alpha come from a fixed rule applied
to a sweep on TUNING prompts that are never judged. Controls on the same prompts (paired by prompt):
random directions of norm ||v_e|| (profile.random_directions seeded draws, averaged per prompt), the
unpatched baseline, the negated vector, other emotions' vectors, and a sign-flipped copy of the vector
(random coordinate signs: same norm and per-dimension magnitudes; the fairer null on Gemma, whose
massive residual dimensions make isotropic random directions unusually destructive).

Fluency: every claim is judged on the score difference adjusted for the fluency difference
(regression of the per-prompt score difference on the per-prompt continuation-NLL difference under
the unpatched model; the judged mean is the intercept = effect at equal fluency). The raw d, the
fluency slope, the perplexity ratio and repetition differences are recorded as metrics beside it.

Whether these hold is a finding: nothing here was tuned on the judged prompts.
"""
from __future__ import annotations

import pytest

from emocheck import claim

from emocheck.patching.experiment import paired_scores

FAMILY = "q3_residual_patching"
#: evaluator name in a claim -> column of the samples table
COLUMNS = {"politeness": "politeness", "sentiment": "sentiment", "gratitude": "emo_gratitude",
           "anger": "emo_anger", "remorse": "emo_remorse"}
RAISES = [("gratitude", "politeness"), ("gratitude", "gratitude"), ("apology", "remorse"), ("anger", "anger")]
LOWERS = [("anger", "sentiment")]


def _randoms(samples, emotion):
    return sorted(c for c in samples["condition"].unique() if c.startswith("random") and c.endswith(f":{emotion}"))


def _record(evidence, samples, selection, treated, controls, evaluator):
    out = paired_scores(samples, treated, controls, COLUMNS[evaluator])
    metrics = {**out["metrics"], "layer": selection["layer"], "alpha": selection["alpha"],
               "treated": treated, "control": "+".join(controls), "judged_on": "fluency-adjusted difference"}
    evidence.record(treated=out["treated"], control=out["control"], metrics=metrics, sample_ids=out["sample_ids"])


@claim("the {emotion} vector raises {evaluator} versus random directions of the same norm",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vector_raises_vs_random(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, _randoms(patching_samples, emotion), evaluator)


@claim("the {emotion} vector lowers {evaluator} versus random directions of the same norm",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vector_lowers_vs_random(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, _randoms(patching_samples, emotion), evaluator)


@claim("the {emotion} vector raises {evaluator} versus the unpatched baseline",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vector_raises_vs_baseline(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, ["baseline"], evaluator)


@claim("the {emotion} vector lowers {evaluator} versus the unpatched baseline",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vector_lowers_vs_baseline(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, ["baseline"], evaluator)


@claim("the {emotion} vector raises {evaluator} more than the negated {emotion} vector",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", [("gratitude", "politeness"), ("apology", "remorse")])
def test_vector_vs_negated(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, [f"neg:{emotion}"], evaluator)


@claim("the anger vector lowers sentiment more than the negated anger vector",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
def test_anger_vs_negated(model_name, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, "anger", ["neg:anger"], "sentiment")


# Specificity: the emotion-minus-neutral vectors share much of their direction (cosine 0.6-0.8).
@claim("the {emotion} vector raises {evaluator} more than the {other} vector (specificity)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, other, evaluator", [
    ("gratitude", "anger", "politeness"), ("gratitude", "anger", "gratitude"),
    ("apology", "gratitude", "remorse"), ("anger", "gratitude", "anger"),
])
def test_vector_specificity(model_name, emotion, other, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, [other], evaluator)


@claim("the anger vector lowers sentiment more than the gratitude vector (specificity)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
def test_anger_vs_gratitude_sentiment(model_name, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, "anger", ["gratitude"], "sentiment")


@claim("the {emotion}-specific direction (shared emotional component projected out) raises {evaluator} "
       "versus random directions of the same norm", family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_specific_direction_raises_vs_random(model_name, emotion, evaluator, evidence, patching_samples,
                                             patching_selection):
    _record(evidence, patching_samples, patching_selection, f"specific:{emotion}",
            _randoms(patching_samples, emotion), evaluator)


@claim("the {emotion}-specific direction (shared emotional component projected out) lowers {evaluator} "
       "versus random directions of the same norm", family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_specific_direction_lowers_vs_random(model_name, emotion, evaluator, evidence, patching_samples,
                                             patching_selection):
    _record(evidence, patching_samples, patching_selection, f"specific:{emotion}",
            _randoms(patching_samples, emotion), evaluator)


# Fairer null for Gemma: same per-dimension magnitudes as the emotion vector, random signs.
@claim("the {emotion} vector raises {evaluator} versus its sign-flipped control (same per-dimension magnitudes)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vector_raises_vs_signflip(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, [f"signflip:{emotion}"], evaluator)


@claim("the {emotion} vector lowers {evaluator} versus its sign-flipped control (same per-dimension magnitudes)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vector_lowers_vs_signflip(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, [f"signflip:{emotion}"], evaluator)
