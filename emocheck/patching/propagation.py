"""Propagation (the seed's second step): does patching v_e at layer L move the residual stream's
projection on the emotion direction at LATER layers more than a random direction of the same norm?

Representation-level, no generation (one last-token pass per row over its prompt's cached prefix): the delta alpha * direction is added
at layer L's site on the last prompt position (the position generation step 0 patches), and the
last-position resid_post of every layer l >= L is read and projected on unit(v_e at layer l). The
shift is patched - unpatched projection, per prompt. Controls are drawn fresh per prompt, like the
generation nulls (random Gaussian and label-permuted directions, norm ||v_e||).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emocheck.errors import ConfigError
from emocheck.patching.running import delta_dtype
from emocheck.storage import atomic_save_figure


def last_position_residuals(loaded, texts: list[str], layer: int, site: str, deltas: torch.Tensor,
                            read_layers, rows_per_pass: int = 256) -> torch.Tensor:
    """[B, len(read_layers), d] float64: the last-position resid_post of each read layer (sorted) after
    adding deltas[b] at `layer`'s site on the last position of row b.

    The patch touches the last position only and attention is causal, so every earlier position is the
    same in all rows of a prompt: each distinct prompt runs its prefix once (use_cache=True) and its
    rows then run the last token alone over copies of that cache (as emocheck.heads.prefix_cache does),
    one token per row instead of the whole prompt. Equal to whole-prompt patched passes up to float
    rounding (tests/test_patching_propagation.py)."""
    import copy

    from emocheck.patching.engine import cache_kwarg, returned_cache

    if deltas.shape[0] != len(texts):
        raise ConfigError(f"{deltas.shape[0]} deltas for {len(texts)} prompts: give one delta per prompt")
    if site not in ("hook_resid_pre", "hook_resid_post"):
        raise ConfigError(f"unknown site {site!r}")
    read = sorted(read_layers)
    out = torch.empty(len(texts), len(read), loaded.d_model, dtype=torch.float64)
    dtype = delta_dtype(loaded.dtype)
    body = loaded.model.base_model
    kw = cache_kwarg(body)
    state, captured = {}, {}

    def patch(h):
        h[:, -1] += state["delta"]

    def make_post(l):
        def hook(mod, args, output):
            h = output[0] if isinstance(output, tuple) else output
            if "delta" in state:
                if l == layer and site == "hook_resid_post":
                    patch(h)
                if l in read:
                    captured[l] = h[:, -1].detach().double().cpu()
        return hook

    def pre_hook(mod, args, kwargs):
        if "delta" in state:
            patch(args[0] if args else kwargs["hidden_states"])

    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        by_text.setdefault(t, []).append(i)
    handles = []
    try:
        if site == "hook_resid_pre":
            handles.append(loaded.layer_module(layer).register_forward_pre_hook(pre_hook, with_kwargs=True))
        for l in sorted(set(read) | {layer}):
            handles.append(loaded.layer_module(l).register_forward_hook(make_post(l)))
        with torch.no_grad():
            for text, rows in by_text.items():
                ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"].to(loaded.device)
                prefix = returned_cache(body(input_ids=ids[:, :-1], use_cache=True)) if ids.shape[1] > 1 else None
                for s in range(0, len(rows), rows_per_pass):
                    chunk = rows[s:s + rows_per_pass]
                    state["delta"] = deltas[chunk].to(device=loaded.device, dtype=dtype)
                    if prefix is None:          # a one-token prompt: nothing to share
                        body(input_ids=ids.expand(len(chunk), -1), use_cache=False)
                    else:
                        cache = copy.deepcopy(prefix)
                        cache.batch_repeat_interleave(len(chunk))
                        body(input_ids=ids[:, -1:].expand(len(chunk), -1), use_cache=True, **{kw: cache})
                    out[chunk] = torch.stack([captured[l] for l in read], 1)
                    state.pop("delta")
    finally:
        for h in handles:
            h.remove()
    return out


def last_position_projections(loaded, texts: list[str], layer: int, site: str, deltas: torch.Tensor,
                              read_units: dict[int, torch.Tensor]) -> np.ndarray:
    """[B, len(read_units)] projections of the last-position resid_post at each read layer (sorted),
    after adding deltas[b] at `layer`'s site (last position) of row b."""
    resid = last_position_residuals(loaded, texts, layer, site, deltas, read_units)
    return _project(resid, read_units)


