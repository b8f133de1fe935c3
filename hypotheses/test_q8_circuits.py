"""Q1-Q3, phase 8: is there a small circuit of heads and MLPs that carries the emotion, more than
random circuits of the same size and layer profile?

Design (emocheck.circuits.experiment; fixed before any judged result): every head (hook_z) and MLP
(hook_mlp_out) is ranked on TRAINING emotion prompts by first-order attribution patching (metric: the
final layer's resid_post at the last token projected on the final-layer emotion vector; source:
mean over training neutral prompts). The circuit is the smallest prefix of that ranking that
recovers SHARE = 80% of the effect on training prompts when every other component is mean-ablated at
the last token. Judged on HELD-OUT emotion prompts against K random circuits with the circuit's
layer profile (`evidence.record_null`, emocheck.stats.nulls.compare_to_null, Monte-Carlo p):

- faithfulness: share of the effect the circuit recovers alone (others mean-ablated), greater;
- completeness: share left when only the circuit is mean-ablated, less.

The circuit's size, its fraction of all components, its held-out faithfulness and the attribution
vs exact-patching agreement are reported as metrics (they are not what is judged). At `ci`: 12 held-out
prompts, K = 199 random circuits (Monte-Carlo p >= 1/200 = 0.005, below Holm's smallest threshold
0.05 / 6 for a family of 3 emotions x 2 models).
"""
import pytest

from emocheck import claim
from emocheck.circuits.experiment import EMOTIONS as CLAIM_EMOTIONS


def _metrics(r: dict) -> dict:
    v = r["validation"]["projection"]["all"]
    return {"circuit": " ".join(r["circuit"]), "size": r["size"], "size_fraction": round(r["size_fraction"], 4),
            "n_components": r["n_components"], "faithfulness": r["faithfulness"], "completeness": r["completeness"],
            "reached_share_on_train": r["reached_on_train"], "n_held_out": r["n_held_out"],
            "attribution_vs_exact_spearman": v.get("spearman"),
            "random_overlap_mean": r["random_overlap_mean"]}


@claim(
    "circuits: the {emotion} circuit (smallest attribution-ranked set of heads and MLPs reaching 80% "
    "faithfulness on training prompts) recovers more of the final-layer {emotion} projection on held-out "
    "{emotion} prompts, with everything else mean-ablated, than random circuits of the same size and layer profile",
    family="q8_circuits_faithfulness", alternative="greater", min_d=1.0,
)
@pytest.mark.parametrize("emotion", CLAIM_EMOTIONS)
def test_circuits_faithfulness_beats_random_circuits(emotion, emotion_circuit, evidence):
    r = emotion_circuit(emotion)
    evidence.record_null(observed=r["faithfulness"], null=r["null_faithfulness"], metrics=_metrics(r))


@claim(
    "circuits: mean-ablating only the {emotion} circuit leaves less of the final-layer {emotion} projection "
    "effect on held-out {emotion} prompts than ablating random circuits of the same size and layer profile",
    family="q8_circuits_completeness", alternative="less", min_d=1.0,
)
@pytest.mark.parametrize("emotion", CLAIM_EMOTIONS)
def test_circuits_completeness_beats_random_circuits(emotion, emotion_circuit, evidence):
    r = emotion_circuit(emotion)
    evidence.record_null(observed=r["completeness"], null=r["null_completeness"], metrics=_metrics(r))
