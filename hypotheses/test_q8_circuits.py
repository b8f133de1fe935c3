"""Q1-Q3, phase 8: is there a small circuit of heads and MLPs that carries the emotion, more than
random circuits of the same size, component types and layers?

Design (emocheck.circuits.experiment; fixed before any judged result): every head (hook_z) and MLP
(hook_mlp_out) is ranked on TRAINING emotion prompts by first-order attribution patching (metric: the
final layer's resid_post at the last token projected on the final-layer emotion vector; source:
mean over training neutral prompts). The circuit is the smallest prefix of that ranking that
recovers SHARE = 80% of the effect on training prompts when every other component is mean-ablated at
the last token. Judged on HELD-OUT emotion prompts, mean-ablating to HELD-OUT neutral means (the
ranking's training neutral mean would carry its noise into the judgement), against K random circuits
with the circuit's type-and-layer profile: as many heads per layer, drawn among that layer's heads, and
the same MLPs (`evidence.record_null`, emocheck.stats.nulls.compare_to_null, Monte-Carlo p: the circuit
must lie outside the random circuits' distribution). Matched on type, the claim compares the circuit's
heads with other heads of their layers; a circuit made of MLPs alone equals all its random circuits
and is not supported (tests/test_circuits_calibration.py simulates both nulls):

- faithfulness: share of the effect the circuit recovers alone (others mean-ablated), greater;
- completeness: share left when only the circuit is mean-ablated, less.

The circuit's size, its fraction of all components, its held-out faithfulness and the attribution
vs exact-patching agreement are reported as metrics (they are not what is judged). At `ci`: 12 held-out
prompts, K random circuits sized to the family (emocheck.circuits.experiment.settings: K + 1 >= 2 m / alpha,
m = 3 emotions x the profile's models: 239 for the two embedded models, 119 at smoke).
"""
import numpy as np
import pytest

from emocheck import claim
from emocheck.study import study_for

#: The study's emotions with a circuit design (next-token words; emocheck.study), those with a phase-5
#: target (the modulation claims) and those with a prompting prefix as well.
STUDY = study_for()
CLAIM_EMOTIONS = [e for e in STUDY.emotions if STUDY.design(e).target_words]
TARGETED = [e for e in CLAIM_EMOTIONS if e in STUDY.targets()]
PROMPTED = [e for e in TARGETED if e in STUDY.prompted()]


def declared_for(params):
    """Declare the claim only when the study gives it parameters (a claim that cannot run would count
    as p = 1 in its family's correction)."""
    return lambda test: test if params else None


def _metrics(r: dict) -> dict:
    v = r["validation"]["projection"]["all"]
    return {"circuit": " ".join(r["circuit"]), "size": r["size"], "size_fraction": round(r["size_fraction"], 4),
            "n_components": r["n_components"], "faithfulness": r["faithfulness"], "completeness": r["completeness"],
            "reached_share_on_train": r["reached_on_train"], "n_held_out": r["n_held_out"],
            "attribution_vs_exact_spearman": v.get("spearman"),
            "random_overlap_mean": r["random_overlap_mean"]}


@declared_for(CLAIM_EMOTIONS)
@claim(
    "circuits: the {emotion} circuit (smallest attribution-ranked set of heads and MLPs reaching 80% "
    "faithfulness on training prompts) recovers more of the final-layer {emotion} projection on held-out "
    "{emotion} prompts, with everything else mean-ablated, than random circuits of the same size, component types and layers",
    family="q8_circuits_faithfulness", alternative="greater", min_d=1.0,
    null_draws="emocheck.circuits.experiment:circuit_null_draws",
)
@pytest.mark.parametrize("emotion", CLAIM_EMOTIONS)
def test_circuits_faithfulness_beats_random_circuits(emotion, emotion_circuit, evidence):
    r = emotion_circuit(emotion)
    evidence.record_null(observed=r["faithfulness"], null=r["null_faithfulness"], metrics=_metrics(r))


@declared_for(CLAIM_EMOTIONS)
@claim(
    "circuits: mean-ablating only the {emotion} circuit leaves less of the final-layer {emotion} projection "
    "effect on held-out {emotion} prompts than ablating random circuits of the same size, component types and layers",
    family="q8_circuits_completeness", alternative="less", min_d=1.0,
    null_draws="emocheck.circuits.experiment:circuit_null_draws",
)
@pytest.mark.parametrize("emotion", CLAIM_EMOTIONS)
def test_circuits_completeness_beats_random_circuits(emotion, emotion_circuit, evidence):
    r = emotion_circuit(emotion)
    evidence.record_null(observed=r["completeness"], null=r["null_completeness"], metrics=_metrics(r))


