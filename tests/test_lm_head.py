"""The vocabulary-block LM head (emocheck.patching.lm_head) against the plain head."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emocheck.patching import lm_head
from emocheck.patching.engine import generate_fast
from emocheck.patching.fluency import continuation_nll
from emocheck.patching.lm_head import VocabHead
from emocheck.patching.reference import generate_patched_hooks
from emocheck.patching.residual import PatchSpec
from emocheck.testing import tiny_model


def plain_logits(head: VocabHead, hidden):
    logits = torch.nn.functional.linear(hidden, head.weight, head.bias).float()
    return torch.tanh(logits / head.softcap) * head.softcap if head.softcap else logits


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("bias", [False, True])
def test_greedy_in_blocks_equals_argmax_with_ties_and_banned_ids(softcap, bias):
    g = torch.Generator().manual_seed(0)
    vocab, d = 53, 16
    weight = torch.randn(vocab, d, generator=g)
    weight[40] = weight[3]                 # rows 3 and 40 always tie: argmax must keep 3
    weight[11] = weight[9]                 # a tie inside one block and across blocks below
    b = torch.randn(vocab, generator=g) if bias else None
    if b is not None:
        b[40], b[11] = b[3], b[9]
    hidden = torch.randn(64, d, generator=g)
    hidden[:8] = weight[3] * 5             # rows whose maximum is the tied pair
    hidden[8:16] = weight[9] * 5
    for block in (1, 7, 8, 53, 100):
        head = VocabHead(weight, b, softcap, vocab_block=block)
        logits = plain_logits(head, hidden)
        assert torch.equal(head.greedy(hidden), logits.argmax(-1)), block
        banned = torch.tensor([3, 9, 50])
        masked = logits.clone()
        masked[:, banned] = -float("inf")
        got = head.greedy(hidden, banned=banned)
        assert torch.equal(got, masked.argmax(-1)), block
        assert not torch.isin(got, banned).any()
    assert (VocabHead(weight, b, softcap, vocab_block=7).greedy(hidden[:8]) == 3).all()


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_log_probs_in_blocks_equal_log_softmax(softcap):
    g = torch.Generator().manual_seed(1)
    vocab, d = 61, 16
    weight, b = torch.randn(vocab, d, generator=g), torch.randn(vocab, generator=g)
    hidden = torch.randn(37, d, generator=g) * 3
    targets = torch.randint(0, vocab, (37,), generator=g)
    targets[:3] = torch.tensor([0, vocab - 1, 7])       # first and last entries of the vocabulary
    for block, token_block in ((1, 1), (7, 5), (61, 64), (200, 8)):
        head = VocabHead(weight, b, softcap, vocab_block=block)
        want = torch.log_softmax(plain_logits(head, hidden), -1).gather(-1, targets[:, None])[:, 0]
        got = head.log_probs(hidden, targets, token_block=token_block)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_head_of_a_model_and_the_fallback():
    m = tiny_model("gemma3_text", n_layers=2, seed=0)
    head = VocabHead.of(m.model, m.config)
    assert head is not None and head.vocab == m.config.vocab_size
    assert head.softcap == m.config.final_logit_softcapping or (head.softcap is None and not m.config.final_logit_softcapping)
    m.model.lm_head = torch.nn.Identity()            # not a Linear: the engine keeps the model's forward
    assert VocabHead.of(m.model, m.config) is None


@pytest.mark.parametrize("family,softcap", [("llama", None), ("gemma3_text", None), ("gemma3_text", 2.0), ("gpt2", None)])
def test_engine_with_small_vocab_blocks_equals_plain_hooks(family, softcap, monkeypatch):
    """Tiny vocabularies fit one block; with 7-entry blocks the engine's decode and fluency run the
    block code through many blocks and must still give the plain-hook tokens and the second-forward NLL."""
    m = tiny_model(family, n_layers=3, seed=2)
    if softcap:
        m.model.config.final_logit_softcapping = softcap
    monkeypatch.setattr(lm_head, "VOCAB_BLOCK", 7)
    monkeypatch.setattr(lm_head, "TOKEN_BLOCK", 5)
    g = torch.Generator().manual_seed(3)
    texts = ["hello there, my friend", "hi", "a quick test of padding!"] * 3
    rows = torch.randn(len(texts), m.config.hidden_size, generator=g) * 3
    rows[:3] = 0
    for stop_at_eos in (True, False):
        spec = PatchSpec(layers=(1,), alpha=1.5, window=(0, 4), max_new_tokens=8, stop_at_eos=stop_at_eos)
        ref = generate_patched_hooks(m, texts, spec, rows)
        fast = generate_fast(m, texts, spec, rows, max_rows=4)
        assert torch.equal(fast.new_tokens, ref.new_tokens)
        nll = continuation_nll(m, ref.input_ids, ref.attention_mask, ref.new_tokens, ref.lengths)
        np.testing.assert_allclose(fast.meta["continuation_nll"], nll, rtol=1e-5, atol=1e-5)
