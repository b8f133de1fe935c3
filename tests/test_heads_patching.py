"""Head patching: nnsight == plain-hook reference, untouched heads/positions/steps are untouched,
and a patch that writes a head's own values changes nothing (the rule itself is right)."""
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.heads.access import head_geometry, read_heads
from emocheck.heads.patching import generate_head_patched, patched_residuals
from emocheck.heads.reference import generate_head_patched_hooks, patched_residuals_hooks
from emocheck.heads.specs import HeadPatchSpec
from emocheck.testing import tiny_model

PROMPTS = ["I am so grateful for this!", "The parcel ships on Monday.", "Sorry, truly.", "Thanks!"]


def _batch(loaded, prompts=PROMPTS):
    enc = loaded.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="right")
    return enc["input_ids"], enc["attention_mask"], enc["attention_mask"].sum(1) - 1


def _values(loaded, seed=0):
    g = head_geometry(loaded)
    gen = torch.Generator().manual_seed(seed)
    return {layer: torch.randn(g.n_heads, g.head_dim, generator=gen) for layer in range(g.n_layers)}


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2", "qwen3"])
@pytest.mark.parametrize("mode,positions", [("zero", "all"), ("mean", "all"), ("replace", "last")])
def test_nnsight_matches_hooks(family, mode, positions):
    loaded = tiny_model(family)
    ids, mask, last = _batch(loaded)
    # a different head set per row (the batched random-set design)
    specs = [HeadPatchSpec(((0, 1),), mode, positions), HeadPatchSpec(((1, 0), (2, 3)), mode, positions),
             HeadPatchSpec(((2, 2),), mode, positions), HeadPatchSpec(((0, 0), (1, 1), (2, 2)), mode, positions)]
    vals = None if mode == "zero" else _values(loaded)
    a = patched_residuals(loaded, ids, mask, last, specs, vals, read_layers=[0, 1, 2])
    b = patched_residuals_hooks(loaded, ids, mask, last, specs, vals, read_layers=[0, 1, 2])
    for layer in a:
        torch.testing.assert_close(a[layer], b[layer], rtol=0, atol=0)
    # the patch does something (else the parity above would prove nothing)
    clean = patched_residuals_hooks(loaded, ids, mask, last, [HeadPatchSpec(((0, 0),), "replace", "last")] * 4,
                                    _own_values(loaded, ids, mask, last), read_layers=[2])
    assert not torch.allclose(a[2], clean[2])


def _own_values(loaded, ids, mask, last):
    r = read_heads(loaded, ids, mask, last)
    return {layer: r.z[layer] for layer in r.layers}


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_writing_a_heads_own_values_changes_nothing(family):
    loaded = tiny_model(family)
    ids, mask, last = _batch(loaded)
    own = _own_values(loaded, ids, mask, last)
    every = tuple((layer, h) for layer in range(loaded.n_layers) for h in range(loaded.n_heads))
    spec = HeadPatchSpec(every, "replace", "last")
    patched = patched_residuals(loaded, ids, mask, last, spec, own, read_layers=[2])
    base = read_heads(loaded, ids, mask, last, resid=True).resid_post[2]
    torch.testing.assert_close(patched[2], base, rtol=1e-5, atol=1e-5)


def test_untouched_heads_and_positions_are_untouched():
    loaded = tiny_model("llama")
    g = head_geometry(loaded)
    ids, mask, last = _batch(loaded)
    spec = HeadPatchSpec(((1, 2),), "mean", "last")
    _, rec = patched_residuals_hooks(loaded, ids, mask, last, spec, _values(loaded), read_layers=[2], record=True)
    assert set(rec) == {1}
    before = rec[1]["before"].view(len(PROMPTS), -1, g.n_heads, g.head_dim)
    after = rec[1]["after"].view_as(before)
    changed = (before != after).any(-1)                        # [B, T, H]
    expected = torch.zeros_like(changed)
    expected[torch.arange(len(PROMPTS)), last, 2] = True
    assert torch.equal(changed, expected)


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_generation_nnsight_matches_hooks_and_window(family):
    loaded = tiny_model(family)
    g = head_geometry(loaded)
    spec = HeadPatchSpec(((0, 1), (2, 0)), "mean", "all", window=(0, 3), max_new_tokens=6)
    vals = {layer: 3 * v for layer, v in _values(loaded, seed=1).items()}
    a = generate_head_patched(loaded, PROMPTS, spec, vals)
    b = generate_head_patched_hooks(loaded, PROMPTS, spec, vals, record=True)
    assert torch.equal(a.new_tokens, b.new_tokens)
    plain = generate_head_patched_hooks(loaded, PROMPTS, spec.replace(mode="replace"),
                                        {0: torch.zeros(g.n_heads, g.head_dim), 2: torch.zeros(g.n_heads, g.head_dim)})
    assert plain.new_tokens.shape == a.new_tokens.shape
    # steps past the window and heads outside the set are untouched
    for layer, recs in b.meta["records"].items():
        for r in recs:
            diff = (r["before"] != r["after"]).view(*r["before"].shape[:2], g.n_heads, g.head_dim).any(-1)
            heads = {h for (L, h) in spec.heads if L == layer}
            untouched = [h for h in range(g.n_heads) if h not in heads]
            assert not diff[:, :, untouched].any()
            if r["step"] >= spec.window[1]:
                assert not diff.any(), r["step"]
            else:
                assert diff[:, :, sorted(heads)].any()


def test_spec_validation_errors():
    with pytest.raises(ConfigError, match="empty"):
        HeadPatchSpec(()).validate(3, 4)
    with pytest.raises(ConfigError, match="head 4 is out of range"):
        HeadPatchSpec(((0, 4),)).validate(3, 4)
    with pytest.raises(ConfigError, match="repeats"):
        HeadPatchSpec(((0, 1), (0, 1))).validate(3, 4)
    with pytest.raises(ConfigError, match="unknown head patch mode"):
        HeadPatchSpec(((0, 1),), mode="noise").validate(3, 4)
    loaded = tiny_model("llama")
    ids, mask, last = _batch(loaded)
    with pytest.raises(ConfigError, match="needs values"):
        patched_residuals(loaded, ids, mask, last, HeadPatchSpec(((0, 1),), "mean"), None, read_layers=[2])
    with pytest.raises(ConfigError, match="share mode"):
        patched_residuals(loaded, ids, mask, last, [HeadPatchSpec(((0, 1),), "zero")] * 3
                          + [HeadPatchSpec(((0, 1),), "mean")], _values(loaded), read_layers=[2])
