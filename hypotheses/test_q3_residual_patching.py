"""Q3, phase 5: does adding an emotion vector to the residual stream while generating change style?

Setup (emocheck/patching/experiment.py and its modules have the full design, fixed before any judged
result): the CAA-style emotion vector v_e = mean(resid | e) - mean(resid | neutral) (last prompt
token, training prompts) is added at one layer's resid_post, alpha x v_e, for generated tokens 0-4
(fixed schedule), greedy, profile.new_tokens tokens, on neutral prompts. Layer and alpha come from a
fixed rule on TUNING prompts (hash split, stratified by topic and genre; never judged) that gates on
the emotion vectors' own fluency.

Controls are distributions, drawn fresh for every judged prompt (so each per-prompt difference
carries the direction-to-direction variance and the paired test treats directions as a random
effect): random directions of norm ||v_e||, label-permuted difference-of-means vectors (emotion /
neutral labels shuffled: the anisotropy of the real residual stream), random k-subspaces for the
subspace condition; plus the unpatched baseline, the negated vector, the other emotions' vectors, a
dose-matched random control and prompting (an emotional prefix) as a reference condition.

Every claim is judged on the RAW paired differences. Fluency is declared separately: non-inferiority
of the patched continuation's NLL (margin log 1.5 nats/token) and repeated-3-gram fraction (margin
0.10) against the unpatched baseline. An ANCOVA at equal fluency (only inside the observed range) and
a topic-cluster-robust p-value are metrics beside each claim, never the verdict.

Whether these hold is a finding: nothing here was tuned on the judged prompts.
"""
from __future__ import annotations

import pytest

from emocheck import claim
from emocheck.errors import EvidenceError
from emocheck.patching.examples import example_continuations
from emocheck.patching.experiment import NLL_MARGIN, REP3_MARGIN, settings
from emocheck.profiles import get_profile
from emocheck.patching.scoring import noninferiority, paired_scores

FAMILY = "q3_residual_patching"
FLUENCY = "q3_patching_fluency"
PROPAGATION = "q3_propagation"
#: evaluator name in a claim -> column of the samples table
COLUMNS = {"politeness": "politeness", "sentiment": "sentiment", "gratitude": "emo_gratitude",
           "anger": "emo_anger", "remorse": "emo_remorse"}
RAISES = [("gratitude", "politeness"), ("gratitude", "gratitude"), ("apology", "remorse"), ("anger", "anger")]
LOWERS = [("anger", "sentiment")]


#: The secondary conditions the active profile runs (smaller profiles drop some).
SECONDARY = set(settings(get_profile())["secondary"])


def in_design(condition: str):
    """Declare the claim only when the active profile runs `condition`: a declared claim that cannot run
    would enter its family's correction as p = 1 and make every other claim harder to support."""
    def declare(test):
        return test if condition in SECONDARY else None
    return declare


def _dose_matched(selection, emotion: str) -> str:
    """The dose-matched random control: `random_dm:e`, run at the alpha where a random direction costs the
    emotion vectors' fluency; when that alpha IS the treated alpha, the ordinary random control is already
    dose-matched and no separate condition is generated."""
    same = float(selection.get("dose_matched_alpha", float("nan"))) == float(selection["alpha"])
    return f"random:{emotion}" if same else f"random_dm:{emotion}"


def _record(evidence, samples, selection, treated, control, evaluator, extra=None):
    for cond in (treated, control):
        if not (samples["condition"] == cond).any():
            raise EvidenceError(f"condition {cond!r} is missing from the samples table; the design declares it "
                                "(rerun `python -m emocheck.patching.experiment` for this profile)")
    out = paired_scores(samples, treated, control, COLUMNS[evaluator])
    metrics = {**out["metrics"], "layer": selection["layer"], "alpha": selection["alpha"], "treated": treated,
               "control": control, "judged_on": "raw paired difference", **(extra or {})}
    examples = example_continuations(samples, treated, control, COLUMNS[evaluator], out["sample_ids"],
                                     out["treated"] - out["control"])
    evidence.record(treated=out["treated"], control=out["control"], metrics=metrics, sample_ids=out["sample_ids"],
                    examples=examples)


