"""Circuits: the smallest set of components that recovers a stated share of the emotion effect.

Everything is at the last prompt token, on prompts of the emotion, with MEAN ablation (each
component's mean over neutral training prompts keeps activations on-distribution). Per prompt i:

    full_i     the clean metric (nothing ablated)
    none_i     every component mean-ablated (what is left is the last token's embedding and biases)
    keep_S,i   everything OUTSIDE S mean-ablated; S is recomputed from that patched residual
    drop_S,i   only S mean-ablated

    faithfulness(S)  = sum_i (keep_S,i - none_i) / sum_i (full_i - none_i)   share S recovers alone
    completeness(S)  = sum_i (drop_S,i - none_i) / sum_i (full_i - none_i)   share left without S
                                                                               (lower = more complete)
    minimality(c)    = faithfulness(S) - faithfulness(S minus c), for each member c

`discover` grows S along a ranking (attribution on TRAINING prompts) and keeps the smallest prefix
whose training faithfulness reaches `share`; the held-out prompts then judge it against random
circuits with the same type-and-layer profile (as many heads per layer, drawn uniformly among that
layer's heads, and the same MLPs, one per layer; seeded). Matching on type matters: MLP writes are
larger than a head's, so a random circuit that may swap the circuit's MLPs for heads is beaten by
construction; matched, the comparison is between the circuit's heads and other heads of their layers.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from emocheck.progress import tqdm

from emocheck.circuits.components import Activations, LastTokenRun
from emocheck.circuits.exact import patched_metric
from emocheck.errors import ConfigError


def set_mask(sets, n_components: int) -> torch.Tensor:
    """[len(sets), n_components] bool, True for each set's members."""
    m = torch.zeros(len(sets), n_components, dtype=torch.bool)
    for r, s in enumerate(sets):
        m[r, list(s)] = True
    return m


@dataclass
class SetEvaluation:
    """Per-prompt metrics: full [n], none [n], keep [n, R], drop [n, R] (R = number of sets)."""

    full: np.ndarray
    none: np.ndarray
    keep: np.ndarray
    drop: np.ndarray | None = None

    @property
    def total(self) -> float:
        return float(np.sum(self.full - self.none))

    def faithfulness(self) -> np.ndarray:
        return np.sum(self.keep - self.none[:, None], 0) / self.total

    def completeness(self) -> np.ndarray:
        if self.drop is None:
            raise ConfigError("this evaluation was run without the ablate-only rows (drop=False)")
        return np.sum(self.drop - self.none[:, None], 0) / self.total


def evaluate_sets(loaded, texts, source: Activations, sets, *, drop: bool = True, metric: str = "projection",
                  direction=None, token_ids=None, rows_per_pass: int = 256, progress: bool = False,
                  runs=None) -> SetEvaluation:
    """Exact keep-only (and drop-only) runs of every set on every prompt (one batched last-token pass
    per prompt and chunk of rows, over the prompt's cached prefix). `runs`: the prompts' LastTokenRun,
    one per text, where the caller already has them (their prefixes are not recomputed)."""
    from emocheck.circuits.components import all_components

    n_comp = len(all_components(loaded))
    keep_mask = ~set_mask(sets, n_comp)                 # ablate everything outside the set
    # row 0 ablates nothing (the clean metric), row 1 everything; batched with the sets' rows, since a
    # one-row pass costs about as much as a 64-row one (it reads every weight for one token)
    rows = [torch.zeros(1, n_comp, dtype=torch.bool), torch.ones(1, n_comp, dtype=torch.bool), keep_mask]
    if drop:
        rows.append(set_mask(sets, n_comp))
    mask = torch.cat(rows)
    kw = dict(metric=metric, direction=direction, token_ids=token_ids)
    full, none, keep, dropped = [], [], [], []
    texts = list(texts)
    if runs is not None and len(runs) != len(texts):
        raise ConfigError(f"evaluate_sets got {len(runs)} prefix runs for {len(texts)} prompts")
    for i, text in enumerate(tqdm(texts, desc="circuit sets", disable=not progress, leave=False)):
        run = runs[i] if runs is not None else LastTokenRun(loaded, text)
        vals = np.concatenate([patched_metric(run, mask[s:s + rows_per_pass], source, **kw)
                               for s in range(0, mask.shape[0], rows_per_pass)])
        full.append(vals[0])
        none.append(vals[1])
        keep.append(vals[2:2 + len(sets)])
        if drop:
            dropped.append(vals[2 + len(sets):])
    return SetEvaluation(np.array(full), np.array(none), np.array(keep), np.array(dropped) if drop else None)


