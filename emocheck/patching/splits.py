"""Tuning / judged split of the neutral generation prompts: by hash, stratified by topic and genre.

The old split took the judged prompts from the top of the file and the tuning prompts from its
bottom, so the judged sample came from 4-5 topics and the layer/alpha were tuned on one. Here the
prompts are put in one deterministic order that cycles through the topics (topic order and the order
inside a topic both by sha256(seed:id)), and inside a topic prefers the genre used least so far.
Tuning takes the first `n_tune` of that order, judged the next `n_judged`: both spread over as many
topics and genres as their size allows, disjoint by construction, and independent of file order.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import pandas as pd

from emocheck.errors import ConfigError


def _h(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def stratified_order(prompts: pd.DataFrame, seed: int = 0, topic: str = "topic", genre: str = "genre") -> list[str]:
    """Prompt ids in a deterministic order that cycles over topics and balances genres."""
    for col in ("id", topic, genre):
        if col not in prompts:
            raise ConfigError(f"generation prompts need a {col!r} column for the stratified split")
    pools = {t: sorted(g["id"].tolist(), key=lambda i: _h(seed, i)) for t, g in prompts.groupby(topic)}
    genre_of = dict(zip(prompts["id"], prompts[genre]))
    topics = sorted(pools, key=lambda t: _h(seed, f"topic:{t}"))
    used: Counter = Counter()
    order: list[str] = []
    while any(pools.values()):
        for t in topics:
            pool = pools[t]
            if not pool:
                continue
            # least-used genre first; the hash order breaks ties (pool is already hash-sorted)
            best = min(range(len(pool)), key=lambda k: (used[genre_of[pool[k]]], k))
            pid = pool.pop(best)
            used[genre_of[pid]] += 1
            order.append(pid)
    return order


def split_prompts(prompts: pd.DataFrame, n_judged: int, n_tune: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(judged, tuning) tables, disjoint; raises ConfigError when the file is too small for both."""
    if n_judged + n_tune > len(prompts):
        raise ConfigError(
            f"the design wants {n_judged} judged + {n_tune} tuning generation prompts but the file has "
            f"{len(prompts)}; lower the profile's generation_prompts or the patching tuning_prompts")
    order = stratified_order(prompts, seed)
    by_id = prompts.set_index("id", drop=False)
    tune = by_id.loc[order[:n_tune]].reset_index(drop=True)
    judged = by_id.loc[order[n_tune:n_tune + n_judged]].reset_index(drop=True)
    return judged, tune


def balance(df: pd.DataFrame, column: str) -> dict:
    """{value: count} of a split (reported beside the design)."""
    return {str(k): int(v) for k, v in df[column].value_counts().sort_index().items()}
