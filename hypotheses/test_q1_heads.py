"""Q1, phase 6: which attention heads write an emotion into the residual stream, which read its trigger?

Every head of the model is screened in one pass per batch (emocheck.heads.screening): per prompt, its
write at the last token projected on the emotion direction, its attention from the last token to the
trigger tokens, and its direct effect on the final layer's emotion direction. Heads are RANKED on
training prompts; every claim here is judged on HELD-OUT prompts only.

- Writers: the top-8 heads by training direct effect, as a set, against the null of 1000 random sets
  of 8 heads with the same layer profile (emocheck.heads.nulls): the statistic is the Welch t of the
  set's summed first-order (direct-path) contribution to the final-layer projection between held-out
  emotion prompts and HELD-OUT neutral prompts (`emocheck.heads.growth.writers_null`). Held-out
  references: the ranking's training neutral mean would carry its noise into the judgement; a t, not
  the mean in residual units: the ranking prefers large heads, whose mean spreads more than a random
  set's (tests/test_heads_calibration.py has both nulls). The mean effect is reported beside it.
  Judged by `evidence.record_null` (Monte-Carlo p; min_d in null SDs): the chosen set must lie outside
  the distribution of the random sets. This is a statement about what the heads WRITE, not about what removing them
  does downstream (that is Q3, tests/hypotheses/test_q3_heads.py, with exact patching).
- Trigger readers: the head with the largest training d of last-token -> trigger attention attends
  more to the trigger on held-out emotion prompts than on held-out neutral prompts (neutral prompts
  have a content phrase as their "trigger"), independent samples.
"""
import pytest

from emocheck import claim
from emocheck.heads.growth import KINDS, growth_table, out_dir, plot_growth, writers_null
from emocheck.storage import atomic_write_dataframe
from emocheck.study import study_for

EMOTIONS = study_for().emotions


@claim(
    "heads: the top-8 {emotion} heads (ranked on training prompts) separate held-out {emotion} prompts from "
    "held-out neutral prompts by what they write on the final-layer {emotion} direction (Welch t) more than "
    "random sets of 8 heads from the same layers",
    family="q1_heads_writers", alternative="greater", min_d=1.0,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_heads_top_writers_beat_random_sets(model_name, emotion, head_screen, emocheck_profile, evidence):
    h = head_screen
    r = writers_null(h.screen, h.scores, h.reps, list(EMOTIONS), emocheck_profile, emotion)
    evidence.record_null(
        observed=r["observed"], null=r["null"],
        metrics={"heads": ";".join(f"L{a}H{b}" for a, b in r["chosen"]), **r["metrics"],
                 "estimate": "first-order direct path, Welch t held-out emotion vs held-out neutral"},
    )


@claim(
    "heads: the {emotion} head with the largest training trigger-attention d attends more from the last "
    "token to the trigger on held-out {emotion} prompts than on held-out neutral prompts",
    family="q1_heads_trigger", alternative="greater", min_d=0.5,
)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_heads_trigger_reader_generalises(model_name, emotion, head_screen, evidence):
    h = head_screen
    ranked = h.screen.table[(h.screen.table.emotion == emotion) & (h.screen.table.measure == "trigger")]
    best = ranked.sort_values("train_d", ascending=False, kind="stable").iloc[0]
    layer, head = int(best["layer"]), int(best["head"])
    att = h.scores["trigger"][:, layer, head].double().numpy()
    treated = att[h.reps.rows(emotion, "held_out")]
    control = att[h.reps.rows("neutral", "held_out")]
    evidence.record(treated=treated, control=control,
                    metrics={"layer": layer, "head": head, "train_d": float(best["train_d"])})


def test_heads_growth_tables_written(model_name, head_screen, emocheck_profile):
    """The first-order growth curves (n = 1..16 vs 1000 random sets) as CSV + PNG; and a sanity check
    that cannot pass by construction: the top-1 head's observed effect is the largest single-head
    training effect, so on held-out prompts it must at least be positive for every emotion."""
    import pandas as pd

    h = head_screen
    tables = pd.concat([growth_table(h.screen, h.scores, h.reps, list(EMOTIONS), emocheck_profile, k) for k in KINDS],
                       ignore_index=True)
    d = out_dir(emocheck_profile, model_name)
    for k in KINDS:
        atomic_write_dataframe(d / f"growth_{k}.csv", tables[tables.kind == k])
    plot_growth(tables, d / "growth.png", title=f"{model_name}: top-n heads vs random sets of the same layers (first order)")
    top1 = tables[(tables.n == 1) & (tables.kind == "ablate")]
    assert (top1.observed > 0).all(), top1[["emotion", "observed"]].to_string()
