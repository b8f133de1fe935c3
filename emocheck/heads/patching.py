"""Head patching and ablation with nnsight (phase 6, Q3): at the representation level and in generation.

The patch rule is `emocheck.heads.specs.apply_head_patch` on the input of each touched layer's output
projection (`blocks.L.attn.hook_z`); `emocheck.heads.reference` applies the same rule with plain
PyTorch hooks and must give identical numbers and tokens (tests/test_heads_patching.py).

Representation level (`patched_residuals`): one forward pass over right-padded prompts; each row may
carry its own head set (rows of `head_masks`), so a chosen set and many random sets of the same size
run as one batch. Returns resid_post at the read position (the last prompt token) at `read_layers`.

Generation (`generate_head_patched`): prompts left-padded as in residual patching; step 0 (the prompt
pass) patches the spec's positions ('all' real prompt positions or the 'last' one); steps
1 <= s < window[1] patch the newly processed token. Greedy decoding, so tokens are deterministic.
"""
from __future__ import annotations

import warnings

import torch

from emocheck.heads.access import head_geometry
from emocheck.heads.specs import HeadPatchSpec, apply_head_patch, expand_values, stack_rows
from emocheck.models.architectures import check_layer, resolve


def position_mask(attention_mask: torch.Tensor, read_positions: torch.Tensor, positions: str) -> torch.Tensor:
    """[B, T] bool: which positions a patch writes ('all' real tokens, or the read position)."""
    if positions == "all":
        return attention_mask.bool()
    m = torch.zeros_like(attention_mask, dtype=torch.bool)
    m[torch.arange(len(m)), read_positions.long()] = True
    return m


def prepare(loaded, specs, values, batch: int):
    """Per-layer (head_mask [B, H], values [B, H, hd]) for every layer any row touches, plus mode/positions."""
    g = head_geometry(loaded)
    specs = [specs] * batch if isinstance(specs, HeadPatchSpec) else list(specs)
    if len(specs) != batch:
        raise ValueError(f"{len(specs)} head patch specs for {batch} rows")
    masks = stack_rows(specs, g.n_layers, g.n_heads)                     # [B, L, H]
    layers = [layer for layer in range(g.n_layers) if masks[:, layer].any()]
    mode, positions = specs[0].mode, specs[0].positions
    per_layer = {layer: (masks[:, layer].to(loaded.device),
                         expand_values(values, layer, batch, g.n_heads, g.head_dim, mode, loaded.dtype, loaded.device))
                 for layer in layers}
    return per_layer, positions, specs


def patched_residuals(loaded, input_ids, attention_mask, read_positions, specs, values=None, *,
                      read_layers) -> dict[int, torch.Tensor]:
    """{layer: resid_post [B, d] at read_positions} with the head patch applied (nnsight)."""
    read_layers = sorted({int(x) for x in read_layers})
    for layer in read_layers:
        check_layer(layer, loaded.n_layers)
    batch = input_ids.shape[0]
    per_layer, positions, _ = prepare(loaded, specs, values, batch)
    pos_mask = position_mask(attention_mask, read_positions, positions).to(loaded.device)
    rows = torch.arange(batch)
    read = read_positions.long()
    lm = loaded.lm
    blocks = resolve(lm, loaded.arch.layers)
    n_heads = loaded.n_heads
    saved = {}
    inputs = {"input_ids": input_ids.to(loaded.device), "attention_mask": attention_mask.to(loaded.device)}
    last = max(read_layers + list(per_layer))
    with torch.no_grad(), lm.trace(inputs) as tracer:
        for layer in range(last + 1):
            if layer in per_layer:
                proj = resolve(blocks[layer], loaded.arch.attn_out_proj)
                head_mask, vals = per_layer[layer]
                proj.input = apply_head_patch(proj.input, pos_mask, head_mask, vals, n_heads)
            if layer in read_layers:
                h = blocks[layer].output
                if isinstance(h, tuple):
                    h = h[0]
                saved[layer] = h[rows, read].float().save()
        tracer.stop()
    return {layer: v.detach().cpu() for layer, v in saved.items()}


def generate_head_patched(loaded, prompts: list[str], spec: HeadPatchSpec, values=None):
    """Greedy generation with the head patch (nnsight); returns emocheck's GenerationResult."""
    from emocheck.patching.residual import PatchSpec, finish, generation_kwargs, tokenize_prompts

    g = head_geometry(loaded)
    spec.validate(g.n_layers, g.n_heads)
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    batch = input_ids.shape[0]
    per_layer, positions, _ = prepare(loaded, spec, values, batch)
    gen_spec = PatchSpec(max_new_tokens=spec.max_new_tokens, window=(0, 1))
    kw = generation_kwargs(loaded, gen_spec)
    last = torch.full((batch,), input_ids.shape[1] - 1)
    prompt_mask = position_mask(attention_mask, last, positions).to(loaded.device)
    step_mask = torch.ones(batch, 1, dtype=torch.bool, device=loaded.device)
    lm = loaded.lm
    blocks = resolve(lm, loaded.arch.layers)
    steps = list(range(spec.window[0], spec.window[1]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        with lm.generate(**kw) as tracer:
            with tracer.invoke({"input_ids": input_ids, "attention_mask": attention_mask}):
                for step in tracer.iter[steps]:
                    for layer in sorted(per_layer):
                        proj = resolve(blocks[layer], loaded.arch.attn_out_proj)
                        head_mask, vals = per_layer[layer]
                        pm = prompt_mask if step == 0 else step_mask
                        proj.input = apply_head_patch(proj.input, pm, head_mask, vals, g.n_heads)
            with tracer.invoke():
                sequences = tracer.result.save()
    return finish(loaded, prompts, input_ids, attention_mask, sequences, gen_spec,
                  {"impl": "nnsight", "head_spec": spec.to_dict()})
