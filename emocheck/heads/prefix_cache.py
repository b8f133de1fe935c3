"""Exact last-token head patching for many head sets at the cost of one prompt pass.

A patch that touches only the LAST prompt position cannot change any earlier position (attention is
causal), so the keys/values of positions 0..T-2 are the same in every patched run. This module runs
the prefix once per prompt (use_cache=True) and then only the last token, for every head set as one
row of a batch over a copy of that cache, with the patch rule of `emocheck.heads.specs` applied in a
pre-hook of the output projections. The result equals a full patched forward pass
(`emocheck.heads.patching.patched_residuals`, nnsight) up to float rounding (tests/test_heads_prefix_cache.py),
at about (1 + n_sets / prompt_length) prompt passes per prompt instead of n_sets.
"""
from __future__ import annotations

import copy

import torch

from emocheck.heads.access import head_geometry, out_proj
from emocheck.heads.specs import apply_head_patch, expand_values, stack_rows
from emocheck.patching.engine import cache_kwarg, returned_cache


def last_token_residuals(loaded, text: str, specs, values, read_layer: int, rows_per_pass: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean [d], patched [n_specs, d]): resid_post of `read_layer` at the last token of `text`.

    specs: HeadPatchSpec list (positions must be 'last'); values {layer: [H, hd]} (ignored for 'zero').
    """
    g = head_geometry(loaded)
    if any(s.positions != "last" for s in specs):
        raise ValueError("last_token_residuals patches the last position only (positions='last')")
    masks = stack_rows(specs, g.n_layers, g.n_heads)                        # [S, L, H]
    used = [layer for layer in range(g.n_layers) if masks[:, layer].any()]
    per_layer = torch.zeros(g.n_layers, g.n_heads, g.head_dim)
    for layer in used:                                  # zeros for mode 'zero'; a missing layer is an error
        per_layer[layer] = expand_values(values, layer, 1, g.n_heads, g.head_dim, specs[0].mode,
                                         torch.float32, "cpu")[0]
    row_values = per_layer[None].expand(len(specs), -1, -1, -1)
    return last_token_rows(loaded, text, masks, row_values, read_layer, rows_per_pass=rows_per_pass)


def last_token_rows(loaded, text: str, masks: torch.Tensor, values: torch.Tensor, read_layer: int,
                    rows_per_pass: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The row-level form of `last_token_residuals`: row r replaces the o_proj input of the heads in
    masks[r] ([R, L, H] bool) by values[r] ([R, L, H, hd]; zeros = zero ablation) at the last token.
    Rows of different interventions (mean / zero / resample ablation, patch-in) and different head
    sets share one prefix pass and one batched last-token pass per chunk of `rows_per_pass`."""
    g = head_geometry(loaded)
    if masks.dim() != 3 or tuple(masks.shape[1:]) != (g.n_layers, g.n_heads):
        raise ValueError(f"masks must be [rows, {g.n_layers}, {g.n_heads}], got {tuple(masks.shape)}")
    if tuple(values.shape) != (masks.shape[0], g.n_layers, g.n_heads, g.head_dim):
        raise ValueError(f"values must be [{masks.shape[0]}, {g.n_layers}, {g.n_heads}, {g.head_dim}], "
                         f"got {tuple(values.shape)}")
    layers = [layer for layer in range(g.n_layers) if masks[:, layer].any()]
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"].to(loaded.device)
    if ids.shape[1] < 2:
        raise ValueError(f"prompt {text!r} has fewer than 2 tokens")
    body = loaded.model.base_model
    state = {"mask": None, "vals": None}
    handles = []
    read = {}

    def pre(layer):
        def hook(mod, args):
            if state["mask"] is None:
                return None
            x = args[0]
            head_mask = state["mask"][:, layer]
            vals = state["vals"][layer]
            pos = torch.ones(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)
            return (apply_head_patch(x, pos, head_mask, vals, g.n_heads), *args[1:])
        return hook

    def post(mod, args, output):
        h = output[0] if isinstance(output, tuple) else output
        read["h"] = h[:, -1].float().detach().cpu()

    try:
        for layer in layers:
            handles.append(out_proj(loaded, layer).register_forward_pre_hook(pre(layer)))
        handles.append(loaded.layer_module(read_layer).register_forward_hook(post))
        with torch.no_grad():
            kw = cache_kwarg(body)
            prefix = returned_cache(body(input_ids=ids[:, :-1], use_cache=True))
            body(input_ids=ids[:, -1:], use_cache=True, **{kw: copy.deepcopy(prefix)})
            clean = read["h"][0]
            patched = []
            for start in range(0, masks.shape[0], rows_per_pass):
                rows = masks[start:start + rows_per_pass].to(loaded.device)
                r = rows.shape[0]
                chunk = values[start:start + r]
                state["mask"] = rows
                state["vals"] = {layer: chunk[:, layer].to(loaded.device, loaded.dtype) for layer in layers}
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(r)
                body(input_ids=ids[:, -1:].expand(r, -1), use_cache=True, **{kw: cache})
                patched.append(read["h"])
                state["mask"] = None
    finally:
        for h in handles:
            h.remove()
    return clean, torch.cat(patched) if patched else torch.zeros(0, clean.shape[0])
