"""Head patching with plain PyTorch forward hooks: the reference the nnsight implementation must match.

Same tokenisation, same patch rule (`apply_head_patch`, applied in a forward pre-hook of the output
projection), same generation arguments; each patched output projection is called once per generation
step, so the n-th call is step n. `record=True` also returns, per layer and step, the o_proj input
before and after the patch: the tests use it to prove that untouched heads and positions are untouched.
"""
from __future__ import annotations

import torch

from emocheck.heads.access import head_geometry, out_proj
from emocheck.heads.patching import position_mask, prepare
from emocheck.heads.specs import HeadPatchSpec, apply_head_patch


def patched_residuals_hooks(loaded, input_ids, attention_mask, read_positions, specs, values=None, *,
                            read_layers, record: bool = False):
    read_layers = sorted({int(x) for x in read_layers})
    batch = input_ids.shape[0]
    per_layer, positions, _ = prepare(loaded, specs, values, batch)
    pos_mask = position_mask(attention_mask, read_positions, positions).to(loaded.device)
    rows = torch.arange(batch)
    read = read_positions.long()
    saved, records, handles = {}, {}, []

    def pre(layer):
        def hook(mod, args):
            head_mask, vals = per_layer[layer]
            new = apply_head_patch(args[0], pos_mask, head_mask, vals, loaded.n_heads)
            if record:
                records[layer] = {"before": args[0].detach().clone().cpu(), "after": new.detach().clone().cpu()}
            return (new, *args[1:])
        return hook

    def post(layer):
        def hook(mod, args, output):
            h = output[0] if isinstance(output, tuple) else output
            saved[layer] = h[rows, read].float().detach().cpu()
        return hook

    try:
        for layer in per_layer:
            handles.append(out_proj(loaded, layer).register_forward_pre_hook(pre(layer)))
        for layer in read_layers:
            handles.append(loaded.layer_module(layer).register_forward_hook(post(layer)))
        with torch.no_grad():
            loaded.model(input_ids=input_ids.to(loaded.device), attention_mask=attention_mask.to(loaded.device))
    finally:
        for h in handles:
            h.remove()
    return (saved, records) if record else saved


def generate_head_patched_hooks(loaded, prompts: list[str], spec: HeadPatchSpec, values=None, record: bool = False):
    from emocheck.patching.residual import PatchSpec, finish, generation_kwargs, tokenize_prompts

    g = head_geometry(loaded)
    spec.validate(g.n_layers, g.n_heads)
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    batch = input_ids.shape[0]
    per_layer, positions, _ = prepare(loaded, spec, values, batch)
    gen_spec = PatchSpec(max_new_tokens=spec.max_new_tokens, window=(0, 1))
    last = torch.full((batch,), input_ids.shape[1] - 1)
    prompt_mask = position_mask(attention_mask, last, positions).to(loaded.device)
    step_mask = torch.ones(batch, 1, dtype=torch.bool, device=loaded.device)
    calls = {layer: 0 for layer in per_layer}
    records = {layer: [] for layer in per_layer}
    handles = []

    def pre(layer):
        def hook(mod, args):
            step = calls[layer]
            calls[layer] += 1
            x = args[0]
            new = x
            if spec.window[0] <= step < spec.window[1]:
                head_mask, vals = per_layer[layer]
                new = apply_head_patch(x, prompt_mask if step == 0 else step_mask, head_mask, vals, g.n_heads)
            if record:
                records[layer].append({"step": step, "before": x.detach().clone().cpu(),
                                       "after": new.detach().clone().cpu()})
            return (new, *args[1:])
        return hook

    try:
        for layer in per_layer:
            handles.append(out_proj(loaded, layer).register_forward_pre_hook(pre(layer)))
        with torch.no_grad():
            seqs = loaded.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         **generation_kwargs(loaded, gen_spec))
    finally:
        for h in handles:
            h.remove()
    meta = {"impl": "hooks", "head_spec": spec.to_dict()}
    if record:
        meta["records"] = records
    return finish(loaded, prompts, input_ids, attention_mask, seqs, gen_spec, meta)
