"""Phase 5 conditions: what is patched (or prompted) on which judged prompt.

A :class:`Condition` is one direction (already multiplied by alpha) applied to a set of prompts.
Null directions are drawn **fresh for every prompt** (one Condition per prompt, the same name, seed
recorded): prompt i's control is its own random draw, so the per-prompt differences treated - control
are independent across prompts and each carries the direction-to-direction variance. A paired test
on them therefore asks "is the vector better than a random direction" (directions as a random
effect), not "better than these three draws". With n judged prompts each null has K = n draws.

Design per emotion e at the selected layer L and alpha (ci: n = 48, half = 24):

=================  ===========================================================  ===========
name               direction                                                    prompts
=================  ===========================================================  ===========
``baseline``       zero (no token changes; tests prove it)                      all
``e``              alpha * v_e                                                  all
``random:e``       fresh Gaussian draw of norm ||v_e|| per prompt               all
``permuted:e``     fresh label-permuted difference of means per prompt          all
``neg:e``          -alpha * v_e                                                 half
``specific:e``     v_e's component off the shared emotional direction           half
``subspace:e``     v_e projected onto e's top-k PCA subspace (rescaled)         half
``randsub:e``      v_e projected onto a fresh random k-subspace per prompt      half
``prompt:e``       no patch; an emotional prefix before the neutral opening     half
``random_dm:e``    as random:e but at the dose-matched alpha (only if it        half
                   differs from alpha; see selection.dose_matched_alpha)
=================  ===========================================================  ===========

"half" is a seeded, hash-ordered half of the judged prompts, the same for every emotion, so all
comparisons among these conditions are paired on it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from emocheck.patching.directions import (emotion_direction, label_permuted_directions, random_directions,
                                          random_subspace_directions, subspace_direction)
from emocheck.study import EMBEDDED, EMBEDDED_EMOTIONS

#: The embedded study's emotions and prompting prefixes (emocheck.study); callers pass the active study's.
EMOTIONS = EMBEDDED_EMOTIONS
PROMPT_PREFIXES = {e: d.prompt_prefix for e, d in EMBEDDED.items()}
SUBSPACE_K = 3


@dataclass
class Condition:
    name: str
    kind: str                 # baseline | emotion | negated | specific | subspace | random | permuted | randsub | prompt
    emotion: str | None
    layer: int | None
    alpha: float
    vector: torch.Tensor      # [d] already multiplied by alpha (zeros for baseline and prompt)
    seed: int | None = None
    norm: float = 0.0         # norm of the unscaled direction (= ||v_e|| for all but the baseline)
    prompt_ids: tuple | None = None   # None = every prompt of the run
    prefix: str = ""          # text put before the prompt (prompting reference)


def seed_slot(emotion: str, emotions) -> int:
    """The emotion's seed offset: its place in the embedded study for the embedded emotions (so a run
    of some of them draws what the whole study draws), after them by its place in `emotions` otherwise
    (no two emotions of a study share draws)."""
    if emotion in EMBEDDED_EMOTIONS:
        return EMBEDDED_EMOTIONS.index(emotion)
    return len(EMBEDDED_EMOTIONS) + list(emotions).index(emotion)


def subset_of(ids, k: int | None, seed: int) -> tuple:
    """The first `k` of `ids` in a seeded hash order (None: all), in the original order. Subsets of
    one id list and seed are nested: a smaller k is part of every larger one."""
    ids = list(ids)
    if k is None or k >= len(ids):
        return tuple(ids)
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"half:{seed}:{i}".encode()).hexdigest())
    keep = set(ranked[: max(0, int(k))])
    return tuple(i for i in ids if i in keep)


def half_of(ids, seed: int) -> tuple:
    """A seeded half (rounded up) of `ids`, chosen by hash, in the original order."""
    ids = list(ids)
    return subset_of(ids, (len(ids) + 1) // 2, seed)


def per_prompt(name: str, kind: str, emotion, layer, alpha: float, directions: torch.Tensor, prompt_ids,
               seeds, norm: float) -> list[Condition]:
    """One Condition per prompt: prompt_ids[j] gets alpha * directions[j] (seed seeds[j])."""
    return [Condition(name, kind, emotion, layer, alpha, alpha * directions[j], seed=int(seeds[j]), norm=norm,
                      prompt_ids=(pid,)) for j, pid in enumerate(prompt_ids)]


#: (emotion, layer, site) -> (training activations of the emotion [n_e, d], of neutral [n_0, d])
NullSource = Callable[[str, int, str], tuple]


def claim_conditions(vecs, layer: int, alpha: float, site: str, prompt_ids, seed: int, *,
                     null_source: NullSource | None = None, subspaces=None, k: int = SUBSPACE_K,
                     dose_alpha: float | None = None, emotions=EMOTIONS,
                     secondary=("negated", "specific", "subspace", "prompt", "dose_matched"),
                     null_prompts: int | None = None, secondary_prompts: int | None = None,
                     prefixes: dict | None = None) -> list[Condition]:
    """The judged design (module doc). `subspaces.components(e, layer, k, site)` gives [k, d];
    `secondary` names the half-prompt conditions to include (a smaller run drops some); `prefixes`
    (default the embedded study's) gives each emotion's prompting prefix: an emotion without one has
    no prompting condition.

    Budget (a profile's time): `null_prompts` runs the random and label-permuted draws on that many
    judged prompts only (default all), `secondary_prompts` the secondary conditions on that many
    (default half); both are taken in the same seeded hash order, so the secondary prompts are part
    of the null prompts and every comparison stays paired on its own prompts. The defaults are the
    design above, unchanged."""
    ids = tuple(prompt_ids)
    half = half_of(ids, seed) if secondary_prompts is None else subset_of(ids, secondary_prompts, seed)
    null_ids = subset_of(ids, null_prompts, seed)
    if not set(half) <= set(null_ids):
        half = subset_of(ids, min(len(half), len(null_ids)), seed)
    d = vecs.vector(emotions[0], layer, site=site).shape[-1]
    conds = [Condition("baseline", "baseline", None, layer, 0.0, torch.zeros(d, dtype=torch.float64))]
    zero = torch.zeros(d, dtype=torch.float64)
    for ei, e in enumerate(emotions):
        v = emotion_direction(vecs, e, layer, site)
        n = float(v.norm())
        base = seed + 100_000 * seed_slot(e, emotions)
        conds.append(Condition(e, "emotion", e, layer, alpha, alpha * v, norm=n))
        # Draws are indexed by the prompt's position in `ids`, so a prompt gets the same draw whatever
        # the null subset (the first len(null_ids) of the default draws are not reused by position).
        pos = [ids.index(i) for i in null_ids]
        seeds = [base + j for j in range(len(ids))]
        rand = random_directions(d, len(ids), base, n)
        conds += per_prompt(f"random:{e}", "random", e, layer, alpha, rand[pos], null_ids, [seeds[j] for j in pos], n)
        if null_source is not None:
            xe, x0 = null_source(e, layer, site)
            pseeds = [base + 10_000 + j for j in range(len(ids))]
            perm, _ = label_permuted_directions(xe, x0, len(ids), base + 10_000, norm=n)
            conds += per_prompt(f"permuted:{e}", "permuted", e, layer, alpha, perm[pos], null_ids,
                                [pseeds[j] for j in pos], n)
        if "negated" in secondary:
            conds.append(Condition(f"neg:{e}", "negated", e, layer, alpha, -alpha * v, norm=n, prompt_ids=half))
        if "specific" in secondary:
            conds.append(Condition(f"specific:{e}", "specific", e, layer, alpha,
                                   alpha * emotion_direction(vecs, e, layer, site, "specific"), norm=n, prompt_ids=half))
        if subspaces is not None and "subspace" in secondary:
            comps = subspaces.components(e, layer, k, site=site)
            conds.append(Condition(f"subspace:{e}", "subspace", e, layer, alpha, alpha * subspace_direction(v, comps),
                                   norm=n, prompt_ids=half))
            sseeds = [base + 20_000 + j for j in range(len(half))]
            conds += per_prompt(f"randsub:{e}", "randsub", e, layer, alpha,
                                random_subspace_directions(v, comps.shape[0], len(half), base + 20_000),
                                half, sseeds, n)
        if "prompt" in secondary and (prefixes or PROMPT_PREFIXES).get(e):
            conds.append(Condition(f"prompt:{e}", "prompt", e, layer, 0.0, zero.clone(), norm=0.0, prompt_ids=half,
                                   prefix=(prefixes or PROMPT_PREFIXES)[e]))
        if "dose_matched" in secondary and dose_alpha is not None and float(dose_alpha) != float(alpha):
            mseeds = [base + 30_000 + j for j in range(len(half))]
            conds += per_prompt(f"random_dm:{e}", "random_dm", e, layer, float(dose_alpha),
                                random_directions(d, len(half), base + 30_000, n), half, mseeds, n)
    return conds


def sweep_conditions(vecs, layers, alphas, site: str, seed: int, prompt_ids, emotions=EMOTIONS) -> list[Condition]:
    """Tuning sweep: every emotion vector and a random direction (fresh per prompt, norm = mean ||v_e||)
    at every layer x alpha."""
    ids = tuple(prompt_ids)
    d = vecs.vector(emotions[0], layers[0], site=site).shape[-1]
    conds = [Condition("baseline", "baseline", None, None, 0.0, torch.zeros(d, dtype=torch.float64))]
    units = random_directions(d, len(ids), seed, 1.0)
    for layer in layers:
        vs = {e: emotion_direction(vecs, e, layer, site) for e in emotions}
        mean_norm = float(np.mean([float(v.norm()) for v in vs.values()]))
        for a in alphas:
            for e, v in vs.items():
                conds.append(Condition(f"{e}@L{layer}a{a:g}", "emotion", e, layer, a, a * v, norm=float(v.norm())))
            conds += per_prompt(f"random@L{layer}a{a:g}", "random", None, layer, a, units * mean_norm, ids,
                                [seed + j for j in range(len(ids))], mean_norm)
    return conds