def _project(resid: torch.Tensor, read_units: dict[int, torch.Tensor]) -> np.ndarray:
    read = sorted(read_units)
    units = torch.stack([read_units[l].double() / read_units[l].double().norm() for l in read])   # [R, d]
    return resid.mul(units[None]).sum(-1).numpy()


def propagation_table(loaded, prompts: pd.DataFrame, conditions, layer: int, site: str, read_units_by_emotion) -> pd.DataFrame:
    """Long table: sample_id, condition, kind, emotion, read_layer, projection, shift (vs unpatched).

    `conditions`: Conditions from conditions.claim_conditions (baseline, emotion, random, permuted are
    used); `read_units_by_emotion`: {emotion: {read layer: v_e at that layer}}. Each row (condition,
    prompt) runs once; its residuals are projected on every emotion's directions that read it.
    """
    use = [c for c in conditions if c.kind in ("baseline", "emotion", "random", "permuted")]
    index = {pid: i for i, pid in enumerate(prompts["id"])}
    rows = [(c, pid) for c in use for pid in (prompts["id"] if c.prompt_ids is None else c.prompt_ids)]
    emotions = list(read_units_by_emotion)
    run = [k for k, (c, _) in enumerate(rows) if c.emotion is None or c.emotion in emotions]
    read_all = sorted(set().union(*(set(u) for u in read_units_by_emotion.values()))) if emotions else []
    resid = {}
    if run and read_all:
        texts = [prompts["text"].iloc[index[rows[k][1]]] for k in run]
        deltas = torch.stack([rows[k][0].vector for k in run])
        got = last_position_residuals(loaded, texts, layer, site, deltas, read_all)
        resid = {k: got[j] for j, k in enumerate(run)}
    frames = []
    for emotion, units in read_units_by_emotion.items():
        mine = [k for k in run if rows[k][0].emotion in (emotion, None)]
        cols = [read_all.index(l) for l in sorted(units)]
        proj = _project(torch.stack([resid[k][cols] for k in mine]), units)
        for j, l in enumerate(sorted(units)):
            frames.append(pd.DataFrame({"sample_id": [rows[k][1] for k in mine],
                                        "condition": [rows[k][0].name for k in mine],
                                        "kind": [rows[k][0].kind for k in mine], "emotion": emotion, "read_layer": l,
                                        "projection": proj[:, j]}))
    df = pd.concat(frames, ignore_index=True)
    base = df[df["kind"] == "baseline"].set_index(["emotion", "read_layer", "sample_id"])["projection"]
    df["shift"] = df["projection"].to_numpy() - base.reindex(
        pd.MultiIndex.from_frame(df[["emotion", "read_layer", "sample_id"]])).to_numpy()
    return df


def plot_propagation(df: pd.DataFrame, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emotions = sorted(df["emotion"].unique())
    fig, axes = plt.subplots(1, len(emotions), figsize=(4 * len(emotions), 3.2), squeeze=False)
    for ax, e in zip(axes[0], emotions):
        sub = df[(df["emotion"] == e) & (df["kind"] != "baseline")]
        for kind, g in sub.groupby("kind"):
            m = g.groupby("read_layer")["shift"].agg(["mean", "std", "count"])
            se = m["std"] / np.sqrt(m["count"])
            ax.errorbar(m.index, m["mean"], yerr=se, marker="o", ms=3, label=kind)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("read layer")
        ax.set_title(f"{e}: projection shift on v_e (mean +- SE)", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)
