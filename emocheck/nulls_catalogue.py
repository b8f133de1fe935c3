"""What every claim family asserts, what else could produce the same evidence, and which simulation
plants that alternative (the source of docs/nulls.md: `python -m emocheck.nulls_catalogue > docs/nulls.md`;
tests/test_nulls_catalogue.py checks that every family declared in hypotheses/ has an entry and that
the page is this module's rendering).

status:
    calibrated   a simulation through the project's own functions plants the strongest alternative
                 named here and the family is supported in at most alpha of it
    rule only    the verdict rule is calibrated for the family's design, but the alternative named
                 here is not planted through the pipeline (the label-shuffled run covers it end to end)
    known gap    the named alternative is known to pass the current code (who closes it is said)
emotion: whether the family asserts emotion structure (it must then be supported in at most its alpha
share of label-shuffled runs, `emocheck.shuffled_labels`), and if not, why not.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    family: str
    module: str
    asserts: str          # one sentence: what a supported claim says
    alternative: str      # what else could produce the same evidence (the strongest null named)
    simulation: str       # file::test that plants the alternative (or the rule's calibration)
    status: str           # calibrated | rule only | known gap
    closed_by: str        # what closes a gap ('' when calibrated)
    emotion: bool         # asserts emotion structure
    why_not_emotion: str = ""


_REP = "hypotheses/test_q1_write_in.py"
_LEX = "hypotheses/test_q1_lexical.py"
_TWO_SAMPLE = ("tests/test_calibration.py::test_unequal_groups_are_calibrated_for_both_variance_ratios "
               "(the rule); end to end: the label-shuffled run")
_PAIRED_RANDOM = ("tests/test_patching_scoring.py::test_directions_as_random_effect_null_is_calibrated_and_old_design_is_not "
                  "(population-mean null only)")
_SPECIAL = "branch g29b: tests against the control distribution (treated drawn from it), not its mean"
_NONINF = ("non-inferiority: it asserts the ABSENCE of a fluency cost beyond a margin; two interventions "
           "that do nothing are non-inferior, so it may rightly be supported on label-shuffled data")

FAMILIES: tuple[Family, ...] = (
    # ---------------------------------------------------------------- Q1 representations
    Family("q1_vs_neutral", _REP,
           "A direction built from training prompts separates held-out emotion prompts from neutral ones (d > 1).",
           "Anything that differs between emotional and neutral texts: affect words, first person, genre, length "
           "(it is the easy test on purpose; the lexical families check the words).",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run", True),
    Family("q1_vs_other", _REP,
           "The emotion-minus-neutral and the emotion-specific directions separate held-out prompts of the "
           "emotion from the other emotions (d > 0.5).",
           "The emotion's keywords, the trigger's position (it ends 97/210 anger prompts, 8/210 apology) and "
           "topic or genre imbalance between the groups.",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run; q1_position and q1_masked check "
           "position and words", True),
    Family("q1_write_in", _REP,
           "At the write-in layer chosen on training prompts the emotion-specific direction already separates "
           "held-out prompts from the other emotions.",
           "As q1_vs_other (the layer is chosen on training prompts only, so selection is apart from the judgement).",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run", True),
    Family("q1_position", _REP,
           "The emotion-specific direction separates the emotions on held-out prompts whose trigger does not end "
           "the prompt.",
           "Keywords and topic imbalance (the position confound is removed by the stratum).",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run", True),
    Family("q1_read_out", _REP,
           "The last layer's emotion-specific direction, read through the unembedding, ranks the emotion's own "
           "words above the other emotions' words more than 1000 random unit directions do.",
           "Any direction built from these prompts' activations lives in the high-variance, anisotropic part of "
           "the residual stream, which isotropic random directions do not; a label-permuted difference-of-means "
           "direction would be the stronger null.",
           "tests/test_q1_analysis.py::test_read_out_ranks_a_planted_direction_first_and_a_random_one_anywhere; "
           "tests/test_calibration.py::test_null_distribution_claims_are_calibrated (the rule)",
           "known gap", "not assigned: a label-permuted direction null", True),
    Family("q1_beats_words", _LEX,
           "The direction's held-out AUC exceeds that of a word n-gram classifier trained on the same prompts.",
           "Two scorers of equal accuracy (the paired permutation null swaps their scores per prompt).",
           "tests/test_lexical.py::test_delong_and_permutation_are_calibrated_under_a_planted_null; "
           "tests/test_lexical.py::test_beats_words_tie_rule_is_calibrated_when_both_scorers_separate_perfectly",
           "calibrated", "", True),
    Family("q1_implicit", _LEX,
           "The direction separates held-out IMPLICIT emotion prompts (emotion not named) from the contrast.",
           "Words that imply the emotion without naming it, topic and genre imbalance among implicit prompts.",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run", True),
    Family("q1_beats_words_implicit", _LEX,
           "On implicit prompts the direction's AUC exceeds the word classifier's.",
           "Two scorers of equal accuracy on implicit prompts.",
           "tests/test_lexical.py::test_delong_and_permutation_are_calibrated_under_a_planted_null",
           "calibrated", "", True),
    Family("q1_masked", _LEX,
           "With the trigger span masked, the direction still separates held-out emotion prompts from the contrast.",
           "Emotion words outside the trigger span, the mask token's own position, topic imbalance.",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run", True),
    Family("q1_transfer", "hypotheses/test_q1_transfer.py",
           "A direction and layer learned on one dataset separate the emotion on every prompt of another.",
           "Shared surface features of the two datasets' emotion prompts (the same keywords, registers).",
           _TWO_SAMPLE, "rule only", "a label-shuffled run of both datasets", True),
    # ---------------------------------------------------------------- Q1 heads
    Family("q1_heads_writers", "hypotheses/test_q1_heads.py",
           "The top-8 heads ranked on training prompts write more of the final-layer emotion direction on held-out "
           "prompts than 1000 random 8-head sets from the same layers.",
           "Selection reuse: heads are ranked on the training mean difference (training neutral mean included) and "
           "judged against that same neutral mean with a training direction, so noise in the mean carries from "
           "selection into evaluation (review: raw p <= .05 in 53-86% of no-signal data sets, supported up to 42%).",
           "tests/test_heads_nulls.py::test_monte_carlo_p (the p only; the selection is not re-run)",
           "known gap", "branch g29b: ranking, reference and judgement on disjoint prompts", True),
    Family("q1_heads_trigger", "hypotheses/test_q1_heads.py",
           "The head with the largest training trigger-attention d attends more to the trigger on held-out emotion "
           "prompts than on held-out neutral prompts.",
           "Heads that attend to any salient phrase at the trigger's position (neutral prompts' 'trigger' is a "
           "content phrase); the head is chosen on training prompts only.",
           _TWO_SAMPLE, "rule only", "the lead's label-shuffled ci run", True),
    # ---------------------------------------------------------------- Q2
    Family("q2_alignment_emotion_vs_random_groups", "hypotheses/test_q2_alignment.py",
           "Through the map, the emotion's subspaces of the two models overlap more than the subspaces of random "
           "groups of the same held-out prompts (the emotion group's size, taken in both models).",
           "Two models that share prompt content and no emotion structure (random labels): map quality and shared "
           "content are held fixed by the null itself, whose draws are exchangeable with the emotion groups then.",
           "tests/test_alignment_shared_content.py::test_emotion_claim_is_calibrated_when_models_share_only_content "
           "(2/50 families supported, alpha 0.05); power: ::test_planted_shared_emotion_has_power_and_unshared_emotion_does_not "
           "(49/100 families at a shared emotion shift of length 8, content SDs 3 to 1); the review's design: ::test_review_design",
           "calibrated", "", True),
    Family("q2_alignment_overlap_vs_shuffled_pairing", "hypotheses/test_q2_alignment.py",
           "The map learned a prompt-specific relation: the overlap through it beats maps fitted on shuffled "
           "prompt pairings (map quality, not shared emotion).",
           "Shared prompt content alone beats it (41/50 simulated families without emotion structure); its "
           "statement says so, and emotion sharing is q2_alignment_emotion_vs_random_groups.",
           "tests/test_alignment_shared_content.py::test_shuffled_pairing_measures_the_map_not_the_emotion; "
           "tests/test_alignment_planted.py::test_label_permuted_null_is_calibrated_under_no_relation",
           "calibrated", "", False,
           "it asserts that the map learned something; two models sharing prompt content support it without "
           "any emotion structure"),
    Family("q2_alignment_transfer", "hypotheses/test_q2_alignment.py",
           "The second model's emotion-specific direction, mapped, separates the first model's held-out emotion "
           "prompts from the other emotions with AUC > 0.8.",
           "Emotion-correlated surface content (keywords) that both models read and the map carries; not "
           "simulated under shared content.",
           "tests/test_alignment_planted.py::test_no_relation_stays_at_the_null; " + _TWO_SAMPLE,
           "rule only", "the lead's label-shuffled ci run", True),
    Family("q2_alignment_transfer_vs_random", "hypotheses/test_q2_alignment.py",
           "The mapped emotion direction separates the held-out prompts better (AUC) than random source "
           "directions mapped the same way.",
           "A direction trained on any grouping of these prompts lies in the high-variance subspace that random "
           "isotropic directions rarely reach; a label-permuted direction would be the stronger null.",
           "tests/test_alignment_planted.py::test_no_relation_stays_at_the_null",
           "known gap", "not assigned: a label-permuted direction null", True),
    # ---------------------------------------------------------------- Q3 residual patching
    Family("q3_residual_patching", "hypotheses/test_q3_residual_patching.py",
           "Adding the emotion vector while generating moves the emotion's evaluator score versus random "
           "directions, label-permuted vectors, random subspaces, the baseline, the negated and the other "
           "emotions' vectors, and prompting.",
           "Direction-to-direction variance: the treated vector as one more draw of its control population "
           "(review: supported 7-35% where the test asks only whether it beats the population mean); on Gemma "
           "the dose-matched claims duplicate the vs-random claims.",
           _PAIRED_RANDOM, "known gap", _SPECIAL, True),
    Family("q3_patching_fluency", "hypotheses/test_q3_residual_patching.py",
           "The patched continuations are not less fluent than the baseline's beyond a margin (NLL, repeated 3-grams).",
           "None about emotion: a patch that changes nothing is non-inferior.",
           "tests/test_patching_scoring.py::test_noninferiority_shifts_by_margin; "
           "tests/test_calibration.py::test_paired_power_matches_the_analytic_power",
           "calibrated", "", False, _NONINF),
    Family("q3_propagation", "hypotheses/test_q3_residual_patching.py",
           "Patching the emotion vector moves the last layer's projection on the emotion direction more than "
           "random or label-permuted vectors of the same norm.",
           "Close to true by construction: an added direction persists in the residual stream and is read back on "
           "itself, with no emotion processing needed.",
           _PAIRED_RANDOM, "known gap", "rewording or a control patched with its own read-out (not assigned); "
           + _SPECIAL, True),
    # ---------------------------------------------------------------- Q3 heads
    Family("q3_heads_ablation", "hypotheses/test_q3_heads.py",
           "Mean-ablating the top-8 heads lowers the final-layer emotion projection on held-out prompts more than "
           "ablating random 8-head sets from the same layers.",
           "The chosen set as one more draw of the random sets (compare_directions tests the sets' mean: review "
           "10-34% under exchangeable sets); the training neutral mean shared by ranking and ablation.",
           "tests/test_calibration.py::test_directions_null_is_calibrated (population-mean null only)",
           "known gap", _SPECIAL + "; disjoint prompts for ranking and reference", True),
    Family("q3_heads_patch_in", "hypotheses/test_q3_heads.py",
           "Patching the top-8 heads' mean emotion output into neutral prompts raises the projection more than "
           "random 8-head sets.",
           "As q3_heads_ablation.",
           "tests/test_calibration.py::test_directions_null_is_calibrated (population-mean null only)",
           "known gap", _SPECIAL, True),
    Family("q3_heads_ablation_resample", "hypotheses/test_q3_heads.py",
           "Resample-ablating the top-8 heads lowers the projection more than resample-ablating random sets.",
           "As q3_heads_ablation.",
           "tests/test_calibration.py::test_directions_null_is_calibrated (population-mean null only)",
           "known gap", _SPECIAL, True),
    Family("q3_heads_specificity", "hypotheses/test_q3_heads.py",
           "Ablating an emotion's own top-8 heads lowers its projection more than ablating another emotion's top-8.",
           "Each set was ranked on the direction it is read on, so any set ranked on a direction moves that "
           "direction more; the sets share heads.",
           "tests/test_calibration.py::test_paired_power_matches_the_analytic_power (the rule)",
           "known gap", "branch g29b: selection apart from evaluation", True),
    Family("q3_heads_generation", "hypotheses/test_q3_heads.py",
           "Writing the top-8 heads' mean emotion output into neutral generations raises the emotion's evaluator "
           "score more than a fresh random 8-head set per prompt.",
           "The chosen set as one more draw of the random sets (a paired t on one fresh draw per prompt tests "
           "the sets' mean).",
           _PAIRED_RANDOM, "known gap", _SPECIAL, True),
    Family("q3_heads_generation_fluency", "hypotheses/test_q3_heads.py",
           "Continuations with the top-8 heads patched in are not less fluent than the baseline's beyond a margin.",
           "None about emotion.",
           "tests/test_patching_scoring.py::test_noninferiority_shifts_by_margin",
           "calibrated", "", False, _NONINF),
    # ---------------------------------------------------------------- Q8 circuits
    Family("q8_circuits_faithfulness", "hypotheses/test_q8_circuits.py",
           "The attribution-ranked circuit recovers more of the final-layer projection on held-out prompts, "
           "everything else mean-ablated, than random circuits of the same size and layer profile.",
           "Selection reuse: the same training neutral mean ranks the components and serves as the held-out "
           "ablation reference; random circuits are not matched on heads vs MLPs (review: 'beats random "
           "circuits' close to guaranteed by construction). Its K is sized to the family here.",
           "tests/test_circuits_calibration.py::test_exchangeable_null_supports_at_most_alpha (components drawn "
           "independently: cannot see the selection reuse)",
           "known gap", "branch g29b: disjoint prompts, matched random circuits, the selection re-run in the null", True),
    Family("q8_circuits_completeness", "hypotheses/test_q8_circuits.py",
           "Mean-ablating only the circuit leaves less of the projection than ablating random circuits.",
           "As q8_circuits_faithfulness.",
           "tests/test_circuits_calibration.py::test_exchangeable_null_supports_at_most_alpha",
           "known gap", "branch g29b", True),
    Family("q8_circuit_modulation", "hypotheses/test_q8_circuits.py",
           "Patching the circuit into neutral generations moves the emotion's target score versus random circuits "
           "(random effect) and versus the baseline.",
           "The circuit as one more draw of random circuits (the test is on their mean); any patch of that size "
           "moves style (hence the random circuits).",
           "tests/test_calibration.py::test_directions_null_is_calibrated (population-mean null only)",
           "known gap", _SPECIAL, True),
    Family("q8_circuit_vs_steering_prompting", "hypotheses/test_q8_circuits.py",
           "Patching the circuit moves the target score more than (or, non-inferiority, at least as much as) "
           "residual steering and prompting.",
           "Different doses and fluency costs of the two interventions; two null interventions are equal.",
           "tests/test_calibration.py::test_paired_power_matches_the_analytic_power (the rule)",
           "rule only", "the lead's label-shuffled ci run", False,
           "it compares two interventions; its non-inferiority member is rightly supported when both do nothing "
           "(on label-shuffled data both vectors and circuits are built from random groups)"),
    Family("q8_circuit_fluency", "hypotheses/test_q8_circuits.py",
           "Circuit-patched continuations are not less fluent than the baseline's beyond a margin.",
           "None about emotion.",
           "tests/test_patching_scoring.py::test_noninferiority_shifts_by_margin",
           "calibrated", "", False, _NONINF),
    # ---------------------------------------------------------------- evaluators
    Family("evaluator_vs_neutral", "hypotheses/test_evaluator_validity.py",
           "Each instrument scores an emotion's prompts higher (or lower) than neutral prompts (d > 0.5).",
           "Any affective or first-person wording (the easy test).",
           _TWO_SAMPLE, "rule only", "", False,
           "it is about the instrument, not a model: the precondition of phases 5-8's measurements; on the "
           "label-shuffled dataset its labels are wrong, so it fails there as it should, and that says nothing "
           "about the models"),
    Family("evaluator_specificity", "hypotheses/test_evaluator_validity.py",
           "Each instrument separates the target emotion from the other emotions.",
           "A scorer that reacts to any affective first-person text fails it; keywords shared across emotions.",
           _TWO_SAMPLE, "rule only", "", False,
           "as evaluator_vs_neutral: a property of the instrument on labelled prompts"),
)


def by_family() -> dict[str, Family]:
    return {f.family: f for f in FAMILIES}


def render_markdown() -> str:
    """docs/nulls.md."""
    lines = [
        "# Nulls: what each claim family asserts, and what else could produce it",
        "",
        "Every claim family is judged against a null. A supported claim can be published only if the",
        "strongest alternative explanation of its evidence was planted in a simulation that runs the",
        "project's own functions, and the family came out supported in at most its alpha share of it.",
        "This page is generated from `emocheck/nulls_catalogue.py` (`python -m emocheck.nulls_catalogue > "
        "docs/nulls.md`); a test keeps the two identical and checks every family in `hypotheses/` is listed.",
        "",
        "**Status**: *calibrated* - the alternative is planted through the pipeline and the family stays at "
        "alpha; *rule only* - the verdict rule is calibrated for the design, the alternative is not planted "
        "through the pipeline (the label-shuffled run covers it end to end); *known gap* - the alternative is "
        "known to pass the current code, and what closes it is named.",
        "",
        "## The end-to-end null: label-shuffled data",
        "",
        "`python -m emocheck.shuffled_labels --seed 0 --out results/label_shuffled_0.csv` writes a copy of the "
        "prompts in which every real emotion (neutral included) is dealt out evenly over all labels, so every "
        "label group holds the same mix of real emotions (`true_emotion` keeps the real label; "
        "`--keep-neutral` deals out only the emotional prompts). Then",
        "",
        "```",
        "pytest hypotheses/ --emocheck-dataset results/label_shuffled_0.csv --emocheck-profile ci",
        "```",
        "",
        "Every family marked *emotion: yes* below should be supported in at most its alpha share of such "
        "runs (a few seeds).",
        "",
        "## Families",
        "",
        "| family | asserts | what else could produce it | simulation | status | emotion |",
        "|---|---|---|---|---|---|",
    ]
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    for f in FAMILIES:
        status = f.status + (f" ({f.closed_by})" if f.closed_by else "")
        emotion = "yes" if f.emotion else "no"
        lines.append(f"| `{f.family}` | {esc(f.asserts)} | {esc(f.alternative)} | {esc(f.simulation)} | "
                     f"{esc(status)} | {emotion} |")
    lines += ["", "## Families that do not assert emotion structure", ""]
    for f in FAMILIES:
        if not f.emotion:
            lines.append(f"- `{f.family}`: {f.why_not_emotion}.")
    lines += [
        "",
        "## Phase 4: which null answers which question",
        "",
        "Two models that read the same prompts share their content, whatever the labels say. The review's "
        "simulation (two models x_A = z R_A + noise, x_B = z R_B + noise with a shared 40-dim content z, random "
        "emotion labels; PCA 64 on training rows, ridge map on training neutral rows, subspaces of held-out "
        "rows, overlap at k = 2) is `emocheck.alignment.calibration.simulate_overlap_claims` on "
        "`emocheck.alignment.synthetic.shared_content_pair`:",
        "",
        "- **shuffled pairing** (maps fitted on prompts paired at random) is beaten in 41 of 50 families "
        "without any emotion structure (small design), and in the review's design (80 data sets per "
        "spectrum, 199 draws) 91% (flat) and 98% (decaying) of claims, every family: it shows the map "
        "learned something, and its claim now says only that.",
        "- **label-permuted** (labels shuffled in the source model only, the target's true group kept) is "
        "beaten in 10 of 50: the observed overlap uses the same prompts in both models, its draws do not. It "
        "is reported as a metric, not claimed.",
        "- **random groups** (one random group of the same held-out prompts, the emotion group's size, taken "
        "in BOTH models and passed through the same map) is exchangeable with the emotion groups under this "
        "null: 2 of 50 families supported (alpha 0.05; 1 of 80 in each spectrum of the review's design). It is the emotion-sharing claim's null. Its claim has min_d 0 (a "
        "rank test): overlaps are at most 1, and with random groups' overlaps near 0.6 +- 0.13 one null SD "
        "above the mean at alpha / 6 is out of reach. Power at a shared emotion (a shift of length 8, against content SDs from 3 to 1, and "
        "a spread of 4 along a second direction, the same in both models): 49 of 100 families (17 of 100 at "
        "a shift of 4); the same emotion structure NOT shared stays at the null. With a perfect map (identical "
        "models up to rotation) every group overlaps fully and nothing can be supported: the data cannot tell "
        "shared emotion from shared everything.",
        "",
        "The best-k check chooses k on one random half of the held-out prompts and tests it against its "
        "neighbours on the other half (`emocheck.alignment.kselect`); testing the argmax on the bootstrap it "
        "was picked from passed 25 of 60 data sets with no best k, the split 1 of 60.",
        "",
        "## Null draws sized to the family",
        "",
        "A Monte-Carlo p cannot go below 1 / (K + 1), and Holm multiplies the family's smallest p by its size "
        "m: with m / (K + 1) >= alpha no claim of the family can be supported whatever the data. "
        "`emocheck.stats.nulls.null_draws_for(m, alpha)` gives K with K + 1 >= 2 m / alpha (an observation "
        "beyond every draw is then supported with half of alpha to spare). Phase 4's overlap nulls "
        "(`emocheck.alignment.run.alignment_config`) and the random circuits "
        "(`emocheck.circuits.experiment.settings`) are sized by it from the profile's models: Q2 with three "
        "models (m = 12) draws 479 shuffled-pairing maps instead of 200 (12 / 201 = 0.06 could never be "
        "supported), circuits at smoke (m = 3) 119 random circuits instead of 39 (3 / 40 = 0.075). A claim "
        "can declare its draws (`@claim(..., null_draws=K)` or `null_draws='module:function'` of the "
        "profile): a family that can never be supported is then a usage error at collection, naming the K "
        "it needs; an undeclared one errors when it is judged.",
        "",
        "## Identical outcomes",
        "",
        "Data with no spread are judged, not refused (`emocheck.stats.compare`): identical paired outcomes "
        "(no difference at all) give d = 0 and p = 1 (not supported); one identical non-zero difference on "
        "every unit gives d = +-inf and the exact sign test (paired, p = 0.5^n) or rank-sum test (independent, "
        "p = 1 / C(n_t + n_c, n_t)) for both p-values, since with zero spread the min_d margin is zero.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
