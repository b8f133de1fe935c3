"""Validity of the text evaluators (T2) on the project's emotion prompts.

The instruments used in phases 5-7 must first show that they measure what they are named after, on
the same prompts the representation claims use (data/emotion_prompts.csv; the evaluators were never
trained or tuned on it). Two families:

* evaluator_vs_neutral - each instrument separates an emotion's prompts from neutral prompts
  (the easy test);
* evaluator_specificity - each instrument separates the target emotion from the *other* emotions
  (the demanding test: a scorer that reacts to any affective first-person text fails it).

No language model is needed. Scores come from the embedded evaluators (MiniLM heads, VADER and the NRC
word list); `evidence.record` gets the per-prompt scores and the AUC as a metric. `emotion_prompts` is the
session fixture of fixtures/data.py.

Beside the claims, the module writes the instruments' validity table (every instrument's AUC per contrast
with DeLong intervals, emocheck.evaluators.validity) as results/<profile>/statistics/instrument_validity.csv;
the report shows it in report.md and report.html.
"""
from __future__ import annotations

import pytest

from emocheck import claim

from emocheck.dataset import dataset_hash
from emocheck.evaluators import get_evaluator
from emocheck.evaluators.validation import auc
from emocheck.evaluators.validity import instrument_validity, write_validity
from emocheck.profiles import results_dir


@pytest.fixture(scope="module", autouse=True)
def instrument_validity_table(emotion_prompts, emocheck_profile):
    """The validity table of the session's prompts, written for the report (scores are cached per process,
    so the claims below reuse them)."""
    table = instrument_validity(emotion_prompts)
    write_validity(results_dir(emocheck_profile, "statistics"), table,
                   {"dataset": str(emotion_prompts.attrs.get("path", "")), "dataset_hash": dataset_hash(emotion_prompts)})
    return table


def _scores(emotion_prompts, evaluator: str, column: str, emotions: tuple[str, ...]):
    rows = emotion_prompts[emotion_prompts["emotion"].isin(emotions)]
    df = get_evaluator(evaluator).score(rows["text"].tolist())
    return df[column].to_numpy(dtype=float), rows["id"].tolist(), df.attrs["model_id"]


def _record(evidence, emotion_prompts, evaluator, column, treated, control, direction):
    t, t_ids, model_id = _scores(emotion_prompts, evaluator, column, treated)
    c, c_ids, _ = _scores(emotion_prompts, evaluator, column, control)
    a = auc(t, c) if direction == "greater" else auc(-t, -c)
    evidence.record(treated=t, control=c, sample_ids={"treated": t_ids, "control": c_ids},
                    metrics={"auc": a, "model_id": model_id, "evaluator": evaluator})


# ------------------------------------------------------------------------ vs neutral
# (evaluator, column): how the statement names the measured score
MEASURE = {
    ("emotion", "gratitude"): "emotion evaluator's gratitude",
    ("emotion", "anger"): "emotion evaluator's anger",
    ("emotion", "remorse"): "emotion evaluator's remorse",
    ("politeness", "score"): "politeness",
    ("sentiment", "score"): "MiniLM sentiment",
    ("sentiment-vader", "score"): "VADER sentiment",
    ("emotion-nrc", "anger"): "NRC lexicon's anger",
    ("emotion-margin", "gratitude"): "emotion evaluator's gratitude margin",
    ("emotion-margin", "anger"): "emotion evaluator's anger margin",
    ("emotion-margin", "remorse"): "emotion evaluator's remorse margin",
}

HIGHER_VS_NEUTRAL = [
    ("emotion", "gratitude", "gratitude"),
    ("emotion", "anger", "anger"),
    ("emotion", "remorse", "apology"),
    ("emotion-margin", "gratitude", "gratitude"),
    ("emotion-margin", "anger", "anger"),
    ("emotion-margin", "remorse", "apology"),
    ("emotion-nrc", "anger", "anger"),
    ("politeness", "score", "gratitude"),
    ("politeness", "score", "apology"),
    ("sentiment", "score", "gratitude"),
    ("sentiment-vader", "score", "gratitude"),
]
LOWER_VS_NEUTRAL = [
    ("sentiment", "score", "anger"),
    ("sentiment-vader", "score", "anger"),
    ("politeness", "score", "anger"),
]


def _params(rows):
    return [pytest.param(MEASURE[(r[0], r[1])], *r, id="-".join(r)) for r in rows]


@claim("the {measure} score is higher for {emotion} prompts than for neutral prompts",
       family="evaluator_vs_neutral", paired=False, alternative="greater", min_d=0.5)
@pytest.mark.parametrize("measure,evaluator,label,emotion", _params(HIGHER_VS_NEUTRAL))
def test_higher_than_neutral(measure, evaluator, label, emotion, evidence, emotion_prompts):
    _record(evidence, emotion_prompts, evaluator, label, (emotion,), ("neutral",), "greater")


@claim("the {measure} score is lower for {emotion} prompts than for neutral prompts",
       family="evaluator_vs_neutral", paired=False, alternative="less", min_d=0.5)
@pytest.mark.parametrize("measure,evaluator,label,emotion", _params(LOWER_VS_NEUTRAL))
def test_lower_than_neutral(measure, evaluator, label, emotion, evidence, emotion_prompts):
    _record(evidence, emotion_prompts, evaluator, label, (emotion,), ("neutral",), "less")


# ----------------------------------------------------------------------- specificity
HIGHER_THAN_OTHERS = [
    ("emotion", "gratitude", "gratitude", "anger+apology"),
    ("emotion", "anger", "anger", "gratitude+apology"),
    ("emotion", "remorse", "apology", "gratitude+anger"),
    ("emotion-margin", "gratitude", "gratitude", "anger+apology"),
    ("emotion-margin", "anger", "anger", "gratitude+apology"),
    ("emotion-margin", "remorse", "apology", "gratitude+anger"),
    ("emotion-nrc", "anger", "anger", "gratitude+apology"),
    ("sentiment", "score", "gratitude", "anger"),
    ("sentiment-vader", "score", "gratitude", "anger"),
]
LOWER_THAN_OTHERS = [
    ("politeness", "score", "anger", "gratitude+apology"),
]


@claim("the {measure} score is higher for {emotion} prompts than for {others} prompts",
       family="evaluator_specificity", paired=False, alternative="greater", min_d=0.5)
@pytest.mark.parametrize("measure,evaluator,label,emotion,others", _params(HIGHER_THAN_OTHERS))
def test_higher_than_other_emotions(measure, evaluator, label, emotion, others, evidence, emotion_prompts):
    _record(evidence, emotion_prompts, evaluator, label, (emotion,), tuple(others.split("+")), "greater")


@claim("the {measure} score is lower for {emotion} prompts than for {others} prompts",
       family="evaluator_specificity", paired=False, alternative="less", min_d=0.5)
@pytest.mark.parametrize("measure,evaluator,label,emotion,others", _params(LOWER_THAN_OTHERS))
def test_lower_than_other_emotions(measure, evaluator, label, emotion, others, evidence, emotion_prompts):
    _record(evidence, emotion_prompts, evaluator, label, (emotion,), tuple(others.split("+")), "less")
