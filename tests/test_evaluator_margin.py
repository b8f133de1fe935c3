"""The emotion-margin instrument: each label's log-odds over the strongest other emotion (floored),
computed from the emotion head's own scores; its own model id and cache entries."""
import numpy as np

from emocheck.evaluators import get_evaluator
from emocheck.evaluators.minilm import MARGIN_FLOOR

TEXTS = ["Thank you so much for fixing the heating on a Sunday.", "I'm furious that they lost my parcel again.",
         "I'm so sorry I broke your mug, I'll buy you a new one.", "The meeting is moved to room 4."]


def test_margin_is_label_log_odds_minus_the_strongest_other_emotion():
    plain, margin = get_evaluator("emotion"), get_evaluator("emotion-margin")
    P = plain.score_array(TEXTS)
    Z = np.log(P / (1 - P))
    emo = [j for j, lab in enumerate(plain.labels) if lab != "neutral"]
    floor = np.log(MARGIN_FLOOR / (1 - MARGIN_FLOOR))
    M = margin.score_array(TEXTS)
    for j in range(len(plain.labels)):
        others = [k for k in emo if k != j]
        np.testing.assert_allclose(M[:, j], Z[:, j] - np.maximum(Z[:, others].max(1), floor), atol=1e-6)
    g, a, r = (plain.labels.index(x) for x in ("gratitude", "anger", "remorse"))
    assert M[0, g] > M[1:, g].max() and M[1, a] > M[[0, 2, 3], a].max() and M[2, r] > M[[0, 1, 3], r].max()
    assert margin.model_id != plain.model_id and margin.fingerprint != plain.fingerprint
    assert margin.model_id.startswith(plain.model_id.split("+v")[0])     # same head file
