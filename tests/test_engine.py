"""The fast greedy engine (emocheck.patching.engine): the same tokens as the nnsight implementation and
the plain-hook reference on every tiny family, fluency NLL equal to the full second forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emocheck import timing
from emocheck.errors import ConfigError
from emocheck.patching.engine import _Patcher, _batches, generate_fast, rows_for_memory
from emocheck.patching.fluency import continuation_nll, fluency_table
from emocheck.patching.reference import generate_patched_hooks
from emocheck.patching.engine import generate_patched
from emocheck.patching.residual import PatchSpec, generate_patched_nnsight, generate_plain
from emocheck.testing import TINY_FAMILIES, tiny_model

PROMPTS = ["hello there, my friend", "hi", "a quick test of padding!", "x"]


def conditions_rows(n_cond=4, d=64, seed=0, scale=4.0):
    """Rows as the experiment builds them: every condition on every prompt, condition 0 = baseline."""
    g = torch.Generator().manual_seed(seed)
    conds = torch.randn(n_cond, d, generator=g) * scale
    conds[0] = 0
    rows = conds.repeat_interleave(len(PROMPTS), 0)
    return PROMPTS * n_cond, rows


@pytest.fixture(scope="module")
def models():
    return {fam: tiny_model(fam, n_layers=3, seed=1) for fam in TINY_FAMILIES}


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("variant", [
    dict(),
    dict(site="hook_resid_pre", window=(1, 4)),
    dict(patch_prompt=True, window=(0, 3)),
    dict(stop_at_eos=False, layers=(0, 2), schedule="exp_decay", decay=0.5),
])
def test_fast_matches_nnsight_and_hooks(models, family, variant):
    m = models[family]
    spec = PatchSpec(**{"layers": (1,), "alpha": 1.5, "window": (0, 4), "max_new_tokens": 9, **variant})
    texts, rows = conditions_rows()
    ref = generate_patched_nnsight(m, texts, spec, rows)
    hooks = generate_patched_hooks(m, texts, spec, rows)
    assert torch.equal(ref.new_tokens, hooks.new_tokens)
    for max_rows in (5, 64):                     # split batches (other padding) and one batch
        fast = generate_fast(m, texts, spec, rows, max_rows=max_rows)
        assert torch.equal(fast.new_tokens, ref.new_tokens), max_rows
        assert fast.texts == ref.texts and torch.equal(fast.lengths, ref.lengths)
        assert torch.equal(fast.input_ids, ref.input_ids)
        nll = continuation_nll(m, ref.input_ids, ref.attention_mask, ref.new_tokens, ref.lengths)
        np.testing.assert_allclose(fast.meta["continuation_nll"], nll, rtol=1e-5, atol=1e-5)
    assert not torch.equal(ref.new_tokens[len(PROMPTS):], generate_plain(m, texts, spec).new_tokens[len(PROMPTS):])


def test_prefix_is_computed_once_per_prompt(models):
    m = models["llama"]
    texts, rows = conditions_rows(n_cond=5)
    spec = PatchSpec(layers=(1,), window=(0, 3), max_new_tokens=6, stop_at_eos=False)
    res = generate_fast(m, texts, spec, rows, max_rows=64)
    prompt_tokens = [len(m.tokenizer(p)["input_ids"]) for p in PROMPTS]
    counts = res.meta["tokens"]
    assert counts["distinct_prompts"] == len(PROMPTS) and counts["rows"] == 5 * len(PROMPTS)
    assert counts["prefix"] == sum(n - 1 for n in prompt_tokens)          # once per prompt, not per row
    assert counts["decode"] == counts["rows"] * 6                          # last prompt token + 5 fed back
    assert counts["scoring"] == counts["rows"] * 6


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_identical_continuations_of_a_prompt_are_scored_once(models, family):
    """Each condition twice (and the baseline's zero row, which every prompt shares with itself): the
    duplicate rows generate the same continuation of the same prompt and are scored once, with the
    second-forward NLL of every row; rows of different prompts are never merged."""
    m = models[family]
    texts, rows = conditions_rows(n_cond=3)
    texts, rows = texts * 2, torch.cat([rows, rows])
    spec = PatchSpec(layers=(1,), window=(0, 3), max_new_tokens=6, stop_at_eos=False)
    for max_rows in (64, 7):
        res = generate_fast(m, texts, spec, rows, max_rows=max_rows)
        ref = generate_patched_hooks(m, texts, spec, rows)
        assert torch.equal(res.new_tokens, ref.new_tokens)
        nll = continuation_nll(m, ref.input_ids, ref.attention_mask, ref.new_tokens, ref.lengths)
        np.testing.assert_allclose(res.meta["continuation_nll"], nll, rtol=1e-5, atol=1e-5)
        counts = res.meta["tokens"]
        distinct = {(t, tuple(res.new_tokens[i].tolist())) for i, t in enumerate(texts)}
        if max_rows == 64:                       # one batch: every distinct (prompt, continuation) once
            assert counts["scored_rows"] == len(distinct) <= len(texts) // 2
            assert counts["scoring"] == len(distinct) * 6
        else:                                    # a duplicate in another batch is scored there again
            assert len(distinct) <= counts["scored_rows"] < len(texts)


def test_finished_rows_are_dropped_and_tokens_kept(models):
    m = models["llama"]
    spec = PatchSpec(layers=(1,), alpha=2.0, window=(0, 6), max_new_tokens=10)
    texts, rows = conditions_rows()
    plain = generate_patched_nnsight(m, texts, spec, rows)
    eos = sorted(set(plain.new_tokens[::3, 1].tolist()))   # some rows stop at step 1, others run on
    old = m.model.generation_config.eos_token_id
    m.model.generation_config.eos_token_id = eos
    try:
        ref = generate_patched_nnsight(m, texts, spec, rows)
        assert bool(ref.hit_eos.any()) and not bool(ref.hit_eos.all())
        fast = generate_fast(m, texts, spec, rows, max_rows=7)
        assert torch.equal(fast.new_tokens, ref.new_tokens) and torch.equal(fast.hit_eos, ref.hit_eos)
        assert fast.meta["tokens"]["decode"] == int(ref.lengths.sum())       # no work after a row's EOS
        nll = continuation_nll(m, ref.input_ids, ref.attention_mask, ref.new_tokens, ref.lengths)
        np.testing.assert_allclose(fast.meta["continuation_nll"], nll, rtol=1e-5, atol=1e-5)
    finally:
        m.model.generation_config.eos_token_id = old


def test_generate_patched_routes_engines(models, monkeypatch):
    m = models["gpt2"]
    spec = PatchSpec(layers=(1,), window=(0, 3), max_new_tokens=5)
    texts, rows = conditions_rows(n_cond=2)
    assert generate_patched(m, texts, spec, rows).meta["impl"] == "prefix-cache"
    assert generate_patched(m, texts, spec, rows, engine="nnsight").meta["impl"] == "nnsight"
    monkeypatch.setenv("EMOCHECK_GENERATION_ENGINE", "nnsight")
    assert generate_patched(m, texts, spec, rows).meta["impl"] == "nnsight"
    sampled = spec.replace(do_sample=True, seed=3)
    assert generate_patched(m, texts, sampled, rows, engine="auto").meta["impl"] == "nnsight"
    with pytest.raises(ConfigError, match="greedy only"):
        generate_patched(m, texts, sampled, rows, engine="fast")
    with pytest.raises(ConfigError, match="unknown generation engine"):
        generate_patched(m, texts, spec, rows, engine="turbo")


def test_fluency_table_uses_engine_nll_and_timing(models, tmp_path):
    m = models["qwen3"]
    spec = PatchSpec(layers=(1,), window=(0, 3), max_new_tokens=6)
    texts, rows = conditions_rows(n_cond=2)
    timing.reset()
    res = generate_fast(m, texts, spec, rows)
    phases = {r["phase"] for r in timing.records()}
    assert phases == {"generation", "fluency"}
    # each record carries the FLOPs of the tokens it processed (prefix without logits, the rest with)
    from emocheck.compute import token_flops

    for r in timing.records():
        per = token_flops(m, with_logits=r.get("part") != "prefix")
        assert r["tokens"] > 0 and r["flops"] == pytest.approx(r["tokens"] * per)
    assert sum(r["tokens"] for r in timing.records() if r["phase"] == "generation" and r.get("part") != "prefix") \
        == int(res.lengths.sum())
    table = fluency_table(m, res)
    np.testing.assert_array_equal(table["nll"].to_numpy(), res.meta["continuation_nll"])
    res.meta.pop("continuation_nll")
    np.testing.assert_allclose(fluency_table(m, res)["nll"].to_numpy(), table["nll"].to_numpy(), rtol=1e-5, atol=1e-5)
    # Other prompts swapped in (prefixed conditions scored given the neutral prompt): recomputed.
    import dataclasses

    from emocheck.patching.residual import tokenize_prompts

    res = generate_fast(m, ["Be kind. " + t for t in texts], spec, rows)
    ids, mask = tokenize_prompts(m, texts)
    swapped = dataclasses.replace(res, prompts=texts, input_ids=ids.cpu(), attention_mask=mask.cpu())
    want = continuation_nll(m, ids, mask, res.new_tokens, res.lengths)
    np.testing.assert_allclose(fluency_table(m, swapped)["nll"].to_numpy(), want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(want, res.meta["continuation_nll"])
    timing.reset()


def test_low_precision_patch_is_added_in_float32():
    lin = torch.nn.Linear(4, 4)

    class Fake:
        def layer_module(self, layer):
            return lin
    p = _Patcher(Fake(), PatchSpec(layers=(0,), site="hook_resid_post"))
    try:
        h = torch.full((2, 3, 4), 256.0, dtype=torch.bfloat16)
        delta = torch.full((2, 4), 0.75)
        p.deltas = {0: delta}
        p._apply(0, h)
        # bf16 has 8 significant bits: 256 + 0.75 rounds once, to 257 (two bf16 adds could not differ
        # here, but the rule is exercised: the sum is formed in float32 and rounded once).
        assert h.dtype == torch.bfloat16
        assert torch.equal(h[:, -1].float(), (torch.full((2, 4), 256.0) + delta).to(torch.bfloat16).float())
        assert torch.equal(h[:, :-1].float(), torch.full((2, 2, 4), 256.0))
    finally:
        p.close()


def test_batches_keep_prompts_together_longest_first():
    groups = [[0, 3], [1, 4], [2, 5]]
    out = _batches(groups, lengths=[5, 9, 7], max_rows=4)
    assert out == [[1, 4, 2, 5], [0, 3]]
    assert _batches([[0, 1, 2, 3, 4]], [3], max_rows=2) == [[0, 1], [2, 3], [4]]


def test_rows_for_memory_scales_with_budget(models):
    m = models["llama"]
    small = rows_for_memory(m, 1e6, new_tokens=30, prompt_tokens=40)
    big = rows_for_memory(m, 1e8, new_tokens=30, prompt_tokens=40)
    assert 1 <= small < big <= 4096


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_remote_trace_serialises_and_matches_local(models, family, monkeypatch):
    """The intervention graph built for NDIF: nnsight's local simulation serialises the patched
    generation trace (deltas included) as a remote request would, deserialises and runs it."""
    m = models[family]
    spec = PatchSpec(layers=(1,), alpha=1.5, window=(0, 3), max_new_tokens=6)
    texts, rows = conditions_rows(n_cond=2)
    local = generate_patched_nnsight(m, texts, spec, rows)
    remote = generate_patched_nnsight(m, texts, spec, rows, remote="local")
    assert remote.meta["remote"] == "local"
    assert torch.equal(remote.new_tokens, local.new_tokens)
    monkeypatch.setenv("EMOCHECK_REMOTE", "local")               # what --emocheck-remote local sets
    routed = generate_patched(m, texts, spec, rows)
    assert routed.meta.get("remote") == "local" and torch.equal(routed.new_tokens, local.new_tokens)


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2", "qwen3"])
def test_reserved_cache_equals_concatenating_cache(models, family):
    """A prefix cache with reserved room gives the same hidden states as HF's concatenating cache over
    decode steps, also after rows are dropped; it writes in place (no new buffer per step); Gemma's
    sliding-window layers are reserved only when the window cannot be reached (tiny window 16)."""
    from transformers.cache_utils import DynamicSlidingWindowLayer

    from emocheck.patching.engine import _ReservedKV, _new_cache, _reserve, cache_kwarg

    m = models[family]
    body = m.model.base_model
    g = torch.Generator().manual_seed(5)
    for prompt_len, steps in ((6, 5), (12, 8)):            # 12 + 8 > 16 - 1: sliding layers stay HF's
        ids = torch.randint(3, 60, (5, prompt_len), generator=g)
        caches = []
        for reserve in (False, True):
            cache = _new_cache(m)
            body(input_ids=ids, use_cache=True, **{cache_kwarg(body): cache})
            caches.append(_reserve(cache, steps) if reserve else cache)
        plain, reserved = caches
        kinds = [type(layer) for layer in reserved.layers]
        all_sliding = all(isinstance(layer, DynamicSlidingWindowLayer) for layer in plain.layers)
        assert any(issubclass(k, _ReservedKV) for k in kinds) or (all_sliding and prompt_len + steps > 15)
        if family == "gemma3_text":
            sliding_reserved = [issubclass(k, _ReservedKV) for k, layer in zip(kinds, reserved.layers)
                                if isinstance(layer, DynamicSlidingWindowLayer)]
            assert sliding_reserved and all(sliding_reserved) == (prompt_len + steps <= 15)
        buffers = [layer._kbuf.data_ptr() for layer in reserved.layers if isinstance(layer, _ReservedKV)]
        rows = torch.arange(5)
        for step in range(steps):
            if step == 2:                                 # a row finishes: both caches drop it
                rows = torch.tensor([0, 2, 3, 4])
                keep = torch.tensor([0, 2, 3, 4])
                plain.batch_select_indices(keep)
                reserved.batch_select_indices(keep)
                buffers = [layer._kbuf.data_ptr() for layer in reserved.layers if isinstance(layer, _ReservedKV)]
            tok = torch.randint(3, 60, (len(rows), 1), generator=g)
            pos = torch.full((len(rows), 1), prompt_len + step)
            outs = [body(input_ids=tok, position_ids=pos, use_cache=True, **{cache_kwarg(body): c}).last_hidden_state
                    for c in (plain, reserved)]
            torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
            assert plain.get_seq_length() == reserved.get_seq_length() == prompt_len + step + 1
            now = [layer._kbuf.data_ptr() for layer in reserved.layers if isinstance(layer, _ReservedKV)]
            assert now == buffers                        # written in place
