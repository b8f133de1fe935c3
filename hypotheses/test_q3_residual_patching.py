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

What a "versus random / label-permuted" claim asserts: with one fresh control draw per prompt the paired
t tests whether the emotion vector beats the AVERAGE control direction (population-mean null, exact:
tests/test_patching_scoring.py). Whether it lies OUTSIDE the controls' distribution (the treated vector
as one more draw, the null a label-permuted vector stands for) needs the direction-to-direction variance
tau^2, which one draw per prompt cannot separate from the prompt noise; under that exchangeable null this
rule supports 7-35% of ordinary draws (tests/test_patching_scoring.py), so the statements say "the
average". A crossed design would answer it: K = n/2 control directions, each on two prompts and two per
prompt (the circuit-modulation assignment, `emocheck.circuits.generation.draw_assignment`), judged by
`evidence.record(control=[n, K])` (the exchangeable prediction interval of emocheck.stats.directions);
it costs one more generated row per prompt per control condition, and is not built.

Whether these hold is a finding: nothing here was tuned on the judged prompts.
"""
from __future__ import annotations

import pytest

from emocheck import claim
from emocheck.errors import EvidenceError
from emocheck.patching.examples import example_continuations
from emocheck.patching.experiment import settings
from emocheck.profiles import get_profile
from emocheck.patching.scoring import noninferiority, paired_scores
from emocheck.study import column, study_for

FAMILY = "q3_residual_patching"
FLUENCY = "q3_patching_fluency"
PROPAGATION = "q3_propagation"
#: The study (emocheck.study): its emotions, each one's instruments (an evaluator reading it is
#: predicted to raise or lower), prompting prefixes, contrasts and the fluency margins.
STUDY = study_for()
RAISES = STUDY.instrument_claims(+1)
LOWERS = STUDY.instrument_claims(-1)
NEGATED_RAISES, NEGATED_LOWERS = STUDY.target_claims(+1), STUDY.target_claims(-1)
SPECIFIC_RAISES, SPECIFIC_LOWERS = STUDY.contrast_claims(+1), STUDY.contrast_claims(-1)
NLL_MARGIN, REP3_MARGIN = STUDY.nll_margin, STUDY.rep3_margin


def prompted(pairs):
    """The pairs whose emotion has a prompting prefix (the prompting reference condition)."""
    return [p for p in pairs if p[0] in STUDY.prompted()]


def declared_for(params):
    """Declare the claim only when the study gives it parameters (an empty parameter set would be
    a claim that cannot run, counted as p = 1 in its family's correction)."""
    return lambda test: test if params else None


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
    out = paired_scores(samples, treated, control, column(evaluator))
    metrics = {**out["metrics"], "layer": selection["layer"], "alpha": selection["alpha"], "treated": treated,
               "control": control, "judged_on": "raw paired difference", **(extra or {})}
    examples = example_continuations(samples, treated, control, column(evaluator), out["sample_ids"],
                                     out["treated"] - out["control"])
    evidence.record(treated=out["treated"], control=out["control"], metrics=metrics, sample_ids=out["sample_ids"],
                    examples=examples)


@declared_for(RAISES)
@claim("the {emotion} vector raises {evaluator} more than the average random direction of the same norm (a fresh draw per prompt)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_random_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"random:{emotion}", evaluator)


@declared_for(LOWERS)
@claim("the {emotion} vector lowers {evaluator} more than the average random direction of the same norm (a fresh draw per prompt)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_random_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"random:{emotion}", evaluator)


@declared_for(RAISES)
@claim("the {emotion} vector raises {evaluator} more than the average label-permuted difference-of-means vector of the same norm (a fresh permutation per prompt)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_permuted_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"permuted:{emotion}", evaluator)


@declared_for(LOWERS)
@claim("the {emotion} vector lowers {evaluator} more than the average label-permuted difference-of-means vector of the same norm (a fresh permutation per prompt)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_permuted_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", f"permuted:{emotion}", evaluator)


@declared_for(RAISES)
@claim("the {emotion} vector raises {evaluator} versus the unpatched baseline",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_baseline_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", "baseline", evaluator)


@declared_for(LOWERS)
@claim("the {emotion} vector lowers {evaluator} versus the unpatched baseline",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_baseline_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", "baseline", evaluator)


@in_design("dose_matched")
@declared_for(RAISES)
@claim("the {emotion} vector raises {evaluator} more than the average random direction at the dose-matched alpha (same fluency cost on the tuning prompts)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_vs_dose_matched_random_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", _dose_matched(patching_selection, emotion),
            evaluator)


@in_design("dose_matched")
@declared_for(LOWERS)
@claim("the {emotion} vector lowers {evaluator} more than the average random direction at the dose-matched alpha (same fluency cost on the tuning prompts)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_vs_dose_matched_random_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"{emotion}", _dose_matched(patching_selection, emotion),
            evaluator)


@in_design("specific")
@declared_for(RAISES)
@claim("the {emotion}-specific direction (shared emotional component projected out) raises {evaluator} more than the average random direction of the same norm",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_specific_vs_random_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"specific:{emotion}", f"random:{emotion}", evaluator)


@in_design("specific")
@declared_for(LOWERS)
@claim("the {emotion}-specific direction (shared emotional component projected out) lowers {evaluator} more than the average random direction of the same norm",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_specific_vs_random_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"specific:{emotion}", f"random:{emotion}", evaluator)


@in_design("subspace")
@declared_for(RAISES)
@claim("the {emotion} vector's projection on its top-3 subspace raises {evaluator} more than the average projection on a random 3-subspace (same norm)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", RAISES)
def test_subspace_vs_random_subspace_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"subspace:{emotion}", f"randsub:{emotion}", evaluator)


@in_design("subspace")
@declared_for(LOWERS)
@claim("the {emotion} vector's projection on its top-3 subspace lowers {evaluator} more than the average projection on a random 3-subspace (same norm)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", LOWERS)
def test_subspace_vs_random_subspace_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"subspace:{emotion}", f"randsub:{emotion}", evaluator)


@in_design("prompt")
@declared_for(prompted(RAISES))
@claim("prompting with an emotional ({emotion}) prefix raises {evaluator} versus the unpatched baseline (reference condition)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", prompted(RAISES))
def test_prompting_vs_baseline_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", "baseline", evaluator)


@in_design("prompt")
@declared_for(prompted(LOWERS))
@claim("prompting with an emotional ({emotion}) prefix lowers {evaluator} versus the unpatched baseline (reference condition)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", prompted(LOWERS))
def test_prompting_vs_baseline_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", "baseline", evaluator)


@in_design("prompt")
@declared_for(prompted(RAISES))
@claim("prompting with an emotional ({emotion}) prefix raises {evaluator} more than the {emotion} vector does",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", prompted(RAISES))
def test_prompting_vs_vector_raises(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", f"{emotion}", evaluator)


@in_design("prompt")
@declared_for(prompted(LOWERS))
@claim("prompting with an emotional ({emotion}) prefix lowers {evaluator} more than the {emotion} vector does",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", prompted(LOWERS))
def test_prompting_vs_vector_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, f"prompt:{emotion}", f"{emotion}", evaluator)


# The negated vector on each emotion's target (its first instrument).
@in_design("negated")
@declared_for(NEGATED_RAISES)
@claim("the {emotion} vector raises {evaluator} more than the negated {emotion} vector",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", NEGATED_RAISES)
def test_vector_vs_negated(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, f"neg:{emotion}", evaluator)


@in_design("negated")
@declared_for(NEGATED_LOWERS)
@claim("the {emotion} vector lowers {evaluator} more than the negated {emotion} vector",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, evaluator", NEGATED_LOWERS)
def test_vector_vs_negated_lowers(model_name, emotion, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, f"neg:{emotion}", evaluator)


# Specificity against each emotion's contrast (their emotion-minus-neutral vectors share much direction).
@declared_for(SPECIFIC_RAISES)
@claim("the {emotion} vector raises {evaluator} more than the {other} vector (specificity)",
       family=FAMILY, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion, other, evaluator", SPECIFIC_RAISES)
def test_vector_specificity(model_name, emotion, other, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, other, evaluator)


@declared_for(SPECIFIC_LOWERS)
@claim("the {emotion} vector lowers {evaluator} more than the {other} vector (specificity)",
       family=FAMILY, paired=True, alternative="less", min_d=0.2)
@pytest.mark.parametrize("emotion, other, evaluator", SPECIFIC_LOWERS)
def test_vector_specificity_lowers(model_name, emotion, other, evaluator, evidence, patching_samples, patching_selection):
    _record(evidence, patching_samples, patching_selection, emotion, other, evaluator)


# --------------------------------------------------------------------------- fluency (a claim of its own)

@claim("the {emotion} vector's continuations are not less fluent than the unpatched baseline's "
       "({measure} difference below {margin})", family=FLUENCY, paired=True, alternative="less", min_d=0.0)
@pytest.mark.parametrize("emotion", STUDY.emotions)
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
       "the average random direction of the same norm (a fresh draw per prompt)", family=PROPAGATION, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion", STUDY.emotions)
def test_propagation_vs_random(model_name, emotion, evidence, patching_propagation, patching_selection):
    _propagation(evidence, patching_propagation, patching_selection, emotion, f"random:{emotion}")


@claim("patching the {emotion} vector moves the last layer's projection on the {emotion} direction more than "
       "the average label-permuted vector of the same norm (a fresh permutation per prompt)", family=PROPAGATION, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion", STUDY.emotions)
def test_propagation_vs_permuted(model_name, emotion, evidence, patching_propagation, patching_selection):
    _propagation(evidence, patching_propagation, patching_selection, emotion, f"permuted:{emotion}")