# --------------------------------------------------------------------------- circuit modulation in generation
#
# Design (emocheck.circuits.generation; fixed, with these min_d and margins, before any generation was
# judged): each emotion's circuit is patched into phase 5's judged neutral generations (members'
# activations at the current token replaced by their mean over training prompts of the emotion, steps
# 0-4) and compared on the same prompts and instruments with phase 5's residual steering (the emotion
# vector at the phase-5 selected layer and alpha) and prompting (the emotional prefix, phase 5's half of
# the prompts). Target: politeness up (gratitude), sentiment down (anger), remorse up (apology), signed
# so that "raises" means toward the emotion. Random circuits (same size, component types and layers,
# K = n/2, two per prompt) are a random effect judged under the exchangeable null (the circuit must lie
# outside their distribution: prediction interval, emocheck.stats.directions); fluency is a claim of its
# own (phase 5's margins). Members' written means come from held-out emotion prompts.
#
# Power of the rule at ci (n = 20 prompts, 10 for prompting; Holm's first step alpha/m as the planning
# level, m = 12 for the modulation and fluency families, 18 for the comparisons), from
# emocheck.stats.power.power_min_effect: 80% power needs a true paired d of 1.12 (min_d 0.2, n 20,
# m 12), 1.17 (n 20, m 18), 1.83 (prompting, n 10, m 18) and 0.86 for the min_d-0 non-inferiority
# claims. At full the modulation runs on phase 5's nested 100 null prompts (of 200, for the time
# budget): 0.57 (m 12), 0.58 (m 18), 0.84 (prompting, phase 5's 40 secondary prompts, m 18) and 0.35.
# The random-circuit claim has fewer effective df (Satterthwaite over prompt and circuit
# variance) and needs more. Only large effects can be supported at ci; d and its interval are
# reported either way.

from emocheck.circuits.generation import baseline_agreement, too_few_pairs_message  # noqa: E402
NLL_MARGIN, REP3_MARGIN = STUDY.nll_margin, STUDY.rep3_margin
from emocheck.patching.examples import example_continuations  # noqa: E402
from emocheck.patching.scoring import noninferiority, paired_scores  # noqa: E402

MODULATION = "q8_circuit_modulation"
COMPARISON = "q8_circuit_vs_steering_prompting"
MOD_FLUENCY = "q8_circuit_fluency"
#: non-inferiority margin against steering, in SDs of the baseline's target score over the judged prompts
NI_MARGIN_SD = 0.2


def _target(emotion: str) -> str:
    col, sign = STUDY.targets()[emotion]
    return f"{'+' if sign > 0 else '-'}{col}"


def _paired(evidence, table, treated, control, emotion, extra=None, shift=0.0):
    out = paired_scores(table, treated, control, f"signed_{emotion}")
    if len(out["sample_ids"]) < 3:
        from emocheck.errors import EvidenceError
        raise EvidenceError(too_few_pairs_message(table, treated, control, out["metrics"]))
    metrics = {**out["metrics"], "treated": treated, "control": control, "target": _target(emotion),
               "baseline_tokens_identical_to_phase5": baseline_agreement(table), **(extra or {})}
    examples = example_continuations(table, treated, control, f"signed_{emotion}", out["sample_ids"],
                                     out["treated"] - out["control"])
    evidence.record(treated=out["treated"] + shift, control=out["control"], metrics=metrics, sample_ids=out["sample_ids"],
                    examples=examples)


