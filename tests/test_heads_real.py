"""Per-head access on the embedded real models: per-head writes (+ the o_proj bias share) sum to what
the attention block adds to the residual stream (Gemma 3: after its post-attention norm), and
z_h == pattern_h @ V_kv(h) under grouped-query attention (SmolLM2 9 query / 3 kv heads, Gemma 3 4 / 1)."""
import pytest
import torch

from emocheck.dataset import load_emotion_prompts
from emocheck.heads.access import head_geometry, read_heads
from emocheck.models.architectures import resolve
from emocheck.models.registry import load_model

pytestmark = pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])


def test_real_model_head_writes_sum_to_attention_output(name):
    m = load_model(name)
    g = head_geometry(m)
    texts = load_emotion_prompts().groupby("emotion").head(1)["text"].tolist()
    enc = m.tokenizer(texts, return_tensors="pt", padding=True, padding_side="right")
    last = enc["attention_mask"].sum(1) - 1
    rows = torch.arange(len(texts))
    layers = [0, m.n_layers // 2, m.n_layers - 1]
    cap, handles = {}, []
    for layer in layers:
        block = m.layer_module(layer)
        site = resolve(block, m.arch.attn_post_norm) if m.arch.attn_post_norm else resolve(block, m.arch.attn_out_proj)
        handles.append(site.register_forward_hook(lambda mod, a, o, L=layer: cap.update({("w", L): o.detach().float()})))
        handles.append(resolve(block, "self_attn.v_proj").register_forward_hook(
            lambda mod, a, o, L=layer: cap.update({("v", L): o.detach().float()})))
    try:
        with torch.no_grad():
            m.model.base_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    finally:
        for h in handles:
            h.remove()
    r = read_heads(m, enc["input_ids"], enc["attention_mask"], last, layers=layers, pattern=True)
    group = g.n_heads // g.n_kv_heads
    for layer in layers:
        ref = cap[("w", layer)][rows, last]
        total = r.write[layer].sum(1) + r.bias_write[layer]
        rel = ((total - ref).norm(dim=-1) / ref.norm(dim=-1)).max().item()
        assert rel < 1e-3, (layer, rel)       # eager (read) vs sdpa (reference) kernels differ by rounding
        v = cap[("v", layer)].view(len(texts), -1, g.n_kv_heads, g.head_dim)
        z = torch.einsum("bht,bthk->bhk", r.pattern[layer], v[:, :, torch.arange(g.n_heads) // group])
        relz = ((z - r.z[layer]).norm(dim=-1) / r.z[layer].norm(dim=-1)).max().item()
        assert relz < 1e-3, (layer, relz)
