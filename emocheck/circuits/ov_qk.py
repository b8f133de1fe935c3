"""OV and QK of circuit heads at token level: which input tokens, when attended, write the emotion, and
which positions attend to the trigger.

For query head h of layer L, at the last prompt token (query position q = last):

    z_h = sum_s A_h[q, s] v_s,kv(h)                      (v: the value vectors, shared within a GQA group)
    ov_h(s) = (v_s,kv(h) @ W_O[h]) * gain . u            the OV circuit of token s projected on the unit
                                                          emotion direction u (gain: Gemma's post-attention
                                                          RMSNorm scale of the actual forward; 1 elsewhere)
    contrib_h(s) = A_h[q, s] * ov_h(s)                   sum_s contrib_h(s) = the head's direct write . u

(`tests/test_circuits_ov_qk.py` checks both identities exactly on tiny models.) QK side: A_h[q, trigger]
for the last query AND for every query position after the trigger span, relative to the share the
span would get under uniform attention over the positions the query can see (1 = no preference).

Per head the table reports: the trigger tokens' mean OV projection and the other tokens' (what the
head WOULD write if it attended to them), the share of its actual emotion write that comes from the
trigger span, the trigger ratios, and the tokens whose OV projection is largest (pooled over prompts).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import torch

from emocheck.errors import ConfigError
from emocheck.heads.access import (attn_module, eager_attention, head_geometry, norm_gain, output_weight,
                                   out_proj, post_norm)
from emocheck.models.architectures import resolve

#: the module whose output holds the value vectors, and how to cut them out of it
_VALUE_SITES = {"llama": "self_attn.v_proj", "qwen3": "self_attn.v_proj", "gemma3_text": "self_attn.v_proj",
                "gemma3": "self_attn.v_proj", "gpt_neo": "attn.attention.v_proj", "gpt2": "attn.c_attn",
                "gpt_neox": "attention.query_key_value"}


def _values(loaded, out: torch.Tensor) -> torch.Tensor:
    """[B, T, n_kv, hd] value vectors from the value module's output."""
    g = head_geometry(loaded)
    fam = loaded.arch.family
    b, t = out.shape[:2]
    if fam == "gpt2":                              # c_attn: [q | k | v], each d_model wide
        return out[..., 2 * g.d_model:].reshape(b, t, g.n_heads, g.head_dim)
    if fam == "gpt_neox":                          # per head [q | k | v], each head_dim wide
        return out.reshape(b, t, g.n_heads, 3 * g.head_dim)[..., 2 * g.head_dim:]
    return out.reshape(b, t, g.n_kv_heads, g.head_dim)


def token_level(loaded, input_ids, attention_mask, last, layers, direction) -> dict:
    """One eager pass. Returns per layer: 'pattern' [B, H, T, T], 'ov' [B, H, T] (ov_h(s) . u),
    'z' [B, H, hd] at the last token, 'write_u' [B, H] (the head's direct write . u at the last token)."""
    if loaded.arch.family not in _VALUE_SITES:
        raise ConfigError(f"token-level OV is not mapped for the {loaded.arch.family} family")
    g = head_geometry(loaded)
    u = direction.float() / direction.float().norm()
    rows = torch.arange(input_ids.shape[0])
    last = last.long().cpu()
    seen: dict = defaultdict(dict)
    group = g.n_heads // g.n_kv_heads if loaded.arch.family not in ("gpt2", "gpt_neox") else 1

    def value_hook(layer):
        def hook(mod, args, output):
            seen[layer]["v"] = _values(loaded, output.detach().float())
        return hook

    def z_hook(layer):
        def hook(mod, args):
            seen[layer]["z"] = args[0][rows, last].detach().float().reshape(-1, g.n_heads, g.head_dim)
        return hook

    def attn_hook(layer):
        def hook(mod, args, output):
            seen[layer]["pattern"] = output[1].detach().float()
            o = (output[0] if isinstance(output, tuple) else output)[rows, last].detach().float()
            norm = post_norm(loaded, layer)
            seen[layer]["gain"] = norm_gain(norm, o) if norm is not None else torch.ones_like(o)
        return hook

    handles = []
    try:
        with eager_attention(loaded), torch.no_grad():
            for layer in layers:
                block = loaded.layer_module(layer)
                handles.append(resolve(block, _VALUE_SITES[loaded.arch.family]).register_forward_hook(value_hook(layer)))
                handles.append(out_proj(loaded, layer).register_forward_pre_hook(z_hook(layer)))
                handles.append(attn_module(loaded, layer).register_forward_hook(attn_hook(layer)))
            loaded.model(input_ids=input_ids.to(loaded.device), attention_mask=attention_mask.to(loaded.device))
    finally:
        for h in handles:
            h.remove()
    out = {}
    for layer in layers:
        s = seen[layer]
        w_o = output_weight(loaded, layer)                                         # [H, hd, d]
        v = s["v"].repeat_interleave(group, dim=2) if group > 1 else s["v"]        # [B, T, H, hd]
        ov_vec = torch.einsum("bthk,hkd->bhtd", v, w_o)                             # [B, H, T, d]
        gain = s["gain"][:, None, None, :]
        ov = ((ov_vec * gain) @ u.to(ov_vec.device))                               # [B, H, T]
        z = s["z"]
        write_u = torch.einsum("bhk,hkd->bhd", z, w_o) * s["gain"][:, None, :] @ u
        out[layer] = {"pattern": s["pattern"], "ov": ov, "z": z, "write_u": write_u, "v": v}
    return out


