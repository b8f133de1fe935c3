"""The NRC word-list instrument: offline, through the registry, densities counted by hand, clear errors."""
import json

import numpy as np
import pytest

from emocheck.errors import ModelUnavailableError
from emocheck.evaluators import available_evaluators, get_evaluator
from emocheck.evaluators import lexicon
from emocheck.evaluators.lexicon import NRC_LABELS, NRCLexiconEvaluator, nrc_lexicon_path


def test_registered_and_reads_the_packaged_word_list():
    assert "emotion-nrc" in available_evaluators()
    ev = get_evaluator("emotion-nrc")
    assert isinstance(ev, NRCLexiconEvaluator) and ev.labels == NRC_LABELS and ev.summary == "score"
    words = json.loads(nrc_lexicon_path().read_text())
    assert ev.n_words > 5000 and "anger" in words["furious"]
    assert ev.model_id.startswith("nrclex==") and "nrc_en.json@" in ev.model_id


def test_scores_are_per_token_densities_counted_by_hand():
    ev = get_evaluator("emotion-nrc")
    words = json.loads(nrc_lexicon_path().read_text())
    text = "I am furious, so furious about the abandoned car"   # every word as listed (no inflection)
    toks = lexicon.tokens(text)
    want = {lab: sum(lab in words.get(t, []) for t in toks) / len(toks) for lab in NRC_LABELS}
    got = ev.score([text]).iloc[0]
    for lab in NRC_LABELS:
        assert got[lab] == pytest.approx(want[lab]), lab
    assert got["score"] == pytest.approx(want["positive"] - want["negative"])
    assert got["anger"] > 0 and not got["empty"]


def test_inflections_are_found_and_empty_text_is_nan():
    ev = get_evaluator("emotion-nrc")
    assert ev.score(["angered"])["anger"].iloc[0] == ev.score(["anger"])["anger"].iloc[0] == 1.0
    df = ev.score(["", "The bus leaves at 4 pm."])
    assert np.isnan(df["anger"].iloc[0]) and df["empty"].iloc[0]
    assert df["anger"].iloc[1] == 0.0


def test_separates_angry_from_neutral_sentences():
    ev = get_evaluator("emotion-nrc")
    angry = ["I am furious and outraged at this disgrace.", "This is infuriating, I hate it.", "Livid. Absolutely livid."]
    calm = ["The meeting is at noon in room 4.", "Please find the report attached.", "The train is on platform two."]
    a, c = ev.score(angry)["anger"].to_numpy(), ev.score(calm)["anger"].to_numpy()
    assert a.min() > c.max()


def test_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(lexicon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailableError, match="pip install nrclex"):
        NRCLexiconEvaluator()
