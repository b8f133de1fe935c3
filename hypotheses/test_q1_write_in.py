"""Q1, intra-model emotion flow: where is an emotion written into the residual stream?

Each claim reads the residual stream (resid_post) at the last prompt token, builds a direction from
TRAINING prompts, chooses the layer on training prompts only (largest training d), and is judged on
HELD-OUT prompts: Cohen's d (and AUC) between the projections of two groups of held-out prompts.

- vs neutral: emotion prompts against neutral ones. Expected to hold easily (surface form alone nearly
  separates them), so on its own it proves little.
- vs the other emotions: the specificity test, once with the seed's emotion-minus-neutral vector
  (which largely means "emotional") and once with the emotion-specific direction (this emotion
  against the other emotions). The first is the one a naive analysis would report; whether it holds
  is a finding.
- The layer profile: the layer chosen on training prompts should also be close to the best on held-out
  prompts (otherwise the "where" answer does not generalise): its held-out d must reach 80% of the
  best held-out d over all layers (the best is itself optimistically chosen, so this is demanding).
"""
import pytest

from emocheck import claim, stats
from emocheck.profiles import results_dir
from emocheck.representations.separation import choose_layer, held_out_scores, layer_profile, plot_layer_profiles
from emocheck.storage import atomic_write_dataframe

EMOTIONS = ["gratitude", "anger", "apology"]
POSITION = "last"
SITE = "hook_resid_post"


def _judge(evidence, reps, emotion, direction_kind, contrast):
    profile = layer_profile(reps, emotion, direction_kind=direction_kind, contrast=contrast, site=SITE, position=POSITION)
    layer = choose_layer(profile)
    treated, control, t_ids, c_ids = held_out_scores(reps, emotion, layer, direction_kind=direction_kind,
                                                     contrast=contrast, site=SITE, position=POSITION)
    lo, hi = stats.auc_ci(treated, control, seed=0)
    evidence.record(
        treated=treated, control=control,
        metrics={"layer": layer, "n_layers": len(reps.layers), "held_out_auc": stats.auc(treated, control),
                 "held_out_auc_ci_low": lo, "held_out_auc_ci_high": hi,
                 "train_cv_d_at_layer": float(profile.loc[profile.layer == layer, "train_cv_d"].iloc[0]),
                 "direction": direction_kind, "position": POSITION, "site": SITE},
    )


@claim(
    "the {emotion}-minus-neutral direction separates held-out {emotion} prompts from neutral prompts",
    family="q1_vs_neutral", paired=False, alternative="greater", min_d=1.0,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_emotion_vector_separates_from_neutral(model_name, emotion, representations, evidence):
    _judge(evidence, representations, emotion, "vs_neutral", "vs_neutral")


@claim(
    "the {emotion}-minus-neutral direction also separates held-out {emotion} prompts from the other emotions",
    family="q1_vs_other", paired=False, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_emotion_vector_is_specific(model_name, emotion, representations, evidence):
    _judge(evidence, representations, emotion, "vs_neutral", "vs_other")


@claim(
    "the {emotion}-specific direction (vs the other emotions) separates held-out {emotion} prompts from the other emotions",
    family="q1_vs_other", paired=False, alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_emotion_specific_direction_is_specific(model_name, emotion, representations, evidence):
    _judge(evidence, representations, emotion, "vs_other", "vs_other")


def test_layer_choice_generalises_to_held_out(model_name, representations, emocheck_profile):
    """Writes the layer profiles (CSV + PNG) and checks that, for every emotion and contrast, the layer
    chosen on training prompts reaches 80% of the best held-out d."""
    import pandas as pd

    frames = []
    for emotion in EMOTIONS:
        for kind, contrast in (("vs_neutral", "vs_neutral"), ("vs_neutral", "vs_other"), ("vs_other", "vs_other")):
            frames.append(layer_profile(representations, emotion, direction_kind=kind, contrast=contrast,
                                        site=SITE, position=POSITION))
    profiles = pd.concat(frames, ignore_index=True)
    out = results_dir(emocheck_profile, "layer_profiles")
    atomic_write_dataframe(out / f"{model_name}_layer_profile.csv", profiles)
    plot_layer_profiles(profiles, out / f"{model_name}_layer_profile.png")
    misses = []
    for (emotion, kind, contrast), g in profiles.groupby(["emotion", "direction", "contrast"]):
        chosen = choose_layer(g)
        held = float(g.loc[g.layer == chosen, "held_out_d"].iloc[0])
        best = g.loc[g["held_out_d"].idxmax()]
        if held < 0.8 * best["held_out_d"]:
            misses.append(f"{emotion} {kind} {contrast}: chose layer {chosen} (held-out d {held:.2f}), "
                          f"held-out best layer {int(best['layer'])} (d {best['held_out_d']:.2f})")
    assert not misses, "layer chosen on training prompts falls short on held-out prompts:\n" + "\n".join(misses)
