"""Per-head access for every mapped family (phase 6): hook_z, hook_result, hook_pattern.

TransformerLens names, per layer L and query head h (grouped-query attention included: key/value
heads are shared, but every QUERY head has its own z, pattern and write):

    blocks.L.attn.hook_z        z_h = pattern_h @ V_kv(h), the input of the output projection,
                                slice h*head_dim:(h+1)*head_dim of the o_proj input
    blocks.L.attn.hook_result   z_h @ W_O[h]  (W_O[h] = the o_proj columns of head h; the o_proj bias
                                belongs to no head: sum_h result_h + b_O = o_proj output)
    blocks.L.attn.hook_pattern  softmax attention weights of head h (the query position's row)

`write` is what head h adds to the residual stream. For most families that is hook_result. Gemma 3
normalises the attention output (post_attention_layernorm, an RMSNorm) before the residual add; the
norm is linear once its scale is fixed, so with the scale of the actual forward pass,
write_h = result_h * (1 + w) / rms(o_proj output), and sum_h write_h + b_O-part equals the block's
attention write exactly (tests check this on tiny models and on the real ones).

Everything is read in ONE forward pass per batch with plain PyTorch hooks, and only at the positions
asked for (one per row, e.g. the last prompt token): results are [batch, heads, d_model] per layer,
never [batch, pos, heads, d_model]. Patterns need the eager attention kernel (sdpa returns no weights),
so `read_heads(..., pattern=True)` switches the model to eager for the call and restores it.
The pass stops after the last requested layer (no unembedding).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from emocheck.errors import ConfigError
from emocheck.models.architectures import check_layer, resolve


@dataclass(frozen=True)
class HeadGeometry:
    n_layers: int
    n_heads: int          # query heads
    n_kv_heads: int       # key/value heads (== n_heads without grouped-query attention)
    head_dim: int
    d_model: int

    @property
    def n_total(self) -> int:
        return self.n_layers * self.n_heads


def head_geometry(loaded) -> HeadGeometry:
    cfg = loaded.config
    n_kv = getattr(cfg, loaded.arch.n_kv_heads_attr, None) or loaded.n_heads
    return HeadGeometry(loaded.n_layers, loaded.n_heads, int(n_kv), loaded.head_dim, loaded.d_model)


def check_head(loaded, layer: int, head: int) -> None:
    check_layer(layer, loaded.n_layers)
    if not 0 <= int(head) < loaded.n_heads:
        raise ConfigError(f"head {head} is out of range: this model has heads 0..{loaded.n_heads - 1} per layer")


def out_proj(loaded, layer: int) -> torch.nn.Module:
    return resolve(loaded.layer_module(layer), loaded.arch.attn_out_proj)


def attn_module(loaded, layer: int) -> torch.nn.Module:
    return resolve(loaded.layer_module(layer), loaded.arch.attn_module)


def post_norm(loaded, layer: int):
    name = loaded.arch.attn_post_norm
    return resolve(loaded.layer_module(layer), name) if name else None


def output_weight(loaded, layer: int) -> torch.Tensor:
    """W_O of one layer as [n_heads, head_dim, d_model] (float32), so result_h = z_h @ W_O[h]."""
    g = head_geometry(loaded)
    proj = out_proj(loaded, layer)
    w = proj.weight.detach().float()
    if type(proj).__name__ == "Conv1D":        # GPT-2 stores [in, out]
        w_in_out = w
    else:                                      # nn.Linear stores [out, in]
        w_in_out = w.t()
    if tuple(w_in_out.shape) != (g.n_heads * g.head_dim, g.d_model):
        raise ConfigError(f"{loaded.name}: output projection of layer {layer} has shape {tuple(w.shape)}, "
                          f"expected {g.n_heads}*{g.head_dim} -> {g.d_model}")
    return w_in_out.reshape(g.n_heads, g.head_dim, g.d_model)


def output_bias(loaded, layer: int) -> torch.Tensor:
    b = getattr(out_proj(loaded, layer), "bias", None)
    return torch.zeros(loaded.d_model) if b is None else b.detach().float()


def norm_gain(norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-row gain of Gemma's RMSNorm at input x: norm(x) == x * gain (the frozen-scale linearisation)."""
    eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", 1e-6)
    xf = x.float()
    return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + norm.weight.float())


