"""Circuit modulation in generation: a set of components patched at the current token while generating.

A row of a generation carries a component mask (which heads' ``hook_z`` slices and which MLPs'
``hook_mlp_out`` are patched) and a source of values (e.g. each component's mean last-token
activation over training prompts of an emotion). At every generation step inside ``window`` (the
phase-5 convention of `emocheck.patching.residual`: step 0 is the pass that produces generated token
0, whose last position is the last prompt token; step s >= 1 processes generated token s - 1), the
masked components' activations at the LAST position are REPLACED by the source values; everything
downstream is recomputed from them, everything else is untouched. Rows with an empty mask are exact
unpatched runs.

`ComponentPatch` is an intervention object of the fast shared-prefix engine
(`emocheck.patching.engine.generate_fast(intervention=...)`: ``shares_prefix``, ``set_step`` and
``close``; its hooks are installed when it is made and removed by ``close``); `generate_component_patch_hooks` is
the plain-hook reference (Hugging Face ``generate`` with forward hooks that count steps, row by row
loops), used by the tests to prove identical greedy tokens on every tiny family.
"""
from __future__ import annotations

import torch

from emocheck.circuits.components import mlp_module, split_mask
from emocheck.errors import ConfigError
from emocheck.heads.access import head_geometry, out_proj


class ComponentPatch:
    """Per-row component replacement (see module doc).

    masks   [R, n_components] bool (all_components order: heads, then MLPs), one row per generated row
    z_vals  [S, L, H, hd] head values per source; mlp_vals [S, L, d] MLP values per source
    source  [R] long: which source row r takes its values from
    window  (start, stop): generation steps that are patched
    """

    def __init__(self, loaded, masks: torch.Tensor, z_vals: torch.Tensor, mlp_vals: torch.Tensor,
                 source: torch.Tensor, window: tuple[int, int]):
        g = head_geometry(loaded)
        masks = torch.as_tensor(masks, dtype=torch.bool)
        self.head_mask, self.mlp_mask = split_mask(masks, g.n_layers, g.n_heads)   # [R, L, H], [R, L]
        self.source = torch.as_tensor(source, dtype=torch.long)
        if self.source.shape != (masks.shape[0],):
            raise ConfigError(f"source has shape {tuple(self.source.shape)}; expected one entry per mask row "
                              f"({masks.shape[0]})")
        if tuple(z_vals.shape[1:]) != (g.n_layers, g.n_heads, g.head_dim) or tuple(mlp_vals.shape[1:]) != (g.n_layers, g.d_model):
            raise ConfigError(f"source values have shapes {tuple(z_vals.shape)} / {tuple(mlp_vals.shape)}; this model "
                              f"needs [S, {g.n_layers}, {g.n_heads}, {g.head_dim}] / [S, {g.n_layers}, {g.d_model}]")
        if len(self.source) and int(self.source.max()) >= z_vals.shape[0]:
            raise ConfigError(f"source index {int(self.source.max())} but only {z_vals.shape[0]} value rows")
        self.z_vals, self.mlp_vals = z_vals.float(), mlp_vals.float()
        self.window = (int(window[0]), int(window[1]))
        self.g = g
        self.rows = None                          # design-row indices of the current forward, or None (off)
        self.shares_prefix = True                 # only the last position is patched: prefixes can be shared
        heads = [l for l in range(g.n_layers) if self.head_mask[:, l].any()]
        mlps = [l for l in range(g.n_layers) if self.mlp_mask[:, l].any()]
        self.handles = [out_proj(loaded, l).register_forward_pre_hook(self._head_hook(l)) for l in heads]
        self.handles += [mlp_module(loaded, l).register_forward_hook(self._mlp_hook(l)) for l in mlps]

    def set_step(self, step, rows, prompt_mask=None) -> None:
        """The engine's call before every forward (step -1: off). Only the last position is patched,
        which is every row's last token at step 0 too (left padding), so prompt_mask is not needed."""
        on = step is not None and self.window[0] <= step < self.window[1]
        self.rows = torch.as_tensor(rows, dtype=torch.long).cpu() if on else None

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _head_hook(self, layer: int):
        def hook(mod, args):
            if self.rows is None:
                return None
            x = args[0]
            mask = self.head_mask[self.rows, layer]                                  # [B, H]
            if not mask.any():
                return None
            g = self.g
            last = x[:, -1].reshape(x.shape[0], g.n_heads, g.head_dim)
            vals = self.z_vals[self.source[self.rows], layer].to(device=x.device, dtype=x.dtype)
            new = torch.where(mask[:, :, None].to(x.device), vals, last).reshape(x.shape[0], -1)
            x = torch.cat([x[:, :-1], new[:, None]], 1)
            return (x, *args[1:])
        return hook

    def _mlp_hook(self, layer: int):
        def hook(mod, args, output):
            if self.rows is None:
                return None
            h = output[0] if isinstance(output, tuple) else output
            mask = self.mlp_mask[self.rows, layer]                                   # [B]
            if not mask.any():
                return None
            vals = self.mlp_vals[self.source[self.rows], layer].to(device=h.device, dtype=h.dtype)
            new = torch.where(mask[:, None].to(h.device), vals, h[:, -1])
            h = torch.cat([h[:, :-1], new[:, None]], 1)
            return (h, *output[1:]) if isinstance(output, tuple) else h
        return hook


def generate_component_patch_hooks(loaded, prompts, spec, masks, z_vals, mlp_vals, source):
    """Reference: Hugging Face ``generate`` (every row to the end, no shared prefix) with plain hooks
    that count the steps (one call of block 0 per step) and replace, row by row, each masked
    component's last-position activation at the steps of ``spec.window``."""
    from emocheck.patching.residual import finish, generation_kwargs, tokenize_prompts

    spec.validate(loaded.n_layers)
    g = head_geometry(loaded)
    head_mask, mlp_mask = split_mask(torch.as_tensor(masks, dtype=torch.bool), g.n_layers, g.n_heads)
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    state = {"step": -1}

    def patched() -> bool:
        return spec.window[0] <= state["step"] < spec.window[1]

    def count(mod, args, kwargs):
        state["step"] += 1

    def head_hook(layer):
        def hook(mod, args):
            if not patched():
                return None
            x = args[0].clone()
            for r in range(x.shape[0]):
                for h in range(g.n_heads):
                    if head_mask[r, layer, h]:
                        x[r, -1, h * g.head_dim:(h + 1) * g.head_dim] = z_vals[source[r], layer, h].to(x.dtype)
            return (x, *args[1:])
        return hook

    def mlp_hook(layer):
        def hook(mod, args, output):
            if not patched():
                return None
            h = (output[0] if isinstance(output, tuple) else output).clone()
            for r in range(h.shape[0]):
                if mlp_mask[r, layer]:
                    h[r, -1] = mlp_vals[source[r], layer].to(h.dtype)
            return (h, *output[1:]) if isinstance(output, tuple) else h
        return hook

    handles = [loaded.layer_module(0).register_forward_pre_hook(count, with_kwargs=True)]
    try:
        for layer in range(g.n_layers):
            handles.append(out_proj(loaded, layer).register_forward_pre_hook(head_hook(layer)))
            handles.append(mlp_module(loaded, layer).register_forward_hook(mlp_hook(layer)))
        with torch.no_grad():
            seqs = loaded.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         **generation_kwargs(loaded, spec))
    finally:
        for h in handles:
            h.remove()
    return finish(loaded, prompts, input_ids, attention_mask, seqs, spec, {"impl": "hooks"})
