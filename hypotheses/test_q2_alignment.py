"""Q2, cross-model shared structure: do two models share an emotion subspace up to a linear map?

For each pair of the profile's models (the first is the reference: the second is mapped into it;
`--emocheck-models a,b,c` gives a-vs-b and a-vs-c), emocheck.alignment.run:
  - reduces each model's resid_post at the last prompt token by PCA fitted on training prompts
    (p = 64), fits a ridge map on the training NEUTRAL prompts (the seed's design), and chooses the
    layer pair on training prompts only;
  - computes the emotion subspaces on HELD-OUT prompts of both models and their overlap (mean cos^2
    of the principal angles) after the map, at k = 2 (the seed's expectation).
No claim is judged on a raw overlap: each is judged against a null computed the same way, through
the same fitted map, with its Monte-Carlo p-value (min_d in null SDs); the chance level k/d, the
calibrated score (observed - null mean) / (1 - null mean) and the other nulls are in the metrics.
What each claim shows (emocheck.alignment.nulls has the nulls, docs/nulls.md the catalogue):

    random groups    EMOTION IS SHARED: the emotion's subspaces overlap more than the subspaces of
                     random groups of the same held-out prompts (the emotion group's size) taken in
                     both models and passed through the same map. Two models that share prompt
                     content and no emotion structure support it at most alpha of the time
                     (tests/test_alignment_shared_content.py); min_d 0 (a rank test): an overlap is
                     at most 1 and a margin of one null SD is out of reach (see nulls.EMOTION_MIN_D).
    shuffled pairing THE MAP LEARNED SOMETHING: the overlap through the fitted map beats maps fitted
                     on training prompts paired at random across the models. Shared prompt content
                     alone beats it (82% of simulated data sets without emotion structure), so it is
                     a statement about the map, not about emotion.
    label-permuted   (metrics only) the source's labels shuffled, the target's kept: it mixes map
                     quality with the group's identity and is beaten without emotion structure too.
    transfer         the source's emotion-specific direction, mapped, separates the target's held-out
                     emotion prompts from the other emotions (AUC > 0.8 <=> d > 1.19 under normality),
                     and beats random source directions mapped the same way
"""
import numpy as np
import pytest

from emocheck import claim
from emocheck.alignment.nulls import EMOTION_MIN_D, EMOTION_NULL, MAP_MIN_D, MAP_NULL
from emocheck.study import study_for

EMOTIONS = study_for().emotions
CONTRASTS = ["vs_neutral", "vs_other"]
K = 2
MIN_D_AUC_08 = float(np.sqrt(2) * 0.8416212335729143)   # d whose binormal AUC is 0.8


def _overlap_metrics(alignment, emotion, contrast):
    row = alignment.overlap_row(emotion, contrast, K)
    lay = alignment.layers
    return {
        "k": K, "observed_overlap": row.observed, "chance_k_over_d": row.chance_k_over_d,
        "common_width": int(row.common_width),
        "random_null_mean": row.random_mean, "label_permuted_null_mean": row.label_permuted_mean,
        "label_permuted_score": row.label_permuted_score, "label_permuted_p": row.label_permuted_p,
        "random_groups_null_mean": row.random_groups_mean, "random_groups_score": row.random_groups_score,
        "random_groups_p": row.random_groups_p,
        "shuffled_pairing_null_mean": row.shuffled_pairing_mean,
        "shuffled_pairing_score": row.shuffled_pairing_score, "shuffled_pairing_p": row.shuffled_pairing_p,
        "source_layer": lay["source_layer"], "target_layer": lay["target_layer"],
        "source_depth": lay["source_depth"], "target_depth": lay["target_depth"],
        "map": alignment.config.map_kind, "fit_on": alignment.config.fit_on, "p": alignment.config.p,
    }


@claim(
    "{model_pair}: the {emotion} ({contrast}) subspaces of the two models overlap through the map more than the "
    "subspaces of random groups of the same prompts (the emotion group's size, in both models) do, at k=2: the "
    "emotion is shared beyond the prompt content the models share",
    family="q2_alignment_emotion_vs_random_groups", alternative="greater", min_d=EMOTION_MIN_D,
    null_draws="emocheck.alignment.run:judged_null_draws",
)
@pytest.mark.parametrize("contrast", CONTRASTS)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_alignment_emotion_overlap_beats_random_groups(model_pair, emotion, contrast, alignment, evidence):
    row = alignment.overlap_row(emotion, contrast, K)
    evidence.record_null(observed=row.observed, null=alignment.null(emotion, contrast, EMOTION_NULL, K),
                         metrics=_overlap_metrics(alignment, emotion, contrast))