def head_token_table(loaded, texts, triggers, heads, direction, top: int = 5) -> pd.DataFrame:
    """One row per head (Components of kind 'head') over `texts` with their `triggers` (module doc)."""
    from emocheck.heads.screening import tokenize_with_spans

    ids, mask, last, span = tokenize_with_spans(loaded, list(texts), list(triggers))
    layers = sorted({c.layer for c in heads})
    tl = token_level(loaded, ids, mask, last, layers, direction)
    tok = loaded.tokenizer
    rows = []
    for c in heads:
        r = tl[c.layer]
        ov_by_token: dict = defaultdict(list)
        trig_ov, other_ov, trig_share, ratio_last, ratio_after = [], [], [], [], []
        for b in range(ids.shape[0]):
            q = int(last[b])
            real = mask[b, :q + 1].bool()
            sp = span[b, :q + 1] & real
            ov = r["ov"][b, c.head, :q + 1].cpu()
            att = r["pattern"][b, c.head, :, :q + 1].cpu()                        # [T, q+1]
            contrib = att[q] * ov
            trig_ov.append(float(ov[sp].mean()))
            rest = real & ~sp
            rest[0] = False                                                      # the first token is an attention sink
            if rest.any():
                other_ov.append(float(ov[rest].mean()))
            total = float(contrib[real].sum())
            trig_share.append(float(contrib[sp].sum()) / total if abs(total) > 1e-12 else np.nan)
            ratio_last.append(float(att[q, sp].sum()) / (float(sp.sum()) / float(real.sum())))
            end = int(np.flatnonzero(sp.numpy()).max())
            after = [p for p in range(end + 1, q) if real[p]]
            ratios = [float(att[p, :p + 1][sp[:p + 1]].sum()) / (float(sp.sum()) / float(real[:p + 1].sum()))
                      for p in after]
            if ratios:
                ratio_after.append(float(np.mean(ratios)))
            for p in np.flatnonzero(real.numpy()):
                ov_by_token[tok.decode([int(ids[b, p])])].append(float(ov[p]))
        ranked = sorted(ov_by_token.items(), key=lambda kv: -np.mean(kv[1]))
        rows.append({"component": c.label, "layer": c.layer, "head": c.head,
                     "trigger_ov": float(np.mean(trig_ov)), "other_ov": float(np.mean(other_ov)) if other_ov else np.nan,
                     "trigger_write_share": float(np.nanmean(trig_share)) if np.isfinite(trig_share).any() else np.nan,
                     "trigger_ratio_last": float(np.mean(ratio_last)),
                     "trigger_ratio_after": float(np.mean(ratio_after)) if ratio_after else np.nan,
                     "top_ov_tokens": " | ".join(f"{t.strip() or repr(t)} {np.mean(v):+.2f}" for t, v in ranked[:top]),
                     "bottom_ov_tokens": " | ".join(f"{t.strip() or repr(t)} {np.mean(v):+.2f}" for t, v in ranked[-top:]),
                     "n_prompts": int(ids.shape[0])})
    return pd.DataFrame(rows)
