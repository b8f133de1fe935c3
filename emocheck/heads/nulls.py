"""Random-head nulls: many head sets of the same size from the same layers as a chosen set.

The control for "the top-8 gratitude heads" is not one random set but the distribution over many
sets with the chosen set's layer profile (as many heads per layer as the chosen set has there),
drawn uniformly without replacement within each layer, seeded. A random set may share heads with the
chosen one (with 4 heads per layer, Gemma 3 270M leaves little room); the overlap is reported.

`direct_path_effects` is the first-order (linear) estimate of replacing a set's outputs at the last
token: the change of the DIRECT contribution to a direction, sum over the set of
(replacement write - actual write) . u. It is exact for the direct path of families whose write is
linear in z, and ignores everything that later layers do with the change (validated against exact
patching in emocheck.heads.growth).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from emocheck.errors import ConfigError


def layer_counts(heads) -> dict[int, int]:
    return dict(sorted(Counter(int(layer) for layer, _ in heads).items()))


def random_head_sets(heads, n_heads: int, k: int, seed: int) -> list[tuple[tuple[int, int], ...]]:
    """k random sets with the layer profile of `heads` (each sorted), reproducible from `seed`."""
    if k < 1:
        raise ConfigError(f"need at least one random head set, got k={k}")
    counts = layer_counts(heads)
    for layer, c in counts.items():
        if c > n_heads:
            raise ConfigError(f"{c} heads asked for in layer {layer}, which has {n_heads}")
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(k):
        s = []
        for layer, c in counts.items():
            s.extend((layer, int(h)) for h in sorted(rng.choice(n_heads, size=c, replace=False)))
        sets.append(tuple(s))
    return sets


def set_masks(sets, n_layers: int, n_heads: int) -> torch.Tensor:
    """[n_sets, n_layers, n_heads] float masks."""
    m = torch.zeros(len(sets), n_layers, n_heads)
    rows = [i for i, s in enumerate(sets) for _ in s]
    if rows:
        layer, head = zip(*(lh for s in sets for lh in s))
        m[rows, list(layer), list(head)] = 1.0
    return m


def overlap(chosen, sets) -> np.ndarray:
    """Fraction of the chosen heads that each random set also contains."""
    c = set(chosen)
    return np.array([len(c & set(s)) / len(c) for s in sets])


def direct_path_effects(direct: torch.Tensor, replacement: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """[n_prompts, n_sets] first-order effects.

    direct [n_prompts, L, H]: each head's write projected on u at every prompt; replacement [L, H]:
    the projection of the replacing write (e.g. the neutral mean), or [n_prompts, L, H] one per prompt
    (resample ablation); masks [n_sets, L, H].
    """
    rep = replacement.double()
    delta = (rep if rep.dim() == 3 else rep[None]) - direct.double()  # [n, L, H]
    return delta.reshape(delta.shape[0], -1) @ masks.double().reshape(masks.shape[0], -1).T


def monte_carlo_p(observed: float, null, alternative: str = "greater") -> float:
    """(1 + #{null at least as extreme}) / (K + 1), in the claimed direction."""
    null = np.asarray(null, dtype=float)
    if alternative == "greater":
        hits = np.sum(null >= observed)
    elif alternative == "less":
        hits = np.sum(null <= observed)
    else:
        raise ConfigError("monte_carlo_p: alternative must be 'greater' or 'less'")
    return float((1 + hits) / (len(null) + 1))
