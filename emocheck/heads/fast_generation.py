"""Head patches during greedy generation on the fast phase-5 engine (`emocheck.patching.engine`).

Every design row carries its own head patch (or none: an unpatched baseline row in the same batch),
so a top set, many random sets and the baseline on the same prompts are ONE batched generation that
shares each prompt's prefix cache, drops finished rows and scores the continuation NLL under the
unpatched model on that cache.

The patch rule is `emocheck.heads.specs.apply_head_patch` in a forward pre-hook of each touched
layer's output projection (`hook_z`), with the conventions of `emocheck.heads.reference` (the plain-hook
reference) and `emocheck.heads.patching.generate_head_patched` (nnsight): step 0 is the prompt pass and
patches the spec's positions ('last': the last prompt token, which is all the engine feeds at step 0,
so the prefix stays shared; 'all': every real prompt token, so the whole prompt is fed); steps
1 <= s < window[1] patch the newly processed token. Tests: identical greedy tokens to both on every
tiny family, GQA included (tests/test_heads_fast_generation.py).
"""
from __future__ import annotations

import torch

from emocheck.errors import ConfigError
from emocheck.heads.access import head_geometry, out_proj
from emocheck.heads.specs import HeadPatchSpec, apply_head_patch, expand_values


class HeadRowPatch:
    """Per-row head patches for `generate_fast(..., intervention=...)`.

    specs: one HeadPatchSpec or None (unpatched) per design row; the patched rows must share mode,
    positions, window and max_new_tokens. values: {layer: [n_heads, head_dim]} (every row) or
    {layer: [n_rows, n_heads, head_dim]} (one per row; rows of a None spec are ignored); unused for
    mode 'zero'.
    """

    def __init__(self, loaded, specs: list[HeadPatchSpec | None], values=None):
        g = head_geometry(loaded)
        real = [s for s in specs if s is not None]
        if not real:
            raise ConfigError("HeadRowPatch: no row has a head patch; generate without one")
        shared = {(s.mode, s.positions, s.window, s.max_new_tokens) for s in real}
        if len(shared) > 1:
            raise ConfigError("rows generated together must share mode, positions, window and max_new_tokens; "
                              f"got {sorted(shared)}")
        self.mode, self.positions, self.window, self.max_new_tokens = next(iter(shared))
        n = len(specs)
        masks = torch.zeros(n, g.n_layers, g.n_heads, dtype=torch.bool)
        for i, s in enumerate(specs):
            if s is not None:
                masks[i] = s.validate(g.n_layers, g.n_heads).head_mask(g.n_layers, g.n_heads)
        self.layers = [layer for layer in range(g.n_layers) if masks[:, layer].any()]
        dev = loaded.device
        self.masks = {layer: masks[:, layer].to(dev) for layer in self.layers}
        self.values = {layer: self._values(values, layer, n, g, loaded.dtype, dev) for layer in self.layers}
        self.n_heads = g.n_heads
        self.shares_prefix = self.positions == "last"
        self.state = None                     # (pos_mask or None, {layer: (head_mask, values)}) this step
        self.handles = [out_proj(loaded, layer).register_forward_pre_hook(self._hook(layer)) for layer in self.layers]

    def _values(self, values, layer, n, g, dtype, dev):
        if self.mode == "zero":
            return torch.zeros(n, g.n_heads, g.head_dim, dtype=dtype, device=dev)
        if values is not None and layer in values and torch.as_tensor(values[layer]).dim() == 3:
            v = torch.as_tensor(values[layer])
            if v.shape[0] != n:
                raise ConfigError(f"values for layer {layer} have {v.shape[0]} rows; the design has {n}")
            v = torch.nan_to_num(v.float(), nan=0.0)      # rows without a patch may carry NaN placeholders
            return expand_values({layer: v}, layer, n, g.n_heads, g.head_dim, self.mode, dtype, dev)
        return expand_values(values, layer, n, g.n_heads, g.head_dim, self.mode, dtype, dev)

    def set_step(self, step: int, rows: torch.Tensor, prompt_mask) -> None:
        if not self.window[0] <= step < self.window[1]:
            self.state = None
            return
        pos = prompt_mask.bool() if (step == 0 and prompt_mask is not None and self.positions == "all") else None
        if step == 0 and prompt_mask is not None and self.positions == "last":
            pos = torch.zeros_like(prompt_mask, dtype=torch.bool)
            pos[:, -1] = True                 # left padding: the last column is every row's last token
        self.state = (pos, {layer: (self.masks[layer][rows], self.values[layer][rows]) for layer in self.layers})

    def _hook(self, layer):
        def hook(mod, args):
            if self.state is None:
                return None
            pos, per_layer = self.state
            x = args[0]
            if pos is None:
                pos = torch.ones(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)
            head_mask, vals = per_layer[layer]
            return (apply_head_patch(x, pos, head_mask, vals, self.n_heads), *args[1:])
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def generate_heads_fast(loaded, prompts: list[str], specs, values=None, *, max_new_tokens: int | None = None,
                        score_fluency: bool = True, max_rows: int | None = None):
    """Greedy generation of `prompts` (one design row each) with per-row head patches; `specs` is one
    HeadPatchSpec for every row or a list with one spec (or None) per row. Returns the engine's
    GenerationResult (fluency NLL in meta["continuation_nll"] when `score_fluency`)."""
    from emocheck.patching.engine import generate_fast
    from emocheck.patching.residual import PatchSpec

    specs = [specs] * len(prompts) if isinstance(specs, HeadPatchSpec) else list(specs)
    if len(specs) != len(prompts):
        raise ConfigError(f"{len(specs)} head patch specs for {len(prompts)} prompts")
    patch = HeadRowPatch(loaded, specs, values)
    steps = max_new_tokens or patch.max_new_tokens
    if steps != patch.max_new_tokens:
        raise ConfigError(f"max_new_tokens {steps} differs from the specs' {patch.max_new_tokens}")
    gen_spec = PatchSpec(max_new_tokens=steps, window=(0, 1), model=getattr(loaded, "name", None))
    try:
        res = generate_fast(loaded, prompts, gen_spec, None, score_fluency=score_fluency, max_rows=max_rows,
                            intervention=patch)
    finally:
        patch.close()
    res.meta["impl"] = "prefix-cache+heads"
    return res
