"""Fluency measures: repetition on known strings, perplexity equal to generate's own log-probs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emocheck.patching.fluency import (continuation_nll, distinct_n, fluency_table, perplexity_of_texts,
                              repeated_ngram_fraction, words)
from emocheck.patching.residual import PatchSpec, generate_plain, tokenize_prompts
from emocheck.testing import tiny_model

PROMPTS = ["hello there, my friend", "hi", "a quick test of padding!"]


def test_words_and_repetition():
    assert words("Thank you, THANK you!") == ["thank", "you", ",", "thank", "you", "!"]
    assert distinct_n("a b c d", 2) == 1.0
    assert distinct_n("so so so so", 2) == pytest.approx(1 / 3)
    assert repeated_ngram_fraction("thank thank thank thank thank", 3) == pytest.approx(2 / 3)
    assert repeated_ngram_fraction("the cat sat on the mat", 3) == 0.0
    assert math.isnan(distinct_n("one", 2)) and math.isnan(repeated_ngram_fraction("", 3))


@pytest.fixture(scope="module")
def model():
    return tiny_model("gemma3_text", n_layers=2, seed=2)


def test_nll_equals_generation_logprobs(model):
    """Teacher-forced NLL of a greedy continuation == -mean log p of the chosen tokens during generate."""
    m = model
    input_ids, mask = tokenize_prompts(m, PROMPTS)
    with torch.no_grad():
        out = m.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=6, do_sample=False,
                               output_scores=True, return_dict_in_generate=True, pad_token_id=0,
                               temperature=None, top_p=None, top_k=None)
    new = out.sequences[:, input_ids.shape[1]:]
    lp = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)
    expected = -lp.gather(-1, new[..., None])[..., 0].mean(1).double().numpy()
    got = continuation_nll(m, input_ids, mask, new, torch.full((len(PROMPTS),), new.shape[1]))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Only the first `length` tokens count: garbage after them changes nothing.
    junk = new.clone()
    junk[:, 3:] = 5
    a = continuation_nll(m, input_ids, mask, new, torch.full((3,), 3))
    b = continuation_nll(m, input_ids, mask, junk, torch.full((3,), 3))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # Chunking (tiny logit budget -> one row per chunk) gives the same numbers.
    c = continuation_nll(m, input_ids, mask, new, torch.full((3,), 6), max_logit_elements=1)
    np.testing.assert_allclose(c, got, rtol=1e-5, atol=1e-5)


def test_fluency_table_columns(model):
    res = generate_plain(model, PROMPTS, PatchSpec(layers=(0,), max_new_tokens=6, window=(0, 2)))
    t = fluency_table(model, res)
    assert list(t.columns) == ["nll", "ppl", "distinct2", "rep3", "n_tokens", "hit_eos", "n_words"]
    assert len(t) == 3 and np.all(np.isfinite(t["nll"])) and np.allclose(t["ppl"], np.exp(t["nll"]))


def test_perplexity_of_texts(model):
    ppl = perplexity_of_texts(model, ["hello"], ["abc"])
    assert ppl.shape == (1,) and ppl[0] > 1
