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
    # Small integers: every logit is an exact sum in float32 whatever the GEMM's order or blocking,
    # so the planted ties are exact on any CPU and the test checks the tie rule, not a kernel's rounding.
    g = torch.Generator().manual_seed(0)
    vocab, d = 53, 16
    weight = torch.randint(-4, 5, (vocab, d), generator=g).float()
    weight[40] = weight[3]                 # rows 3 and 40 always tie: argmax must keep 3
    weight[11] = weight[9]                 # a tie inside one block and across blocks below
    b = torch.randint(-4, 5, (vocab,), generator=g).float() if bias else None
    if b is not None:
        b[40], b[11] = b[3], b[9]
    hidden = torch.randint(-4, 5, (64, d), generator=g).float()
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
    if softcap is None:                    # (a softcap of 3 saturates these integer logits: more ties)
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


def _screened_head(weight, monkeypatch, block=64):
    monkeypatch.setattr(lm_head, "SCREEN_MIN_VOCAB", 1)
    return VocabHead(weight, None, None, vocab_block=block)


@pytest.mark.parametrize("scale", [0.05, 1.0, 30.0])
def test_bfloat16_logits_are_within_the_screens_error_bound(scale):
    """The bound the screen's proof uses, as the code computes it, against float64 logits: bfloat16
    inputs, the GEMM's accumulation and its bfloat16 output (and the float32 path's own error)."""
    g = torch.Generator().manual_seed(4)
    vocab, d = 3000, 640
    weight = torch.randn(vocab, d, generator=g) * scale / d ** 0.5
    weight[:10] *= 3                         # a few long rows: the bound uses the longest
    hidden = torch.randn(48, d, generator=g) * torch.logspace(-2, 2, 48)[:, None]
    exact = hidden.double() @ weight.double().T
    b16 = torch.nn.functional.linear(hidden.bfloat16(), weight.bfloat16()).double()
    u, gamma = 2.0 ** -8, d * 2.0 ** -24 / (1 - d * 2.0 ** -24)
    bound = (2 * u + u * u + gamma * (1 + u) ** 2 + gamma + u / (1 - u) * (1 + u) ** 3) * \
        hidden.double().norm(dim=1) * weight.double().norm(dim=1).max()
    assert ((b16 - exact).abs() <= bound[:, None]).all()
    f32 = torch.nn.functional.linear(hidden, weight).double()
    assert ((f32 - exact).abs() <= gamma * hidden.double().norm(dim=1)[:, None] * weight.double().norm(dim=1)).all()
    # and it is not vacuous: within 100x of the largest error seen (Cauchy-Schwarz with the longest row)
    assert float(((b16 - exact).abs() / bound[:, None]).max()) > 0.01


def test_screened_greedy_equals_float32_blocks_with_ties_near_ties_and_banned_ids(monkeypatch):
    g = torch.Generator().manual_seed(5)
    vocab, d = 1000, 64
    weight = torch.randn(vocab, d, generator=g) / 8
    weight[700] = weight[30]                 # an exact tie across blocks: the earlier index wins
    weight[31] = weight[30] * (1 + 1e-6)     # a near-tie far inside the bfloat16 error: float32 decides
    weight[500] = weight[499] * (1 - 1e-3)   # and one that bfloat16 may or may not resolve
    head = _screened_head(weight, monkeypatch)
    hidden = torch.randn(96, d, generator=g) * 4
    hidden[:16] = weight[30] * 40
    hidden[16:32] = weight[499] * 40
    hidden[32:40] = weight[700] * 40 + torch.randn(8, d, generator=g) * 1e-3
    plain = VocabHead(weight, None, None, vocab_block=64, screen=False)
    assert head._screens(hidden)
    for banned in (None, torch.tensor([30, 31, 499]), torch.tensor([0, 999])):
        want = plain.greedy(hidden, banned=banned)
        got = head.greedy(hidden, banned=banned)
        assert head.last_candidates is not None
        assert torch.equal(got, want), banned
        logits = hidden @ weight.T
        if banned is not None:
            logits[:, banned] = -float("inf")
        assert torch.equal(got, logits.argmax(-1))
    assert (head.greedy(hidden[:16]) == 31).all()        # 31's logit is the larger by 1e-6


def test_screen_falls_back_where_it_cannot_decide_or_is_not_exact(monkeypatch):
    g = torch.Generator().manual_seed(6)
    weight = torch.randn(5000, 32, generator=g)
    head = _screened_head(weight, monkeypatch, block=500)
    zeros = torch.zeros(4, 32)                           # every logit ties: far too many candidates
    assert head._greedy_screened(zeros, None) is None
    assert (head.greedy(zeros) == 0).all()
    nan = torch.randn(3, 32, generator=g)
    nan[1, 0] = float("nan")
    assert not head._screens(nan)
    assert torch.equal(head.greedy(nan), VocabHead(weight, None, None, 500, screen=False).greedy(nan))
    assert head._greedy_screened(torch.randn(2, 32, generator=g), torch.arange(5000)) is None  # all banned
    ok = torch.randn(2, 32, generator=g)
    assert head._screens(ok)
    assert not VocabHead(weight, torch.zeros(5000), None, 500)._screens(ok)            # a bias
    assert not VocabHead(weight, None, 30.0, 500)._screens(ok)                         # a softcap
    assert not VocabHead(weight.double(), None, None, 500)._screens(ok.double())       # not float32


def test_the_bfloat16_copy_follows_the_weight(monkeypatch):
    m = tiny_model("llama", n_layers=2, seed=0)
    monkeypatch.setattr(lm_head, "SCREEN_MIN_VOCAB", 1)
    head = VocabHead.of(m.model, m.config)
    w16, norm = head._bf16_weight()
    assert VocabHead.of(m.model, m.config)._bf16_weight()[0] is w16      # kept on the module
    with torch.no_grad():
        m.model.lm_head.weight.mul_(2)
    w16b, norm_b = VocabHead.of(m.model, m.config)._bf16_weight()
    assert norm_b == pytest.approx(2 * norm) and torch.equal(w16b, (m.model.lm_head.weight.bfloat16()))


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_engine_with_the_screen_equals_plain_hooks(family, monkeypatch):
    """The whole decode loop with the screen forced on (tiny vocabularies are below SCREEN_MIN_VOCAB)."""
    m = tiny_model(family, n_layers=3, seed=2)
    monkeypatch.setattr(lm_head, "SCREEN_MIN_VOCAB", 1)
    monkeypatch.setattr(lm_head, "VOCAB_BLOCK", 13)
    calls = []
    screened = VocabHead._greedy_screened
    monkeypatch.setattr(VocabHead, "_greedy_screened", lambda self, h, b: calls.append(1) or screened(self, h, b))
    g = torch.Generator().manual_seed(3)
    texts = ["hello there, my friend", "hi", "a quick test of padding!"] * 3
    rows = torch.randn(len(texts), m.config.hidden_size, generator=g) * 3
    spec = PatchSpec(layers=(1,), alpha=1.5, window=(0, 4), max_new_tokens=8, stop_at_eos=False)
    ref = generate_patched_hooks(m, texts, spec, rows)
    fast = generate_fast(m, texts, spec, rows, max_rows=4)
    assert calls and torch.equal(fast.new_tokens, ref.new_tokens)
