"""Defined behaviour on edge inputs (see emocheck/evaluators/base.py for the contract)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emocheck.evaluators import get_evaluator

EMBEDDED = ("sentiment", "sentiment-vader", "politeness", "emotion")


@pytest.fixture(scope="module", params=EMBEDDED)
def ev(request):
    return get_evaluator(request.param)


def test_empty_and_whitespace_give_nan_with_flag(ev):
    df = ev.score(["", "   \n\t", "a normal sentence about lunch"])
    labels = list(ev.labels) + ([ev.summary] if ev.summary else [])
    assert df.loc[:1, labels].isna().all().all()
    assert np.isfinite(df.loc[2, labels].to_numpy(dtype=float)).all()
    assert df["empty"].tolist() == [True, True, False]


def test_empty_list_gives_empty_frame(ev):
    df = ev.score([])
    assert len(df) == 0 and set(ev.labels) <= set(df.columns)
    assert df.attrs["model_id"] == ev.model_id


@pytest.mark.parametrize("bad", [None, 3, 1.5, float("nan"), b"bytes", ["nested"]])
def test_non_str_element_raises_typeerror_naming_index(ev, bad):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        ev.score(["fine", bad, "also fine"])


def test_bare_string_is_rejected(ev):
    with pytest.raises(TypeError, match="wrap it in a list"):
        ev.score("a single text")


def test_series_and_tuple_inputs(ev):
    s = pd.Series(["thanks a lot", "go away"], index=[10, 20])
    a = ev.score(s)
    b = ev.score(("thanks a lot", "go away"))
    assert list(a.index) == [0, 1]
    pd.testing.assert_frame_equal(a, b)


def test_very_long_text_is_truncated_and_flagged(ev):
    long = "Thank you so much for everything you did for us. " * 400
    df = ev.score([long, "short text"])
    labels = list(ev.labels)
    assert np.isfinite(df.loc[0, labels].to_numpy(dtype=float)).all()
    if ev.backend == "minilm-head":
        assert df["truncated"].tolist() == [True, False]
    else:  # VADER reads the whole text
        assert not df["truncated"].any()


@pytest.mark.parametrize("text", [
    "Vielen Dank für Ihre Hilfe!",  # German
    "ありがとうございます",  # Japanese
    "Спасибо большое",  # Russian
    "😀😀😀 🙏",
    "!!!???...",
    "12345 67890",
    "<html><body>hi</body></html>",
    "\x00\x01 control chars",
])
def test_non_english_and_odd_text_gives_finite_scores(ev, text):
    df = ev.score([text])
    assert np.isfinite(df[list(ev.labels)].to_numpy(dtype=float)).all()
    assert not df.loc[0, "empty"]


@pytest.mark.parametrize("text", [
    "and then i said thank you to the",  # lowercase fragment, no final punctuation
    "thank thank thank thank thank thank thank thank",  # degenerate repetition
    "the the the the the the the the the the the the",
    "of course, and",
    ",",
])
def test_generated_style_fragments(ev, text):
    df = ev.score([text, text])
    vals = df[list(ev.labels)].to_numpy(dtype=float)
    assert np.isfinite(vals).all()
    assert np.array_equal(vals[0], vals[1])


def test_single_text_convenience(ev):
    d = ev.score_one("thanks, that was kind")
    assert set(ev.labels) <= set(d)
    assert all(isinstance(v, float) for v in d.values())
