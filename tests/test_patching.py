"""Mechanics of multi-token residual patching (nnsight) against the plain forward-hook reference."""
from __future__ import annotations

import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.patching.engine import generate_patched
from emocheck.patching.residual import PatchSpec, generate_plain
from emocheck.patching.reference import generate_patched_hooks
from emocheck.testing import tiny_model

PROMPTS = ["hello there, my friend", "hi", "a quick test of padding!"]


@pytest.fixture(scope="module")
def models():
    return {fam: tiny_model(fam, n_layers=3, seed=1) for fam in ("llama", "gemma3_text", "gpt2")}


def vecs(batch=3, d=64, scale=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, d, generator=g) * scale


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
@pytest.mark.parametrize("site", ["hook_resid_pre", "hook_resid_post"])
def test_nnsight_matches_hooks(models, family, site):
    m = models[family]
    spec = PatchSpec(layers=(1,), site=site, alpha=1.5, window=(0, 4), max_new_tokens=10)
    a = generate_patched(m, PROMPTS, spec, vecs())
    b = generate_patched_hooks(m, PROMPTS, spec, vecs())
    assert torch.equal(a.new_tokens, b.new_tokens)
    assert a.texts == b.texts
    plain = generate_plain(m, PROMPTS, spec)
    assert not torch.equal(a.new_tokens, plain.new_tokens), "a 4x-scale vector should change some token"


@pytest.mark.parametrize("variant", [
    dict(layers=(0, 2), schedule="exp_decay", decay=0.6, window=(1, 4)),
    dict(layers=(1,), patch_prompt=True, window=(0, 3)),
    dict(layers=(2,), patch_prompt=True, window=(2, 5), site="hook_resid_pre"),
    dict(layers=(1,), do_sample=True, seed=7, temperature=0.8),
])
def test_nnsight_matches_hooks_variants(models, variant):
    m = models["llama"]
    spec = PatchSpec(**{"alpha": 2.0, "max_new_tokens": 8, **variant})
    a = generate_patched(m, PROMPTS, spec, vecs())
    b = generate_patched_hooks(m, PROMPTS, spec, vecs())
    assert torch.equal(a.new_tokens, b.new_tokens)


def test_multilayer_directions_mapping(models):
    m = models["llama"]
    spec = PatchSpec(layers=(0, 2), alpha=1.0, window=(0, 3), max_new_tokens=6)
    dirs = {0: vecs(seed=1), 2: vecs(seed=2)}
    assert torch.equal(generate_patched(m, PROMPTS, spec, dirs).new_tokens,
                       generate_patched_hooks(m, PROMPTS, spec, dirs).new_tokens)


def test_zero_vector_and_zero_alpha_are_exact_noops(models):
    m = models["gemma3_text"]
    spec = PatchSpec(layers=(1,), alpha=3.0, window=(0, 5), max_new_tokens=8, patch_prompt=True)
    plain = generate_plain(m, PROMPTS, spec)
    assert torch.equal(generate_patched(m, PROMPTS, spec, torch.zeros(64)).new_tokens, plain.new_tokens)
    assert torch.equal(generate_patched(m, PROMPTS, spec.replace(alpha=0.0), vecs()).new_tokens, plain.new_tokens)
    assert torch.equal(generate_patched(m, PROMPTS, spec, None).new_tokens, plain.new_tokens)


def test_tokens_before_window_unchanged(models):
    m = models["llama"]
    spec = PatchSpec(layers=(1,), alpha=5.0, window=(3, 6), max_new_tokens=8)
    plain = generate_plain(m, PROMPTS, spec)
    a = generate_patched(m, PROMPTS, spec, vecs())
    # Step s produces token s: tokens 0..2 come from unpatched steps.
    assert torch.equal(a.new_tokens[:, :3], plain.new_tokens[:, :3])


def test_hook_readback_touches_only_window_last_position(models):
    m = models["gemma3_text"]
    spec = PatchSpec(layers=(1,), alpha=2.0, window=(1, 3), max_new_tokens=6)
    v = vecs()
    res = generate_patched_hooks(m, PROMPTS, spec, v, record_site=True)
    recs = res.meta["site_records"][1]
    assert [r["step"] for r in recs] == list(range(res.steps_run))
    for r in recs:
        diff = r["after"] - r["before"]
        if r["step"] in (1, 2):
            assert torch.equal(diff[:, :-1], torch.zeros_like(diff[:, :-1]))
            torch.testing.assert_close(diff[:, -1], 2.0 * v, rtol=1e-5, atol=1e-4)
        else:
            assert torch.equal(r["after"], r["before"]), f"step {r['step']} outside the window was touched"


