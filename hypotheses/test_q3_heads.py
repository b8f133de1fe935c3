"""Q3, phase 6: do the top emotion heads matter causally? Exact head patching against random head sets.

Design (emocheck.heads.growth; fixed before any judged result): heads ranked on TRAINING prompts by
their direct effect on the final-layer emotion direction; the top-8 set is patched at the last prompt
token (`hook_z`, nnsight, checked against plain hooks in tests/test_heads_patching.py) and the effect
is read on the projection of the final layer's resid_post on the emotion direction:

- ablate (emotion -> neutral): on a seeded sample of held-out emotion prompts, mean-ablate the set
  (mean output over TRAINING neutral prompts); effect = drop of the projection.
- patch_in (neutral -> emotion): on held-out neutral prompts, write the set's mean output over
  TRAINING emotion prompts; effect = rise of the projection.

Control: random sets of 8 heads with the same layer profile, each run on the same prompts. Judged
paired by prompt with the random sets as a random effect (`evidence.record(treated=[n], control=[n, K])`,
emocheck.stats.compare_directions); the rank of the chosen set among the random sets is reported
beside it, and so is the Spearman correlation between the exact and the first-order (direct-path)
effects over the sets (how far the cheap estimate used for the growth curves can be trusted).
Sample sizes are the profile's (`ci`: 12 prompts x 30 random sets; each prompt costs one prefix pass
and one batched last-token pass for all sets, emocheck.heads.prefix_cache) and were set by a shared
2-core CPU; generation-level head patching is implemented and tested (nnsight == hooks) but not
claimed here (see README).
"""
import pytest
from scipy import stats as st

from emocheck import claim
from emocheck.heads.experiment import EMOTIONS
from emocheck.heads.growth import CLAIM_N, exact, exact_arrays


def _record(evidence, model_name, profile, emotion, kind):
    df = exact(model_name, profile, emotion, kind, CLAIM_N, progress=False)
    treated, control = exact_arrays(df)
    per_set = df.groupby("set")[["effect", "first_order"]].mean()
    rho = float(st.spearmanr(per_set["effect"], per_set["first_order"]).statistic)
    evidence.record(treated=treated, control=control,
                    metrics={"heads": df.loc[df.set == 0, "heads"].iloc[0], "n_sets": control.shape[1],
                             "spearman_exact_vs_first_order": rho,
                             "chosen_mean_effect": float(treated.mean()),
                             "random_mean_effect": float(control.mean())})


@claim(
    "heads: mean-ablating the top-8 {emotion} heads lowers the final-layer {emotion} projection on held-out "
    "{emotion} prompts more than ablating random sets of 8 heads from the same layers",
    family="q3_heads_ablation", paired=True, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_heads_ablation_beats_random_sets(model_name, emotion, emocheck_profile, evidence):
    _record(evidence, model_name, emocheck_profile, emotion, "ablate")


@claim(
    "heads: patching the top-8 {emotion} heads' mean {emotion} output into held-out neutral prompts raises the "
    "final-layer {emotion} projection more than patching random sets of 8 heads from the same layers",
    family="q3_heads_patch_in", paired=True, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_heads_patch_in_beats_random_sets(model_name, emotion, emocheck_profile, evidence):
    _record(evidence, model_name, emocheck_profile, emotion, "patch_in")