@declared_for(TARGETED)
@claim("circuits: patching the {emotion} circuit into neutral generations moves the {emotion} target score "
       "more than patching random circuits of the same size, component types and layers (random effect)",
       family=MODULATION, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion", TARGETED)
def test_circuits_modulation_beats_random_circuits(emotion, circuit_modulation, evidence):
    t = circuit_modulation
    col = f"signed_{emotion}"
    treated = t[t.condition == f"circuit:{emotion}"].set_index("sample_id")[col]
    rand = t[t.condition == f"randcircuit:{emotion}"].pivot_table(index="sample_id", columns="draw", values=col,
                                                                  aggfunc="first", dropna=False)
    # An empty continuation has no score (NaN, as in phase 5). A random circuit left with fewer than two
    # scored prompts cannot enter the additive fit: it is dropped and counted.
    ids = [i for i in treated.index if np.isfinite(treated[i]) and i in rand.index]
    control = rand.loc[ids]
    control = control.loc[:, control.notna().sum() >= 2]
    ids = [i for i in ids if control.loc[i].notna().any()]
    control = control.loc[ids]
    examples = example_continuations(
        t, f"circuit:{emotion}", f"randcircuit:{emotion}", col, ids,
        treated[ids].to_numpy(float) - np.nanmean(control.to_numpy(float), axis=1),
        note="the difference is against the mean over the prompt's random circuits; the control shown is the "
             "one with the lowest draw number")
    evidence.record(treated=treated[ids].to_numpy(float), control=control.to_numpy(float), sample_ids=ids,
                    examples=examples,
                    metrics={"target": _target(emotion), "k_random_circuits": int(rand.shape[1]),
                             "k_random_circuits_judged": int(control.shape[1]),
                             "empty_random_cells": int(rand.isna().sum().sum()),
                             "circuit_mean": float(treated[ids].mean()), "random_mean": float(np.nanmean(control.to_numpy(float))),
                             "n_patched": int(t[t.condition == f"circuit:{emotion}"].n_patched.iloc[0])})


@declared_for(TARGETED)
@claim("circuits: patching the {emotion} circuit into neutral generations moves the {emotion} target score "
       "versus the unpatched baseline", family=MODULATION, paired=True, alternative="greater", min_d=0.2)
@pytest.mark.parametrize("emotion", TARGETED)
def test_circuits_modulation_vs_baseline(emotion, circuit_modulation, evidence):
    _paired(evidence, circuit_modulation, f"circuit:{emotion}", "circuit_baseline", emotion)


@declared_for(TARGETED)
@claim("circuits: patching the {emotion} circuit moves the {emotion} target score more than residual steering "
       "with the {emotion} vector (phase-5 layer and alpha)", family=COMPARISON, paired=True, alternative="greater",
       min_d=0.2)
@pytest.mark.parametrize("emotion", TARGETED)
def test_circuits_modulation_beats_steering(emotion, circuit_modulation, evidence):
    _paired(evidence, circuit_modulation, f"circuit:{emotion}", emotion, emotion)


@declared_for(TARGETED)
@claim("circuits: patching the {emotion} circuit moves the {emotion} target score at least as much as residual "
       "steering with the {emotion} vector (non-inferiority, margin 0.2 baseline SDs)", family=COMPARISON,
       paired=True, alternative="greater", min_d=0.0)
@pytest.mark.parametrize("emotion", TARGETED)
def test_circuits_modulation_noninferior_to_steering(emotion, circuit_modulation, evidence):
    t = circuit_modulation
    margin = NI_MARGIN_SD * float(t[t.condition == "baseline"][f"signed_{emotion}"].std(ddof=1))
    _paired(evidence, t, f"circuit:{emotion}", emotion, emotion, shift=margin,
            extra={"margin": margin, "judged_on": "circuit - steering + margin (non-inferiority)"})


@declared_for(PROMPTED)
@claim("circuits: patching the {emotion} circuit moves the {emotion} target score more than prompting with an "
       "emotional prefix (phase-5 prompting condition)", family=COMPARISON, paired=True, alternative="greater",
       min_d=0.2)
@pytest.mark.parametrize("emotion", PROMPTED)
def test_circuits_modulation_beats_prompting(emotion, circuit_modulation, evidence):
    _paired(evidence, circuit_modulation, f"circuit:{emotion}", f"prompt:{emotion}", emotion)


@declared_for(CLAIM_EMOTIONS)
@claim("circuits: continuations with the {emotion} circuit patched are not less fluent than the unpatched "
       "baseline ({measure} difference below {margin})", family=MOD_FLUENCY, paired=True, alternative="less", min_d=0.0)
@pytest.mark.parametrize("emotion", CLAIM_EMOTIONS)
@pytest.mark.parametrize("measure, margin", [("nll", NLL_MARGIN), ("rep3", REP3_MARGIN)], ids=["nll", "rep3"])
def test_circuits_modulation_fluency_noninferior(emotion, measure, margin, circuit_modulation, evidence):
    t = circuit_modulation
    out = noninferiority(t, f"circuit:{emotion}", "circuit_baseline", measure, margin)
    # an empty (e.g. newlines-only) continuation has a finite NLL and can look fluent: count them beside it
    empty = {c: int(t.loc[t.condition == c, "empty"].astype(bool).sum()) for c in (f"circuit:{emotion}", "circuit_baseline")}
    examples = example_continuations(t, f"circuit:{emotion}", "circuit_baseline", measure, out["sample_ids"],
                                     out["treated"] + margin - out["control"])
    evidence.record(treated=out["treated"], control=out["control"], sample_ids=out["sample_ids"], examples=examples,
                    metrics={**out["metrics"], "n_empty_treated": empty[f"circuit:{emotion}"],
                             "n_empty_baseline": empty["circuit_baseline"],
                             "judged_on": f"circuit - baseline - {margin:.3f} (non-inferiority)"})
