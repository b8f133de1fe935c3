"""Per-head access (emocheck.heads.access) against plain PyTorch on tiny models of every family.

Independent checks, each from a different code path than the reader's:
- z is the o_proj input, and z_h == pattern_h @ V_kv(h) with V read from the value projection
  (grouped-query attention: query head h reads key/value head h // (n_heads / n_kv_heads));
- the pattern equals Hugging Face's own `output_attentions` (eager);
- sum_h result_h + b_O == the o_proj output; sum_h write_h + bias share == what the block adds to the
  residual stream (Gemma's post-attention norm included);
- a row read in a padded batch equals the same prompt read alone.
"""
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.heads.access import check_head, head_geometry, output_weight, read_heads
from emocheck.models.architectures import resolve
from emocheck.testing import TINY_FAMILIES, tiny_model

PROMPTS = ["I am so grateful for this!", "The parcel ships on Monday.", "Sorry, truly."]


def _batch(loaded, prompts=PROMPTS):
    enc = loaded.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="right")
    last = enc["attention_mask"].sum(1) - 1
    return enc["input_ids"], enc["attention_mask"], last


def _values(loaded, layer, captured):
    """V [B, T, n_kv, head_dim] from the family's value projection (captured output)."""
    g = head_geometry(loaded)
    fam = loaded.arch.family
    x = captured
    b, t = x.shape[:2]
    if fam == "gpt2":
        return x[..., 2 * g.d_model:].reshape(b, t, g.n_heads, g.head_dim)
    if fam == "gpt_neox":
        return x.reshape(b, t, g.n_heads, 3 * g.head_dim)[..., 2 * g.head_dim:]
    return x.reshape(b, t, g.n_kv_heads, g.head_dim)


def _value_module(loaded, layer):
    block = loaded.layer_module(layer)
    fam = loaded.arch.family
    path = {"gpt2": "attn.c_attn", "gpt_neox": "attention.query_key_value",
            "gpt_neo": "attn.attention.v_proj"}.get(fam, "self_attn.v_proj")
    return resolve(block, path)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_heads_match_plain_pytorch(family):
    loaded = tiny_model(family)
    g = head_geometry(loaded)
    ids, mask, last = _batch(loaded)
    rows = torch.arange(len(PROMPTS))
    # Plain hooks, independent of the reader: o_proj input/output, value projection output, the block's
    # attention write (Gemma: post-attention norm output).
    cap = {}
    handles = []
    for layer in range(loaded.n_layers):
        proj = resolve(loaded.layer_module(layer), loaded.arch.attn_out_proj)
        handles.append(proj.register_forward_hook(
            lambda m, a, o, L=layer: cap.update({("zin", L): a[0].detach().clone(), ("oout", L): o.detach().clone()})))
        handles.append(_value_module(loaded, layer).register_forward_hook(
            lambda m, a, o, L=layer: cap.update({("v", L): o.detach().clone()})))
        if loaded.arch.attn_post_norm:
            norm = resolve(loaded.layer_module(layer), loaded.arch.attn_post_norm)
            handles.append(norm.register_forward_hook(
                lambda m, a, o, L=layer: cap.update({("write", L): o.detach().clone()})))
    before = loaded.model.config._attn_implementation
    loaded.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            hf = loaded.model(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    finally:
        loaded.model.set_attn_implementation(before)
        for h in handles:
            h.remove()
    r = read_heads(loaded, ids, mask, last, pattern=True, resid=True)
    assert loaded.model.config._attn_implementation == before   # restored after the eager read
    group = g.n_heads // g.n_kv_heads
    for layer in range(loaded.n_layers):
        z_ref = cap[("zin", layer)][rows, last].reshape(-1, g.n_heads, g.head_dim)
        torch.testing.assert_close(r.z[layer], z_ref, rtol=0, atol=0)
        # z_h == pattern_h @ V_kv(h) (the pattern is HF's own attentions)
        pat_hf = hf.attentions[layer][rows, :, last]                    # [B, H, T]
        torch.testing.assert_close(r.pattern[layer], pat_hf, rtol=1e-6, atol=1e-7)
        v = _values(loaded, layer, cap[("v", layer)])                   # [B, T, n_kv, hd]
        kv_of = torch.arange(g.n_heads) // group if family not in ("gpt2", "gpt_neox", "gpt_neo") else torch.arange(g.n_heads)
        z_from_pattern = torch.einsum("bht,bthk->bhk", r.pattern[layer], v[:, :, kv_of])
        torch.testing.assert_close(r.z[layer], z_from_pattern, rtol=1e-4, atol=1e-5)
        # per-head results sum to the o_proj output
        o_ref = cap[("oout", layer)][rows, last]
        bias = getattr(resolve(loaded.layer_module(layer), loaded.arch.attn_out_proj), "bias", None)
        total = r.result[layer].sum(1) + (bias if bias is not None else 0)
        torch.testing.assert_close(total, o_ref, rtol=1e-5, atol=1e-5)
        # per-head writes (+ the bias share) sum to what reaches the residual stream
        w_ref = cap[("write", layer)][rows, last] if loaded.arch.attn_post_norm else o_ref
        torch.testing.assert_close(r.write[layer].sum(1) + r.bias_write[layer], w_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(r.attn_write[layer], w_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r.resid_post[layer], hf.hidden_states[layer + 1][rows, last]
                                   if layer + 1 < loaded.n_layers else r.resid_post[layer])
        # pattern rows are distributions over the prompt's real keys (causal, no pads)
        torch.testing.assert_close(r.pattern[layer].sum(-1), torch.ones(len(PROMPTS), g.n_heads))
        pads = (mask == 0)[:, None, :].expand_as(r.pattern[layer])
        assert (r.pattern[layer][pads] == 0).all()


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_padded_row_equals_alone(family):
    loaded = tiny_model(family)
    ids, mask, last = _batch(loaded)
    batch = read_heads(loaded, ids, mask, last, pattern=True)
    for i, prompt in enumerate(PROMPTS):
        ids1, mask1, last1 = _batch(loaded, [prompt])
        alone = read_heads(loaded, ids1, mask1, last1, pattern=True)
        for layer in batch.layers:
            torch.testing.assert_close(batch.write[layer][i], alone.write[layer][0], rtol=1e-4, atol=1e-5)
            t = int(mask1.sum())
            torch.testing.assert_close(batch.pattern[layer][i, :, :t], alone.pattern[layer][0], rtol=1e-4, atol=1e-6)


def test_layer_subset_and_geometry():
    loaded = tiny_model("qwen3")
    g = head_geometry(loaded)
    assert (g.n_heads, g.n_kv_heads, g.head_dim) == (4, 2, 16)
    assert output_weight(loaded, 0).shape == (4, 16, 64)
    ids, mask, last = _batch(loaded)
    r = read_heads(loaded, ids, mask, last, layers=[1])
    assert r.layers == [1] and set(r.write) == {1} and not r.pattern


def test_bad_head_is_a_clear_error():
    loaded = tiny_model("llama")
    with pytest.raises(ConfigError, match="head 7 is out of range"):
        check_head(loaded, 0, 7)
    with pytest.raises(ConfigError, match="layer 9 is out of range"):
        check_head(loaded, 9, 0)
