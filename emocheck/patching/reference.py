"""Reference implementation of multi-token residual patching with plain PyTorch forward hooks.

It exists to check `emocheck.patching.generate_patched` (nnsight): for the same PatchSpec and
directions both must produce identical tokens (tests/test_patching.py). It uses the same
tokenisation, generation arguments and precomputed deltas, and counts generation steps itself: each
patched block is called exactly once per generation step, so the n-th call is step n.

`record_site` additionally records, for every step, the site's value before and after the patch
(what downstream modules received): that is how the tests prove that tokens and steps outside the
window are untouched.
"""
from __future__ import annotations

import torch

from emocheck.patching.residual import (GenerationResult, PatchSpec, _seed, finish, generation_kwargs, prepare_directions,
                       prompt_deltas, step_deltas, tokenize_prompts)


def generate_patched_hooks(loaded, prompts: list[str], spec: PatchSpec, directions=None,
                           record_site: bool = False) -> GenerationResult:
    spec.validate(loaded.n_layers)
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    batch = input_ids.shape[0]
    patch = directions is not None
    deltas, pdeltas = {}, None
    if patch:
        dirs = prepare_directions(loaded, spec, directions, batch)
        deltas = step_deltas(spec, dirs)
        pdeltas = prompt_deltas(spec, dirs, attention_mask)
    calls = {layer: 0 for layer in spec.layers}
    records = {layer: [] for layer in spec.layers}

    def apply(layer: int, h: torch.Tensor) -> None:
        step = calls[layer]
        calls[layer] += 1
        before = h.detach().clone() if record_site else None
        if patch:
            if step == 0 and pdeltas is not None:
                h[:, :] += pdeltas[layer]
            elif step in deltas:
                h[:, -1] += deltas[step][layer]
        if record_site:
            records[layer].append({"step": step, "before": before.cpu(), "after": h.detach().clone().cpu()})

    handles = []
    try:
        for layer in spec.layers:
            module = loaded.layer_module(layer)
            if spec.site == "hook_resid_pre":
                def pre_hook(mod, args, kwargs, _layer=layer):
                    h = args[0] if args else kwargs["hidden_states"]
                    apply(_layer, h)
                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            else:
                def post_hook(mod, args, output, _layer=layer):
                    h = output[0] if isinstance(output, tuple) else output
                    apply(_layer, h)
                handles.append(module.register_forward_hook(post_hook))
        _seed(spec)
        with torch.no_grad():
            seqs = loaded.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         **generation_kwargs(loaded, spec))
    finally:
        for h in handles:
            h.remove()
    meta = {"impl": "hooks"}
    if record_site:
        meta["site_records"] = records
    return finish(loaded, prompts, input_ids, attention_mask, seqs, spec, meta)