@contextlib.contextmanager
def eager_attention(loaded):
    """Temporarily use the eager attention kernel, the one that returns attention weights."""
    model = loaded.model
    before = getattr(model.config, "_attn_implementation", None)
    if before == "eager" or not hasattr(model, "set_attn_implementation"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


class _Stop(Exception):
    pass


@dataclass
class HeadReadout:
    """Per-head values at one position per row (the `positions` given to read_heads)."""

    layers: list[int]
    positions: torch.Tensor                                   # [B]
    z: dict[int, torch.Tensor] = field(default_factory=dict)        # [B, H, head_dim]
    result: dict[int, torch.Tensor] = field(default_factory=dict)   # [B, H, d_model]
    write: dict[int, torch.Tensor] = field(default_factory=dict)    # [B, H, d_model]
    bias_write: dict[int, torch.Tensor] = field(default_factory=dict)  # [B, d_model] the o_proj bias' share
    attn_write: dict[int, torch.Tensor] = field(default_factory=dict)  # [B, d_model] the block's attention write
    pattern: dict[int, torch.Tensor] = field(default_factory=dict)  # [B, H, T] attention from the position
    resid_post: dict[int, torch.Tensor] = field(default_factory=dict)  # [B, d_model]

    def write_projection(self, layer: int, direction: torch.Tensor) -> torch.Tensor:
        """[B, H]: each head's write projected on a unit direction."""
        u = direction.float() / direction.float().norm()
        return self.write[layer] @ u


def read_heads(loaded, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, *,
               layers=None, pattern: bool = False, resid: bool = False) -> HeadReadout:
    """Read every head of `layers` (default: all) at `positions` ([B] index per row) in one pass."""
    layers = list(range(loaded.n_layers)) if layers is None else sorted({int(x) for x in layers})
    for layer in layers:
        check_layer(layer, loaded.n_layers)
    g = head_geometry(loaded)
    rows = torch.arange(input_ids.shape[0])
    pos = positions.long().cpu()
    out = HeadReadout(layers, pos)
    w_o = {layer: output_weight(loaded, layer) for layer in layers}
    b_o = {layer: output_bias(loaded, layer) for layer in layers}
    handles = []
    last_layer = max(layers)

    def z_hook(layer):
        def hook(mod, args, kwargs):
            x = args[0] if args else kwargs["input"]
            z = x[rows, pos].detach().float().reshape(-1, g.n_heads, g.head_dim)
            out.z[layer] = z
            out.result[layer] = torch.einsum("bhk,hkd->bhd", z, w_o[layer])
        return hook

    def attn_hook(layer):
        def hook(mod, args, output):
            out_proj_out = output[0] if isinstance(output, tuple) else output
            o = out_proj_out[rows, pos].detach().float()        # sum_h result_h + b_O
            norm = post_norm(loaded, layer)
            if norm is not None:
                gain = norm_gain(norm, o)
                out.write[layer] = out.result[layer] * gain[:, None, :]
                out.bias_write[layer] = b_o[layer][None, :] * gain
                out.attn_write[layer] = norm(out_proj_out[rows, pos]).detach().float()
            else:
                out.write[layer] = out.result[layer]
                out.bias_write[layer] = b_o[layer][None, :].expand(o.shape[0], -1)
                out.attn_write[layer] = o
            if pattern:
                weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
                if weights is None:
                    raise ConfigError(f"{loaded.name}: the attention module of layer {layer} returned no weights")
                out.pattern[layer] = weights[rows, :, pos].detach().float()
        return hook

    def block_hook(layer):
        def hook(mod, args, output):
            if resid:
                h = output[0] if isinstance(output, tuple) else output
                out.resid_post[layer] = h[rows, pos].detach().float()
            if layer == last_layer:
                raise _Stop
        return hook

    ctx = eager_attention(loaded) if pattern else contextlib.nullcontext()
    try:
        with ctx, torch.no_grad():
            for layer in layers:
                handles.append(out_proj(loaded, layer).register_forward_pre_hook(z_hook(layer), with_kwargs=True))
                handles.append(attn_module(loaded, layer).register_forward_hook(attn_hook(layer)))
            for layer in set(layers) | {last_layer}:
                handles.append(loaded.layer_module(layer).register_forward_hook(block_hook(layer)))
            try:
                loaded.model(input_ids=input_ids.to(loaded.device), attention_mask=attention_mask.to(loaded.device))
            except _Stop:
                pass
    finally:
        for h in handles:
            h.remove()
    return out