def discover(loaded, texts, source: Activations, ranking, *, share: float = 0.8, max_size: int | None = None,
             block: int = 64, tail_step: int = 8, **kw) -> dict:
    """Smallest prefix of `ranking` (component indices, most important first) whose faithfulness on
    `texts` reaches `share`. Returns {'circuit': [...], 'size', 'reached', 'curve': faithfulness per
    size (None where not evaluated), 'total_effect'}. kw goes to evaluate_sets (direction, runs, ...).

    Sizes are evaluated in order, `block` at a time, until a block reaches `share`: the circuit is the
    same as from evaluating every size (the rule only looks up to the first hit), and the sizes after
    it, the costliest rows (they keep the most MLPs), are evaluated only every `tail_step`-th size
    (and the largest), for the curve's figure."""
    _check_share(share)
    ranking = [int(c) for c in ranking]
    max_size = len(ranking) if max_size is None else min(max_size, len(ranking))
    if block < 1 or tail_step < 1:
        raise ConfigError(f"discover needs block >= 1 and tail_step >= 1, got {block}, {tail_step}")
    curve: list[float | None] = [None] * max_size
    first = None
    done = 0
    while done < max_size:
        sizes = list(range(done + 1, min(max_size, done + block) + 1))
        ev = evaluate_sets(loaded, texts, source, [ranking[:k] for k in sizes], drop=False, **kw)
        if first is None:
            first = ev
        for k, f in zip(sizes, ev.faithfulness()):
            curve[k - 1] = float(f)
        done = sizes[-1]
        if any(curve[k - 1] >= share for k in sizes):
            break
    tail = sorted({*range(done + tail_step, max_size + 1, tail_step), max_size} - set(range(1, done + 1)))
    if tail:
        ev = evaluate_sets(loaded, texts, source, [ranking[:k] for k in tail], drop=False, **kw)
        for k, f in zip(tail, ev.faithfulness()):
            curve[k - 1] = float(f)
    return {**smallest_prefix(ranking, curve, share), "curve": curve, "total_effect": first.total / len(first.full)}


def _check_share(share: float) -> None:
    if not 0 < share <= 1:
        raise ConfigError(f"share must be in (0, 1], got {share}")


def smallest_prefix(ranking, curve, share: float) -> dict:
    """The prefix search of `discover`, apart from the model: curve[k - 1] is the faithfulness of
    ranking[:k]; the circuit is the shortest prefix reaching `share`, or all len(curve) components
    when none does. (Split out so the rule can be calibrated on simulated metrics.)"""
    _check_share(share)
    values = np.array([np.nan if v is None else v for v in curve], dtype=float)   # None: size not evaluated
    hits = np.flatnonzero(values >= share)
    size = int(hits[0]) + 1 if hits.size else len(curve)
    return {"circuit": [int(c) for c in ranking[:size]], "size": size, "reached": bool(hits.size)}


def ablation_ranking(attribution) -> list[int]:
    """Components by their estimated ablation effect, largest first. `attribution` is the first-order
    change of the metric when a component takes its neutral (source) value, so the DROP it causes
    is -attribution."""
    drop = -torch.as_tensor(attribution, dtype=torch.float64)
    return torch.argsort(drop, descending=True, stable=True).tolist()


def layer_profile(circuit, components) -> dict[tuple[int, str], int]:
    """{(layer, kind): members of that kind in that layer}, in (layer, kind) order."""
    return dict(sorted(Counter((components[c].layer, components[c].kind) for c in circuit).items()))


def random_circuits(circuit, components, k: int, seed: int) -> list[list[int]]:
    """k random circuits with the type-and-layer profile of `circuit`: per layer and component type, as
    many components as the circuit has there, drawn without replacement among that layer's components
    of that type (a layer's single MLP is therefore in every random circuit exactly when it is in the
    circuit)."""
    if k < 1:
        raise ConfigError(f"need at least one random circuit, got k={k}")
    pools: dict[tuple[int, str], list[int]] = {}
    for i, c in enumerate(components):
        pools.setdefault((c.layer, c.kind), []).append(i)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        s = []
        for group, count in layer_profile(circuit, components).items():
            s.extend(int(x) for x in rng.choice(pools[group], size=count, replace=False))
        out.append(sorted(s))
    return out


def minimality_sets(circuit) -> list[list[int]]:
    """The circuit without each of its members, in member order."""
    return [[c for c in circuit if c != m] for m in circuit]
