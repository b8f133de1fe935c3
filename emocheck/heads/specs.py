"""Head patches as data (like `PatchSpec` for the residual stream).

A :class:`HeadPatchSpec` names a set of heads ((layer, head) pairs), what replaces their output
(`hook_z`, the per-head input of the output projection) and where:

    mode      zero      z_h := 0
              mean      z_h := a given mean (the project's default: the mean over NEUTRAL prompts,
                        which keeps the activation on-distribution)
              resample  z_h := z_h of another prompt (values given per row, drawn by the caller with a seed)
              replace   z_h := given values, e.g. the head's output on emotion prompts written into
                        neutral runs (neutral -> emotion) or the reverse
    positions all       every real (non-pad) prompt position
              last      the last prompt position only
    window    generation only: steps [start, stop) also patch the newly processed token (step 0 is
              the prompt pass; same convention as residual patching)

The values are tensors passed beside the spec ({layer: [n_heads, head_dim]} shared by every row, or
{layer: [batch, n_heads, head_dim]} one per row); only the spec's heads are read from them. Heads,
layers and positions that the spec does not name are never written (tests prove it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from emocheck.errors import ConfigError

MODES = ("zero", "mean", "resample", "replace")
POSITIONS = ("all", "last")


@dataclass(frozen=True)
class HeadPatchSpec:
    heads: tuple[tuple[int, int], ...]
    mode: str = "mean"
    positions: str = "all"
    window: tuple[int, int] = (0, 1)
    max_new_tokens: int = 30
    label: str = ""                      # descriptive (recorded with results)

    def __post_init__(self):
        heads = tuple((int(a), int(b)) for a, b in self.heads)
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "window", tuple(int(x) for x in self.window))

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted({layer for layer, _ in self.heads}))

    def validate(self, n_layers: int, n_heads: int) -> "HeadPatchSpec":
        if not self.heads:
            raise ConfigError("HeadPatchSpec.heads is empty: give at least one (layer, head) pair")
        if len(set(self.heads)) != len(self.heads):
            raise ConfigError(f"HeadPatchSpec.heads repeats a head: {self.heads}")
        for layer, head in self.heads:
            if not 0 <= layer < n_layers:
                raise ConfigError(f"layer {layer} is out of range: this model has layers 0..{n_layers - 1}")
            if not 0 <= head < n_heads:
                raise ConfigError(f"head {head} is out of range: this model has heads 0..{n_heads - 1} per layer")
        if self.mode not in MODES:
            raise ConfigError(f"unknown head patch mode {self.mode!r}; one of {', '.join(MODES)}")
        if self.positions not in POSITIONS:
            raise ConfigError(f"unknown head patch positions {self.positions!r}; one of {', '.join(POSITIONS)}")
        start, stop = self.window
        if not 0 <= start < stop <= self.max_new_tokens:
            raise ConfigError(f"window {self.window} must satisfy 0 <= start < stop <= max_new_tokens "
                              f"({self.max_new_tokens})")
        return self

    def head_mask(self, n_layers: int, n_heads: int) -> torch.Tensor:
        """[n_layers, n_heads] bool: True for the spec's heads."""
        m = torch.zeros(n_layers, n_heads, dtype=torch.bool)
        for layer, head in self.heads:
            m[layer, head] = True
        return m

    def to_dict(self) -> dict:
        d = asdict(self)
        d["heads"] = [list(h) for h in self.heads]
        d["window"] = list(self.window)
        return d

    def replace(self, **kw) -> "HeadPatchSpec":
        return replace(self, **kw)


def stack_rows(specs: list[HeadPatchSpec], n_layers: int, n_heads: int) -> torch.Tensor:
    """[batch, n_layers, n_heads] per-row head masks (several head sets in one batched pass)."""
    modes = {s.mode for s in specs}
    positions = {s.positions for s in specs}
    if len(modes) > 1 or len(positions) > 1:
        raise ConfigError("rows batched together must share mode and positions; got "
                          f"modes {sorted(modes)} and positions {sorted(positions)}")
    return torch.stack([s.validate(n_layers, n_heads).head_mask(n_layers, n_heads) for s in specs])


def expand_values(values, layer: int, batch: int, n_heads: int, head_dim: int, mode: str, dtype, device):
    """Values for one layer as [batch, n_heads, head_dim] (zeros for mode 'zero')."""
    if mode == "zero":
        return torch.zeros(batch, n_heads, head_dim, dtype=dtype, device=device)
    if values is None or layer not in values:
        raise ConfigError(f"head patch mode {mode!r} needs values for layer {layer} "
                          f"({{layer: [n_heads, head_dim] or [batch, n_heads, head_dim]}})")
    v = torch.as_tensor(values[layer])
    if v.dim() == 2:
        v = v.unsqueeze(0).expand(batch, -1, -1)
    if tuple(v.shape) != (batch, n_heads, head_dim):
        raise ConfigError(f"values for layer {layer} have shape {tuple(v.shape)}; expected "
                          f"[{n_heads}, {head_dim}] or [{batch}, {n_heads}, {head_dim}]")
    if not torch.isfinite(v).all():
        raise ConfigError(f"values for layer {layer} contain NaN or inf")
    return v.to(dtype=dtype, device=device)


def apply_head_patch(z: torch.Tensor, pos_mask: torch.Tensor, head_mask: torch.Tensor, values: torch.Tensor,
                     n_heads: int) -> torch.Tensor:
    """The one patch rule, shared by the nnsight and the plain-hook implementations (bit-identical).

    z [B, T, H*hd] (o_proj input); pos_mask [B, T] bool; head_mask [B, H] bool; values [B, H, hd].
    Returns the patched z; entries outside pos_mask x head_mask are the input's own values.
    """
    b, t, width = z.shape
    zh = z.view(b, t, n_heads, width // n_heads)
    where = pos_mask[:, :, None, None] & head_mask[:, None, :, None]
    return torch.where(where, values[:, None].to(z.dtype), zh).reshape(b, t, width)