@claim("the {emotion} vector raises {evaluator} versus random directions of the same norm (a fresh draw per prompt)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_random_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"random:{emotion}", evaluator)


@claim("the {emotion} vector lowers {evaluator} versus random directions of the same norm (a fresh draw per prompt)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_random_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"random:{emotion}", evaluator)


@claim("the {emotion} vector raises {evaluator} versus label-permuted difference-of-means vectors of the same norm (a fresh permutation per prompt)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_permuted_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"permuted:{emotion}", evaluator)


@claim("the {emotion} vector lowers {evaluator} versus label-permuted difference-of-means vectors of the same norm (a fresh permutation per prompt)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_permuted_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"permuted:{emotion}", evaluator)


@claim("the {emotion} vector raises {evaluator} versus the unpatched baseline",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_baseline_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", "baseline", evaluator)


@claim("the {emotion} vector lowers {evaluator} versus the unpatched baseline",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_baseline_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", "baseline", evaluator)


@in_design("dose_matched")
@claim("the {emotion} vector raises {evaluator} versus random directions at the dose-matched alpha (same fluency cost on the tuning prompts)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_dose_matched_random_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", _dose_matched(patching_selection, emotion),
            evaluator)


@in_design("dose_matched")
@claim("the {emotion} vector lowers {evaluator} versus random directions at the dose-matched alpha (same fluency cost on the tuning prompts)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_dose_matched_random_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", _dose_matched(patching_selection, emotion),
            evaluator)


@in_design("specific")
@claim("the {emotion}-specific direction (shared emotional component projected out) raises {evaluator} versus random directions of the same norm",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_specific_vs_random_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"specific:{emotion}", f"random:{emotion}", evaluator)


@in_design("specific")
@claim("the {emotion}-specific direction (shared emotional component projected out) lowers {evaluator} versus random directions of the same norm",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_specific_vs_random_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"specific:{emotion}", f"random:{emotion}", evaluator)


@in_design("subspace")
@claim("the {emotion} vector's projection on its top-3 subspace raises {evaluator} versus projections on random 3-subspaces (same norm)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_subspace_vs_random_subspace_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"subspace:{emotion}", f"randsub:{emotion}", evaluator)


@in_design("subspace")
@claim("the {emotion} vector's projection on its top-3 subspace lowers {evaluator} versus projections on random 3-subspaces (same norm)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_subspace_vs_random_subspace_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"subspace:{emotion}", f"randsub:{emotion}", evaluator)


@in_design("prompt")
@claim("prompting with an emotional ({emotion}) prefix raises {evaluator} versus the unpatched baseline (reference condition)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_prompting_vs_baseline_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", "baseline", evaluator)


@in_design("prompt")
@claim("prompting with an emotional ({emotion}) prefix lowers {evaluator} versus the unpatched baseline (reference condition)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_prompting_vs_baseline_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", "baseline", evaluator)


@in_design("prompt")
@claim("prompting with an emotional ({emotion}) prefix raises {evaluator} more than the {emotion} vector does",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_prompting_vs_vector_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", f"{emotion}", evaluator)


@in_design("prompt")
@claim("prompting with an emotional ({emotion}) prefix lowers {evaluator} more than the {emotion} vector does",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_prompting_vs_vector_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", f"{emotion}", evaluator)


@in_design("negated")
@claim("the {emotion} vector raises {evaluator} more than the negated {emotion} vector",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", [("gratitude", "politeness"), ("apology", "remorse")])
def test_vector_vs_negated(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, f"neg:{emotion}", evaluator)


@in_design("negated")
@claim("the anger vector lowers sentiment more than the negated anger vector",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
def test_anger_vs_negated(model_name, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, "anger", "neg:anger", "sentiment")


# Specificity against the other emotions (their emotion-minus-neutral vectors share much direction).
@claim("the {emotion} vector raises {evaluator} more than the {other} vector (specificity)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, other, evaluator", [
    ("gratitude", "anger", "politeness"), ("gratitude", "anger", "gratitude"),
    ("apology", "gratitude", "remorse"), ("anger", "gratitude", "anger"),
])
def test_vector_specificity(model_name, emotion, other, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, other, evaluator)


@claim("the anger vector lowers sentiment more than the gratitude vector (specificity)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
def test_anger_vs_gratitude_sentiment(model_name, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, "anger", "gratitude", "sentiment")


# --------------------------------------------------------------------------- fluency (a claim of its own)

@claim("the {emotion} vector's continuations are not less fluent than the unpatched baseline's "
       "({measure} difference below {margin})", family=FLUENCY, paired=True, alternative="less", min_d=0.0)
@pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
@pytest.mark.parametrize("measure, margin", [("nll", NLL_MARGIN), ("rep3", REP3_MARGIN)], ids=["nll", "rep3"])
def test_fluency_noninferior(model_name, emotion, measure, margin, evidence, patching_samples, patching_selection):
    out = noninferiority(patching_samples, emotion, "baseline", measure, margin)
    examples = example_continuations(patching_samples, emotion, "baseline", measure, out["sample_ids"],
                                     out["treated"] + margin - out["control"])
    evidence.record(treated=out["treated"], control=out["control"], sample_ids=out["sample_ids"],
                    metrics={**out["metrics"], "layer": patching_selection["layer"],
                             "alpha": patching_selection["alpha"],
                             "judged_on": f"treated - baseline - {margin:.3f} (non-inferiority)"},
                    examples=examples)


# --------------------------------------------------------------------------- propagation (forward pass)

def _propagation(evidence, table, selection, emotion, control):
    last = table["read_layer"].max()
    sub = table[(table["emotion"] == emotion) & (table["read_layer"] == last)]
    wide = sub.pivot_table(index="sample_id", columns="condition", values="shift", aggfunc="first")
    wide = wide[[emotion, control]].dropna()
    first = table[(table["emotion"] == emotion) & (table["read_layer"] == selection["layer"])]
    at_patch = first.groupby("condition")["shift"].mean()
    evidence.record(treated=wide[emotion].to_numpy(), control=wide[control].to_numpy(), sample_ids=list(wide.index),
                    metrics={"patched_layer": selection["layer"], "read_layer": int(last), "alpha": selection["alpha"],
                             "shift_at_patched_layer": float(at_patch.get(emotion, float("nan"))),
                             "mean_shift_treated": float(wide[emotion].mean()),
                             "mean_shift_control": float(wide[control].mean()), "control": control})


@claim("patching the {emotion} vector moves the last layer's projection on the {emotion} direction more than "
       "random directions of the same norm", family=PROPAGATION, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
def test_propagation_vs_random(model_name, emotion, evidence, patching_propagation, patching_selection):
    _propagation(evidence, patching_propagation, patching_selection, emotion, f"random:{emotion}")


@claim("patching the {emotion} vector moves the last layer's projection on the {emotion} direction more than "
       "label-permuted vectors of the same norm", family=PROPAGATION, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
def test_propagation_vs_permuted(model_name, emotion, evidence, patching_propagation, patching_selection):
    _propagation(evidence, patching_propagation, patching_selection, emotion, f"permuted:{emotion}")