@claim(
    "{model_pair}: the map learned a prompt-specific relation: the {emotion} ({contrast}) subspaces overlap more "
    "through it than through maps fitted on shuffled prompt pairings, at k=2 (map quality, not shared emotion)",
    family="q2_alignment_overlap_vs_shuffled_pairing", alternative="greater", min_d=MAP_MIN_D,
    null_draws="emocheck.alignment.run:judged_null_draws",
)
@pytest.mark.parametrize("contrast", CONTRASTS)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_alignment_overlap_beats_shuffled_pairing(model_pair, emotion, contrast, alignment, evidence):
    row = alignment.overlap_row(emotion, contrast, K)
    evidence.record_null(observed=row.observed, null=alignment.null(emotion, contrast, MAP_NULL, K),
                         metrics=_overlap_metrics(alignment, emotion, contrast))


def _transfer(alignment, emotion):
    t = alignment.transfer
    row = t[t.emotion == emotion].iloc[0]
    scores = alignment.tables["transfer_scores"]
    s = scores[scores.emotion == emotion]
    metrics = {"mapped_auc": row.mapped_auc, "source_own_auc": row.source_own_auc,
               "target_native_auc": row.target_native_auc, "random_direction_auc_mean": row.random_auc_mean,
               "random_direction_auc_97_5": row.random_auc_high,
               "source_layer": alignment.layers["source_layer"], "target_layer": alignment.layers["target_layer"]}
    return row, s, metrics


@claim(
    "{model_pair}: the second model's {emotion}-specific direction, mapped into the first, separates the first "
    "model's held-out {emotion} prompts from the other emotions, AUC > 0.8",
    family="q2_alignment_transfer", paired=False, alternative="greater", min_d=MIN_D_AUC_08,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_alignment_mapped_direction_separates(model_pair, emotion, alignment, evidence):
    _, s, metrics = _transfer(alignment, emotion)
    t, c = s[s.treated.astype(bool)], s[~s.treated.astype(bool)]
    evidence.record(treated=t.mapped_score.to_numpy(), control=c.mapped_score.to_numpy(), metrics=metrics,
                    sample_ids={"treated": t.prompt_id.astype(str).tolist(), "control": c.prompt_id.astype(str).tolist()})


@claim(
    "{model_pair}: the mapped {emotion}-specific direction separates the first model's held-out prompts better "
    "(AUC) than random directions of the second model mapped the same way",
    family="q2_alignment_transfer_vs_random", alternative="greater", min_d=1.0,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_alignment_mapped_direction_beats_random_directions(model_pair, emotion, alignment, evidence):
    row, _, metrics = _transfer(alignment, emotion)
    evidence.record_null(observed=row.mapped_auc, null=alignment.null(emotion, "transfer", "random_direction_auc"),
                         metrics=metrics)


@pytest.mark.parametrize("contrast", CONTRASTS)
def test_alignment_best_k_beats_its_neighbours(model_pair, contrast, alignment, emocheck_profile):
    """The k selection (prompt bootstrap of the calibrated overlap, written to
    results/<profile>/statistics/k_selection.csv with the curves in k_curves.png): the best k is
    chosen on one random half of the held-out prompts and must beat each neighbour on the OTHER half
    (one-sided p < 0.05), and lie above the null band. The seed expects k = 2; which k wins, and
    whether it is distinguishable at all, is the finding."""
    from emocheck.profiles import results_dir

    path = results_dir(emocheck_profile, "statistics") / "k_selection.csv"
    assert path.is_file() and (alignment.out_dir / "k_curves.png").is_file()
    ks = alignment.tables["k_selection"]
    ks = ks[ks.contrast == contrast]
    best = ks[ks.best.astype(bool)].iloc[0]
    p_nb = np.nanmax([best.p_best_vs_smaller_k, best.p_best_vs_larger_k])
    assert best.ci_low > best.null_high and p_nb < 0.05, (
        f"{contrast}: best k = {int(best.k)} (calibrated score {best['mean']:.3f}, 95% CI [{best.ci_low:.3f}, "
        f"{best.ci_high:.3f}], null band up to {best.null_high:.3f}); bootstrap p that it does not beat its "
        f"neighbours = {p_nb:.3f}; p_best = {best.p_best:.2f}")


def test_alignment_outlier_dimensions_do_not_drive_the_fit(model_pair, alignment):
    """With the top-5 outlier (massive) dimensions of each model removed before standardising, every
    k=2 overlap keeps its verdict against the emotion claim's null (random groups) at p < 0.05
    (variants.csv has all of them: map fitted on neutral / all prompts x outliers kept / removed x
    ridge / Procrustes / CCA)."""
    v = alignment.tables["variants"]
    v = v[(v["map"] == alignment.config.map_kind) & (v.fit_on == alignment.config.fit_on) & (v.contrast != "transfer_auc")]
    kept = v[v.outlier_dims_removed == 0].set_index(["emotion", "contrast"])
    removed = v[v.outlier_dims_removed > 0].set_index(["emotion", "contrast"])
    col = f"{EMOTION_NULL}_p"
    flips = [f"{i}: p {kept.loc[i, col]:.3f} -> {removed.loc[i, col]:.3f}"
             for i in kept.index if (kept.loc[i, col] < 0.05) != (removed.loc[i, col] < 0.05)]
    assert not flips, "removing the outlier dimensions changes verdicts:\n" + "\n".join(flips)