def test_hook_readback_patch_prompt_skips_pads(models):
    m = models["llama"]
    spec = PatchSpec(layers=(1,), alpha=1.0, window=(0, 2), max_new_tokens=4, patch_prompt=True)
    v = vecs()
    res = generate_patched_hooks(m, PROMPTS, spec, v, record_site=True)
    step0 = res.meta["site_records"][1][0]
    diff = step0["after"] - step0["before"]
    pad = res.attention_mask == 0
    assert pad.any(), "the prompts must need padding for this test"
    assert torch.equal(diff[pad], torch.zeros_like(diff[pad]))
    real = ~pad
    expected = v[:, None, :].expand(-1, diff.shape[1], -1)[real]
    torch.testing.assert_close(diff[real], expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("engine", ["nnsight", "fast"])
@pytest.mark.parametrize("site", ["hook_resid_pre", "hook_resid_post"])
def test_nnsight_readback_outside_window_untouched(models, site, engine):
    """Read the site back with independent plain hooks while nnsight (or the fast engine) patches
    (Llama layout). The fast engine also runs the shared prefix first and the fluency scoring pass
    last: both must be unpatched."""
    m = models["llama"]
    L = 1
    layer = m.layer_module(L)
    rec = {"raw": [], "seen": []}
    handles = []
    if site == "hook_resid_post":
        # Unpatched output recomputed from its parts; what the next block receives is the patched one.
        parts = {}
        handles.append(layer.register_forward_pre_hook(lambda mod, a, kw: parts.__setitem__("in", (a[0] if a else kw["hidden_states"]).clone()), with_kwargs=True))
        handles.append(layer.self_attn.register_forward_hook(lambda mod, a, out: parts.__setitem__("attn", out[0].clone())))
        handles.append(layer.mlp.register_forward_hook(lambda mod, a, out: rec["raw"].append((parts["in"] + parts["attn"]) + out)))
        handles.append(m.layer_module(L + 1).register_forward_pre_hook(lambda mod, a, kw: rec["seen"].append((a[0] if a else kw["hidden_states"]).clone()), with_kwargs=True))
    else:
        handles.append(m.layer_module(L - 1).register_forward_hook(lambda mod, a, out: rec["raw"].append(out.clone())))
        handles.append(layer.input_layernorm.register_forward_pre_hook(lambda mod, a: rec["seen"].append(a[0].clone())))
    spec = PatchSpec(layers=(L,), site=site, alpha=3.0, window=(2, 4), max_new_tokens=7)
    v = vecs()
    try:
        res = generate_patched(m, PROMPTS, spec, v, engine=engine)
    finally:
        for h in handles:
            h.remove()
    if engine == "fast":
        assert len(rec["raw"]) == len(rec["seen"]) == 9          # prefix, 7 steps, fluency scoring
        for extra in (0, -1):
            assert torch.equal(rec["seen"][extra], rec["raw"][extra])
        rec = {k: v_[1:-1] for k, v_ in rec.items()}
        (order,) = res.meta["batch_rows"]                          # rows run longest prompt first
        v = v[order]
    assert len(rec["raw"]) == len(rec["seen"]) == res.steps_run == 7
    for step, (raw, seen) in enumerate(zip(rec["raw"], rec["seen"])):
        if step in (2, 3):
            torch.testing.assert_close(seen[:, -1] - raw[:, -1], 3.0 * v, rtol=1e-5, atol=1e-4)
            assert torch.equal(seen[:, :-1], raw[:, :-1])
        else:
            assert torch.equal(seen, raw), f"step {step} outside the window was touched"


def _early_eos_model():
    """A tiny model whose token at step 1 is declared EOS for every row -> generation stops early."""
    m = tiny_model("llama", n_layers=3, seed=1)
    spec = PatchSpec(layers=(1,), max_new_tokens=8)
    plain = generate_plain(m, PROMPTS, spec)
    return m, plain


def test_window_after_eos_is_harmless(models):
    m = models["llama"]
    spec = PatchSpec(layers=(1,), max_new_tokens=8)
    plain = generate_plain(m, PROMPTS, spec)
    eos = sorted(set(plain.new_tokens[:, 1].tolist()))
    m.model.generation_config.eos_token_id = eos
    try:
        stopped = generate_plain(m, PROMPTS, spec)
        assert stopped.steps_run < 8 and bool(stopped.hit_eos.all())
        for spec_w in (spec.replace(window=(4, 7), alpha=5.0), spec.replace(window=(1, 6), alpha=0.0)):
            a = generate_patched(m, PROMPTS, spec_w, vecs())      # window never (fully) reached
            b = generate_patched_hooks(m, PROMPTS, spec_w, vecs())
            assert torch.equal(a.new_tokens, stopped.new_tokens)
            assert torch.equal(b.new_tokens, stopped.new_tokens)
            assert a.texts == stopped.texts
        # A window that starts before the EOS and runs past it: both agree, lengths are right.
        spec_x = spec.replace(window=(0, 6), alpha=0.5)
        a = generate_patched(m, PROMPTS, spec_x, vecs(scale=0.01))
        b = generate_patched_hooks(m, PROMPTS, spec_x, vecs(scale=0.01))
        assert torch.equal(a.new_tokens, b.new_tokens)
        for i in range(len(PROMPTS)):
            n = int(a.lengths[i])
            if a.hit_eos[i]:
                assert a.new_tokens[i, n - 1].item() in eos
                assert not any(t in eos for t in a.new_tokens[i, : n - 1].tolist())
    finally:
        m.model.generation_config.eos_token_id = 2


def test_row_finished_before_window_keeps_its_tokens(models):
    """One row hits EOS early, the others continue; patching later steps leaves that row unchanged."""
    m = models["gpt2"]
    spec = PatchSpec(layers=(1,), max_new_tokens=8)
    plain = generate_plain(m, PROMPTS, spec)
    row0 = plain.new_tokens[0].tolist()
    others = set(plain.new_tokens[1:, :4].flatten().tolist())
    candidates = [t for t in row0[:2] if t not in others]
    if not candidates:
        pytest.skip("no token unique to row 0 in this random model")
    eos = candidates[0]
    old = m.model.generation_config.eos_token_id
    m.model.generation_config.eos_token_id = eos
    try:
        base = generate_plain(m, PROMPTS, spec)
        assert bool(base.hit_eos[0]) and int(base.lengths[0]) <= 2
        spec_w = spec.replace(window=(3, 6), alpha=4.0)
        a = generate_patched(m, PROMPTS, spec_w, vecs())
        b = generate_patched_hooks(m, PROMPTS, spec_w, vecs())
        assert torch.equal(a.new_tokens, b.new_tokens)
        n = int(base.lengths[0])
        assert a.new_tokens[0, :n].tolist() == base.new_tokens[0, :n].tolist()
        assert a.texts[0] == base.texts[0]
        assert int(a.lengths[0]) == n
    finally:
        m.model.generation_config.eos_token_id = old


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_batched_prompts_of_different_lengths_match_single_runs(models, family):
    m = models[family]
    spec = PatchSpec(layers=(1,), alpha=2.0, window=(0, 4), max_new_tokens=8)
    v = vecs()
    batched = generate_patched(m, PROMPTS, spec, v)
    for i, p in enumerate(PROMPTS):
        single = generate_patched(m, [p], spec, v[i])
        n = int(single.lengths[0])
        assert batched.new_tokens[i, :n].tolist() == single.new_tokens[0, :n].tolist(), p


def test_conditions_batched_as_rows_match_separate_runs(models):
    """Several conditions in one batch (one vector per row, zero = baseline) change no token."""
    m = models["gemma3_text"]
    spec = PatchSpec(layers=(1,), alpha=1.0, window=(0, 5), max_new_tokens=8)
    conds = [torch.zeros(64), vecs(1, seed=3)[0], -vecs(1, seed=3)[0], vecs(1, seed=4)[0]]
    rows = torch.stack([c for c in conds for _ in PROMPTS])
    together = generate_patched(m, PROMPTS * len(conds), spec, rows)
    for k, c in enumerate(conds):
        alone = generate_patched(m, PROMPTS, spec, c)
        got = together.new_tokens[k * len(PROMPTS):(k + 1) * len(PROMPTS), : alone.steps_run]
        assert torch.equal(got, alone.new_tokens), f"condition {k}"
    assert torch.equal(together.new_tokens[: len(PROMPTS), :8], generate_plain(m, PROMPTS, spec).new_tokens)


def test_sampling_is_seeded(models):
    m = models["llama"]
    spec = PatchSpec(layers=(1,), alpha=1.0, max_new_tokens=10, do_sample=True, seed=3)
    a = generate_patched(m, PROMPTS, spec, vecs())
    b = generate_patched(m, PROMPTS, spec, vecs())
    c = generate_patched(m, PROMPTS, spec.replace(seed=4), vecs())
    assert torch.equal(a.new_tokens, b.new_tokens)
    assert not torch.equal(a.new_tokens, c.new_tokens)


def test_stop_at_eos_false_runs_full_length(models):
    m = models["llama"]
    spec = PatchSpec(layers=(1,), max_new_tokens=6)
    plain = generate_plain(m, PROMPTS, spec)
    m.model.generation_config.eos_token_id = sorted(set(plain.new_tokens[:, 0].tolist()))
    try:
        res = generate_patched(m, PROMPTS, spec.replace(stop_at_eos=False, window=(2, 5)), vecs())
        assert res.steps_run == 6 and not bool(res.hit_eos.any())
    finally:
        m.model.generation_config.eos_token_id = 2


@pytest.mark.parametrize("kw, match", [
    (dict(layers=(3,)), "out of range"),
    (dict(layers=(-1,)), "out of range"),
    (dict(site="hook_mlp_out"), "unknown patch site"),
    (dict(site="blocks.1.resid"), "unknown patch site"),
    (dict(window=(28, 31)), "past the generation length"),
    (dict(window=(3, 3)), "empty"),
    (dict(schedule="linear"), "unknown alpha schedule"),
    (dict(schedule="exp_decay", decay=1.5), "decay"),
    (dict(do_sample=True), "seed"),
    (dict(alpha=float("nan")), "finite"),
    (dict(layers=()), "empty"),
])
def test_bad_specs_raise_one_config_error(models, kw, match):
    spec = PatchSpec(**kw)
    with pytest.raises(ConfigError, match=match):
        generate_patched(models["llama"], PROMPTS, spec, vecs())
    with pytest.raises(ConfigError, match=match):
        generate_patched_hooks(models["llama"], PROMPTS, spec, vecs())


def test_bad_direction_shape(models):
    spec = PatchSpec(layers=(1,), max_new_tokens=4, window=(0, 2))
    with pytest.raises(ConfigError, match="shape"):
        generate_patched(models["llama"], PROMPTS, spec, torch.zeros(2, 64))
    with pytest.raises(ConfigError, match="no direction"):
        generate_patched(models["llama"], PROMPTS, spec, {0: torch.zeros(64)})
    with pytest.raises(ConfigError, match="NaN"):
        generate_patched(models["llama"], PROMPTS, spec, torch.full((64,), float("nan")))


def test_spec_is_data():
    spec = PatchSpec(layers=5, window=[1, 4], model="m", direction="gratitude")
    assert spec.layers == (5,) and spec.window == (1, 4)
    d = spec.to_dict()
    assert d["layers"] == [5] and d["schedule"] == "fixed" and d["direction"] == "gratitude"
    assert PatchSpec(**{**d, "layers": tuple(d["layers"]), "window": tuple(d["window"])}) == spec
    decay = PatchSpec(alpha=2.0, window=(2, 5), schedule="exp_decay", decay=0.5)
    assert [decay.step_scale(s) for s in range(6)] == [0, 0, 2.0, 1.0, 0.5, 0]


def test_kv_cache_semantics_match_full_recompute(models):
    """With the KV cache, a patch at step s persists in later steps' keys/values. The same tokens come
    from a cache-free reference that re-runs the whole sequence each step and re-applies every
    already-reached window patch at its absolute position (the definition, not an artefact of caching)."""
    m = models["llama"]
    spec = PatchSpec(layers=(1,), alpha=2.0, window=(1, 4), max_new_tokens=7)
    v = vecs(1)[0]
    got = generate_patched(m, ["hello there"], spec, v).new_tokens[0].tolist()
    ids = m.tokenizer(["hello there"], return_tensors="pt")["input_ids"]
    P = ids.shape[1]
    out = []
    for s in range(spec.max_new_tokens):
        def hook(mod, args, output, _s=s):
            h = output[0] if isinstance(output, tuple) else output
            for step in range(spec.window[0], min(spec.window[1], _s + 1)):
                h[:, P - 1 + step] += spec.step_scale(step) * v
        handle = m.layer_module(1).register_forward_hook(hook)
        try:
            with torch.no_grad():
                logits = m.model(input_ids=ids, use_cache=False).logits
        finally:
            handle.remove()
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    assert got == out
